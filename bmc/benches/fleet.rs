//! Fleet benchmark (not a timed test): one sushy-tools process emulating 60
//! Redfish systems; for every system read the identity and power it on, with
//! at most N calls in flight, and print each figure beside the sequential
//! baseline measured in the same run.
//!
//! Run: `cargo bench -p bmc --bench fleet` (or `hack/bench-bmc.sh`).
//! `BMC_BENCH_SYSTEMS` and `BMC_BENCH_CONCURRENCY` (comma list) override the defaults.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bmc::{Bmc, BmcAddress, Credentials, PowerAction, PowerState, TlsOptions};
use common::{Sushy, SushyOptions, test_config};
use futures::StreamExt;

async fn round(bmcs: &[Arc<dyn Bmc>], concurrency: usize) -> Duration {
    // Untimed: everything off first.
    futures::stream::iter(bmcs.iter().cloned())
        .for_each_concurrent(
            8,
            |b| async move { b.power(PowerAction::Off).await.unwrap() },
        )
        .await;
    let start = Instant::now();
    futures::stream::iter(bmcs.iter().cloned())
        .for_each_concurrent(concurrency, |b| async move {
            b.identity().await.unwrap();
            b.power(PowerAction::On).await.unwrap();
        })
        .await;
    let took = start.elapsed();
    // Untimed check that every system really reports On.
    for b in bmcs {
        assert_eq!(b.power_state().await.unwrap(), PowerState::On);
    }
    took
}

fn main() {
    let systems: usize = std::env::var("BMC_BENCH_SYSTEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let levels: Vec<usize> = std::env::var("BMC_BENCH_CONCURRENCY")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![4, 8, 16, 60]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sushy = Sushy::start(SushyOptions {
            systems,
            ..Default::default()
        });
        let bmcs: Vec<Arc<dyn Bmc>> = (0..systems)
            .map(|i| {
                bmc::connect(
                    BmcAddress::parse(&sushy.address(i)).unwrap(),
                    Credentials::new("admin", "password"),
                    TlsOptions::default(),
                    test_config(),
                )
                .unwrap()
            })
            .collect();
        // Warm-up (discovery, connections) so both sides measure the same work.
        round(&bmcs, 8).await;
        let baseline = round(&bmcs, 1).await;
        println!("fleet: {systems} Redfish systems in one sushy-tools, identity + power on each");
        println!(
            "  concurrency  1: {:>8.1} ms  (baseline, sequential; {:.1} ms/system)",
            baseline.as_secs_f64() * 1e3,
            baseline.as_secs_f64() * 1e3 / systems as f64
        );
        for n in levels {
            let took = round(&bmcs, n).await;
            println!(
                "  concurrency {n:>2}: {:>8.1} ms  vs baseline {:>8.1} ms  ({:.2}x)",
                took.as_secs_f64() * 1e3,
                baseline.as_secs_f64() * 1e3,
                baseline.as_secs_f64() / took.as_secs_f64()
            );
        }
    });
}
