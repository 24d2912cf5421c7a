//! Memory per Redfish driver (not a timed test): N drivers, one per system of the strict
//! emulator in fleet mode (hack/bmc/redfish_emulator.py, N systems over K ports), each doing
//! what a registration does (identity, then power state) with 64 conversations in flight.
//! Prints the process's resident memory per driver beside the baseline measured in the same
//! run: a plain HTTP client sending one GET to each of the same N systems.
//!
//! Run: `cargo bench -p bmc --bench driver_memory` (about a minute at the default size);
//! `BMC_BENCH_SYSTEMS` (default 10000) and `BMC_BENCH_PORTS` (default 1000) override.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Instant;

use bmc::{Bmc, BmcAddress, Credentials, PowerState, TlsOptions};
use common::emulator::{PASSWORD, Setup, StrictBmc, USER};
use futures::StreamExt;

const IN_FLIGHT: usize = 64;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (VmRSS, VmHWM) of this process, KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    let systems = env("BMC_BENCH_SYSTEMS", 10_000);
    let ports = env("BMC_BENCH_PORTS", 1_000).clamp(1, systems);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let emu = StrictBmc::start(&Setup {
            tree: "dmtf-public-rackmount1",
            system: "",
            fleet: systems,
            ports,
            ..Setup::default()
        });
        let url = |i: usize| {
            format!(
                "http://127.0.0.1:{}/redfish/v1/Systems/f1ee7000-0000-4000-8000-{i:012x}",
                emu.ports[i % emu.ports.len()]
            )
        };
        let (start, _) = rss_kib();

        // Baseline: one plain client, one GET per system.
        let client = common::http_client().build().unwrap();
        let t = Instant::now();
        futures::stream::iter(0..systems)
            .for_each_concurrent(IN_FLIGHT, |i| {
                let (client, url) = (client.clone(), url(i));
                async move {
                    let r = client
                        .get(url)
                        .basic_auth(USER, Some(PASSWORD))
                        .send()
                        .await
                        .unwrap();
                    assert!(r.status().is_success());
                    r.bytes().await.unwrap();
                }
            })
            .await;
        let base_secs = t.elapsed().as_secs_f64();
        let (base_rss, _) = rss_kib();
        drop(client);

        // The drivers, kept alive as the controller's pool keeps them.
        let t = Instant::now();
        let drivers: Vec<Arc<dyn Bmc>> = (0..systems)
            .map(|i| {
                bmc::connect(
                    BmcAddress::parse(&format!("redfish+{}", url(i))).unwrap(),
                    Credentials::new(USER, PASSWORD),
                    TlsOptions::default(),
                    common::test_config(),
                )
                .unwrap()
            })
            .collect();
        let (created_rss, _) = rss_kib();
        futures::stream::iter(drivers.iter().cloned())
            .for_each_concurrent(IN_FLIGHT, |b| async move {
                b.identity().await.unwrap();
                assert_eq!(b.power_state().await.unwrap(), PowerState::Off);
            })
            .await;
        let drv_secs = t.elapsed().as_secs_f64();
        let (after_rss, hwm) = rss_kib();
        let per = |kib: u64, from: u64| kib.saturating_sub(from) as f64 / systems as f64;
        println!(
            "driver memory: {systems} Redfish drivers over {} emulator ports, {IN_FLIGHT} in flight",
            emu.ports.len()
        );
        println!("{:<60} {:>12} {:>12}", "figure", "measured", "baseline");
        println!(
            "{:<60} {:>8.1} MiB {:>8.1} MiB",
            "RSS: drivers registered (baseline: plain client, 1 GET each)",
            after_rss.saturating_sub(base_rss) as f64 / 1024.0,
            base_rss.saturating_sub(start) as f64 / 1024.0
        );
        println!(
            "{:<60} {:>8.1} KiB {:>8.1} KiB",
            "RSS per system",
            per(after_rss, base_rss),
            per(base_rss, start)
        );
        println!(
            "{:<60} {:>8.1} KiB {:>12}",
            "  of which: building the drivers (no I/O)",
            per(created_rss, base_rss),
            "-"
        );
        println!(
            "{:<60} {:>10.1} s {:>10.1} s",
            "time: identity + power state each (baseline: 1 GET each)", drv_secs, base_secs
        );
        println!(
            "{:<60} {:>8.1} MiB {:>12}",
            "process peak RSS (VmHWM)",
            hwm as f64 / 1024.0,
            "-"
        );
        drop(drivers);
    });
}
