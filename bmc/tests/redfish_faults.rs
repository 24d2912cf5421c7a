//! Faults injected by a small proxy placed in front of a real sushy-tools:
//! server errors, a hung BMC, and the per-endpoint serialization measured as
//! the number of requests in flight at the proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bmc::{Bmc, BmcAddress, Credentials, DriverConfig, PowerState, TlsOptions};
use common::proxy::Proxy;
use common::{Sushy, SushyOptions, test_config};

fn driver(address: &str, cfg: DriverConfig) -> Arc<dyn Bmc> {
    bmc::connect(
        BmcAddress::parse(address).unwrap(),
        Credentials::new("admin", "password"),
        TlsOptions::default(),
        cfg,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_with_backoff_then_succeed() {
    let sushy = Sushy::start(SushyOptions {
        systems: 1,
        ..Default::default()
    });
    let proxy = Proxy::start(&sushy.http_base()).await;
    let address = proxy.address_for(&sushy.address(0), sushy.port);
    let bmc = driver(
        &address,
        DriverConfig {
            retries: 3,
            ..test_config()
        },
    );
    // Discovery first, so the next call is a single GET of the system.
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::Off);
    proxy.state.reset_counters();
    proxy.state.fail_next.store(2, Ordering::SeqCst);
    let start = Instant::now();
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::Off);
    assert_eq!(proxy.state.injected.load(Ordering::SeqCst), 2);
    assert_eq!(
        proxy.state.requests.load(Ordering::SeqCst),
        3,
        "two 500s, then the real answer"
    );
    // Backoff 50 ms then 100 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );

    // More failures than retries: a typed error naming the status.
    let bmc = driver(
        &address,
        DriverConfig {
            retries: 1,
            ..test_config()
        },
    );
    proxy.state.fail_next.store(5, Ordering::SeqCst);
    let err = bmc.power_state().await.unwrap_err();
    assert_eq!(err.reason(), "ProtocolError", "{err}");
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    assert!(err.to_string().contains("injected by test proxy"), "{err}");
    proxy.state.fail_next.store(0, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_bmc_times_out_within_the_configured_timeout() {
    let sushy = Sushy::start(SushyOptions {
        systems: 1,
        ..Default::default()
    });
    let proxy = Proxy::start(&sushy.http_base()).await;
    let address = proxy.address_for(&sushy.address(0), sushy.port);
    let timeout = Duration::from_millis(800);
    let bmc = driver(
        &address,
        DriverConfig {
            request_timeout: timeout,
            retries: 3,
            ..test_config()
        },
    );
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::Off);
    proxy.state.hang.store(true, Ordering::SeqCst);
    let start = Instant::now();
    let err = bmc.power_state().await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.reason(), "Timeout", "{err}");
    assert!(took >= timeout, "{took:?}");
    // Timeouts are not retried: one timeout, plus scheduling slack.
    assert!(
        took < timeout + Duration::from_millis(1500),
        "took {took:?}"
    );

    // A slow but answering BMC within the timeout is fine.
    proxy.state.hang.store(false, Ordering::SeqCst);
    proxy.state.delay_ms.store(300, Ordering::SeqCst);
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::Off);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_endpoint_is_serialized_and_different_endpoints_overlap() {
    let sushy = Sushy::start(SushyOptions {
        systems: 2,
        ..Default::default()
    });
    let proxy = Proxy::start(&sushy.http_base()).await;
    proxy.state.delay_ms.store(40, Ordering::SeqCst);
    let a = proxy.address_for(&sushy.address(0), sushy.port);
    let b = proxy.address_for(&sushy.address(1), sushy.port);

    // Two independent driver instances for the same system URL, 8 calls at once.
    let d1 = driver(&a, test_config());
    let d2 = driver(&a, test_config());
    proxy.state.reset_counters();
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let d = if i % 2 == 0 { d1.clone() } else { d2.clone() };
            tokio::spawn(async move {
                if i % 3 == 0 {
                    d.identity().await.map(|_| ())
                } else {
                    d.power_state().await.map(|_| ())
                }
            })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert!(proxy.state.requests.load(Ordering::SeqCst) >= 8);
    assert_eq!(
        proxy.state.max_in_flight.load(Ordering::SeqCst),
        1,
        "requests to one endpoint overlapped"
    );

    // Different endpoints run in parallel.
    let e1 = driver(&a, test_config());
    let e2 = driver(&b, test_config());
    proxy.state.reset_counters();
    let (r1, r2) = tokio::join!(
        async {
            for _ in 0..3 {
                e1.identity().await.unwrap();
            }
        },
        async {
            for _ in 0..3 {
                e2.identity().await.unwrap();
            }
        }
    );
    let _ = (r1, r2);
    assert!(
        proxy.state.max_in_flight.load(Ordering::SeqCst) >= 2,
        "calls to different endpoints never overlapped"
    );
}
