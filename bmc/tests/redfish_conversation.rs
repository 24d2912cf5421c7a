//! What a registration costs a Redfish service: the strict emulator (hack/bmc/redfish_emulator.py)
//! serving clones of the DMTF rack server on one port, as an enclosure manager serves its
//! systems, counts every request. Drivers of one service share its root, its session and its
//! manager; identity and power come from one read of the system; a power request right after
//! an observation does not read the system again; interfaces come expanded where the root
//! says `$expand` works, one by one where it does not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bmc::{Bmc, BmcAddress, Credentials, PowerAction, PowerState, TlsOptions};
use common::emulator::{PASSWORD, Setup, StrictBmc, USER};
use common::test_config;
use common::wait::eventually;
use serde_json::{Value, json};

/// System `i` of the emulator's fleet (hack/bmc/redfish_emulator.py `fleet_uuid`).
fn fleet_system(i: usize) -> String {
    format!("/redfish/v1/Systems/f1ee7000-0000-4000-8000-{i:012x}")
}

fn fleet(systems: usize, set: Value) -> StrictBmc {
    StrictBmc::start(&Setup {
        tree: "dmtf-public-rackmount1",
        system: "/redfish/v1/Systems/437XR1138R2",
        set: Some(set),
        fleet: systems,
        ports: 1,
        ..Setup::default()
    })
}

fn driver(emu: &StrictBmc, i: usize) -> Arc<dyn Bmc> {
    let address = format!(
        "redfish+http://127.0.0.1:{}{}",
        emu.ports[0],
        fleet_system(i)
    );
    bmc::connect(
        BmcAddress::parse(&address).unwrap(),
        Credentials::new(USER, PASSWORD),
        TlsOptions::default(),
        test_config(),
    )
    .unwrap()
}

/// Requests the drivers made since `before` (a stats reading; each reading counts itself).
async fn requests_since(emu: &StrictBmc, before: &Value) -> u64 {
    emu.stats().await["requests"].as_u64().unwrap() - before["requests"].as_u64().unwrap() - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drivers_of_one_service_share_root_session_and_manager() {
    let emu = fleet(3, json!({}));
    let drivers: Vec<_> = (0..3).map(|i| driver(&emu, i)).collect();
    let before = emu.stats().await;
    let seen = futures::future::join_all(drivers.iter().map(|d| d.inspect())).await;
    let mut macs = Vec::new();
    for (id, power) in seen.into_iter().map(Result::unwrap) {
        assert_eq!(power, PowerState::Off);
        assert_eq!(id.mac_addresses.len(), 2, "{id:?}");
        assert!(id.bmc_firmware_version.is_some(), "{id:?}");
        macs.extend(id.mac_addresses);
    }
    macs.sort();
    macs.dedup();
    assert_eq!(
        macs.len(),
        6,
        "each system has its own interfaces: {macs:?}"
    );
    // One root read and one login for the service, one manager read, and per system one read
    // of the system and one of its interfaces, expanded.
    assert_eq!(requests_since(&emu, &before).await, 2 + 1 + 3 * 2);
    assert_eq!(
        emu.stats().await["sessions"],
        1,
        "one session for the service"
    );

    // Powering on right after the observation: the reset request only.
    let before = emu.stats().await;
    for d in &drivers {
        d.power(PowerAction::On).await.unwrap();
    }
    assert_eq!(requests_since(&emu, &before).await, 3);
    for d in &drivers {
        assert_eq!(d.power_state().await.unwrap(), PowerState::On);
    }

    drop(drivers);
    eventually(
        Duration::from_secs(5),
        "the shared session closed with the last driver",
        || async { (emu.stats().await["sessions"] == 0).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interfaces_are_read_one_by_one_where_expand_is_not_advertised() {
    // The emulator answers 400 QueryNotSupported to a $expand the root does not advertise.
    let emu = fleet(
        1,
        json!({"/redfish/v1/": {"ProtocolFeaturesSupported": {"ExpandQuery": {
            "ExpandAll": false, "Levels": false, "Links": false, "NoLinks": false}}}}),
    );
    let bmc = driver(&emu, 0);
    let before = emu.stats().await;
    let (id, _) = bmc.inspect().await.unwrap();
    assert_eq!(id.mac_addresses.len(), 2, "{id:?}");
    // Root, login, system, manager, the interface collection and its two members.
    assert_eq!(requests_since(&emu, &before).await, 7);
}
