//! The Redfish driver against a real sushy-tools (fake driver) over HTTP,
//! started by each test on a free loopback port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bmc::{
    Bmc, BmcAddress, BootDevice, BootMode, BootPersistence, Credentials, PowerAction, PowerState,
    TlsOptions,
};
use common::wait::eventually;
use common::{Sushy, SushyOptions, raw_get, test_config};

fn driver(address: &str) -> std::sync::Arc<dyn Bmc> {
    bmc::connect(
        BmcAddress::parse(address).unwrap(),
        Credentials::new("admin", "password"),
        TlsOptions::default(),
        test_config(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_is_read_from_system_manager_and_nics() {
    let sushy = Sushy::start(SushyOptions {
        systems: 2,
        ..Default::default()
    });
    let bmc = driver(&sushy.address(1));
    let id = bmc.identity().await.unwrap();
    assert_eq!(id.uuid.as_deref(), Some(sushy.systems[1].uuid.as_str()));
    assert_eq!(id.manufacturer.as_deref(), Some("Sushy Emulator"));
    assert_eq!(
        id.bmc_firmware_version.as_deref(),
        Some("1.00"),
        "from Links.ManagedBy → Manager"
    );
    assert_eq!(id.mac_addresses, vec![sushy.systems[1].mac.clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_on_off_and_reset_are_reported() {
    let sushy = Sushy::start(SushyOptions {
        systems: 1,
        notifications: true,
        ..Default::default()
    });
    let bmc = driver(&sushy.address(0));
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::Off);
    bmc.power(PowerAction::On).await.unwrap();
    eventually(Duration::from_secs(5), "power on", || async {
        (bmc.power_state().await.unwrap() == PowerState::On).then_some(())
    })
    .await;
    // Idempotent: asking again is accepted without a reset request.
    bmc.power(PowerAction::On).await.unwrap();
    // Reset (ForceRestart: sushy-tools has no PowerCycle) ends up On again.
    bmc.power(PowerAction::Reset).await.unwrap();
    bmc.power(PowerAction::Cycle).await.unwrap();
    eventually(Duration::from_secs(5), "on after reset", || async {
        (bmc.power_state().await.unwrap() == PowerState::On).then_some(())
    })
    .await;
    bmc.power(PowerAction::GracefulOff).await.unwrap();
    eventually(Duration::from_secs(5), "graceful off", || async {
        (bmc.power_state().await.unwrap() == PowerState::Off).then_some(())
    })
    .await;
    // Cross-check with a plain GET: the emulator itself says Off.
    let doc = raw_get(&format!(
        "{}/redfish/v1/Systems/{}",
        sushy.http_base(),
        sushy.systems[0].uuid
    ))
    .await;
    assert_eq!(doc["PowerState"], "Off");
    // The emulator's own record: Reset and Cycle each took the machine down and brought it
    // back (a restart is Off at once, On when applied: the next read here).
    assert_eq!(
        sushy.power_trail(0),
        [
            "Off, pending On",
            "On",
            "Off, pending ForceRestart",
            "On",
            "Off, pending ForceRestart",
            "On",
            "On, pending Off",
            "Off"
        ],
        "emulator log:\n{}",
        sushy.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_override_is_stored_by_the_emulator() {
    let sushy = Sushy::start(SushyOptions {
        systems: 1,
        ..Default::default()
    });
    let bmc = driver(&sushy.address(0));
    let url = format!(
        "{}/redfish/v1/Systems/{}",
        sushy.http_base(),
        sushy.systems[0].uuid
    );
    bmc.set_boot(BootDevice::Pxe, BootPersistence::Persistent, BootMode::Uefi)
        .await
        .unwrap();
    let doc = raw_get(&url).await;
    assert_eq!(doc["Boot"]["BootSourceOverrideTarget"], "Pxe");
    assert_eq!(doc["Boot"]["BootSourceOverrideMode"], "UEFI");
    bmc.set_boot(BootDevice::Disk, BootPersistence::Once, BootMode::Legacy)
        .await
        .unwrap();
    let doc = raw_get(&url).await;
    assert_eq!(doc["Boot"]["BootSourceOverrideTarget"], "Hdd");
    assert_eq!(doc["Boot"]["BootSourceOverrideMode"], "Legacy");
    // In Legacy mode sushy-tools does not offer UefiHttp: the driver switches
    // the mode to UEFI first, re-reads the AllowableValues, then sets the
    // target. (Without an HttpBootUri sushy-tools stores UefiHttp as Pxe.)
    bmc.set_boot(BootDevice::UefiHttp, BootPersistence::Once, BootMode::Uefi)
        .await
        .unwrap();
    let doc = raw_get(&url).await;
    assert_eq!(doc["Boot"]["BootSourceOverrideMode"], "UEFI");
    assert_eq!(doc["Boot"]["BootSourceOverrideTarget"], "Pxe");
    let patches = sushy.log().matches("\"PATCH /redfish/v1/Systems/").count();
    assert_eq!(
        patches,
        4,
        "pxe, disk, mode switch, target:\n{}",
        sushy.log()
    );
    // A boot in UEFISecureBoot mode leaves Secure Boot alone; turning it on
    // is its own request, through the system's SecureBoot resource.
    bmc.set_boot(
        BootDevice::Pxe,
        BootPersistence::Once,
        BootMode::UefiSecureBoot,
    )
    .await
    .unwrap();
    let sb = raw_get(&format!("{url}/SecureBoot")).await;
    assert_eq!(sb["SecureBootEnable"], false, "{sb}");
    assert!(bmc.set_secure_boot(true).await.unwrap());
    let sb = raw_get(&format!("{url}/SecureBoot")).await;
    assert_eq!(sb["SecureBootEnable"], true, "{sb}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_by_name_follows_the_redirect() {
    let sushy = Sushy::start(SushyOptions {
        systems: 2,
        ..Default::default()
    });
    let bmc = driver(&sushy.address_by_name(1));
    let id = bmc.identity().await.unwrap();
    assert_eq!(id.uuid.as_deref(), Some(sushy.systems[1].uuid.as_str()));
    bmc.power(PowerAction::On).await.unwrap();
    eventually(Duration::from_secs(5), "power on by name", || async {
        (bmc.power_state().await.unwrap() == PowerState::On).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_address_without_system_uses_the_only_system() {
    let sushy = Sushy::start(SushyOptions {
        systems: 1,
        ..Default::default()
    });
    let bmc = driver(&format!("redfish+http://127.0.0.1:{}", sushy.port));
    assert_eq!(
        bmc.identity().await.unwrap().uuid.as_deref(),
        Some(sushy.systems[0].uuid.as_str())
    );
    let missing = driver(&format!(
        "redfish+http://127.0.0.1:{}/redfish/v1/Systems/nope",
        sushy.port
    ));
    let err = missing.power_state().await.unwrap_err();
    assert_eq!(err.reason(), "ProtocolError", "{err}");
    assert!(err.to_string().contains("404"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_power_change_is_followed_until_reported() {
    let sushy = Sushy::start(SushyOptions {
        systems: 1,
        power_delay_secs: 2,
        ..Default::default()
    });
    let bmc = driver(&sushy.address(0));
    let start = Instant::now();
    bmc.power(PowerAction::On).await.unwrap();
    // Right after the request the emulator still reports the old state.
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::Off);
    let mut polls = 0;
    eventually(Duration::from_secs(10), "delayed power on", || {
        polls += 1;
        let bmc = bmc.clone();
        async move { (bmc.power_state().await.unwrap() == PowerState::On).then_some(()) }
    })
    .await;
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "the fixed delay was not applied ({took:?})"
    );
    assert!(polls > 1, "expected several polls, got {polls}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_bmc_is_typed() {
    let port = common::free_tcp_port();
    let cfg = bmc::DriverConfig {
        retries: 1,
        ..test_config()
    };
    let bmc = bmc::connect(
        BmcAddress::parse(&format!(
            "redfish+http://127.0.0.1:{port}/redfish/v1/Systems/1"
        ))
        .unwrap(),
        Credentials::new("admin", "password"),
        TlsOptions::default(),
        cfg,
    )
    .unwrap();
    let err = bmc.power_state().await.unwrap_err();
    assert_eq!(err.reason(), "BMCUnreachable", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_media_insert_and_eject() {
    // sushy-tools downloads the image on insert: serve a small one from the test.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let image_port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/boot.iso",
        axum::routing::get(|| async { vec![0x43u8; 64 * 1024] }),
    );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let image = format!("http://127.0.0.1:{image_port}/boot.iso");

    let sushy = Sushy::start(SushyOptions {
        systems: 1,
        ..Default::default()
    });
    let bmc = driver(&sushy.address(0));
    let cd = format!(
        "{}/redfish/v1/Systems/{}/VirtualMedia/Cd",
        sushy.http_base(),
        sushy.systems[0].uuid
    );
    bmc.insert_virtual_media(&image).await.unwrap();
    let doc = raw_get(&cd).await;
    assert_eq!(doc["Inserted"], true, "{doc}");
    assert_eq!(doc["Image"], image.as_str(), "{doc}");
    // Inserting the same image again is a no-op.
    bmc.insert_virtual_media(&image).await.unwrap();
    bmc.eject_virtual_media().await.unwrap();
    assert_eq!(raw_get(&cd).await["Inserted"], false);
    bmc.eject_virtual_media().await.unwrap();
    // The floppy slot was never touched.
    assert!(!sushy.log().contains("Floppy/Actions"), "{}", sushy.log());
    server.abort();
}
