//! The Redfish driver against recorded Redfish documents served by the test
//! itself (tests/common/recorded.rs, fixtures in tests/fixtures/recorded_bmc.json).
//!
//! These cover only what sushy-tools cannot show:
//! - SessionService login / X-Auth-Token / logout (DELETE) and re-login after
//!   the BMC drops the session (sushy-tools has no SessionService);
//! - ResetType allowed through an ActionInfo resource, with a restrictive
//!   list (no GracefulShutdown, no ForceRestart);
//! - Once vs Continuous overrides (sushy-tools always reads Continuous) and
//!   AllowableValues validation by the server;
//! - Secure Boot as its own request (never a side effect of a boot override)
//!   and CD virtual media hosted on the Manager;
//! - tolerance of OEM sections, nulls and unknown properties.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bmc::{
    Bmc, BmcAddress, BootDevice, BootMode, BootPersistence, Credentials, PowerAction, PowerState,
    TlsOptions,
};
use common::recorded::{PASSWORD, Recorded, SYSTEM, USER};
use common::test_config;
use serde_json::json;

fn driver(rec: &Recorded, password: &str) -> std::sync::Arc<dyn Bmc> {
    bmc::connect(
        BmcAddress::parse(&rec.address()).unwrap(),
        Credentials::new(USER, password),
        TlsOptions::default(),
        test_config(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_auth_login_token_relogin_and_logout() {
    let rec = Recorded::start().await;
    let bmc = driver(&rec, PASSWORD);
    let id = bmc.identity().await.unwrap();
    assert_eq!(id.manufacturer.as_deref(), Some("Contoso"));
    assert_eq!(id.model.as_deref(), Some("3500RX"));
    assert_eq!(id.serial_number.as_deref(), Some("437XR1138R2"));
    assert_eq!(
        id.uuid.as_deref(),
        Some("38947555-7742-3448-3784-823347823834")
    );
    assert_eq!(id.bios_version.as_deref(), Some("P79 v1.45 (12/06/2017)"));
    assert_eq!(id.bmc_firmware_version.as_deref(), Some("4.40.10.00"));
    assert_eq!(
        id.mac_addresses,
        vec!["12:44:6a:3b:04:11", "aa:bb:cc:dd:ee:00"]
    );
    let log = rec.log();
    let logins = log
        .iter()
        .filter(|l| l.method == "POST" && l.path.ends_with("/Sessions"))
        .count();
    assert_eq!(logins, 1);
    assert!(
        log.iter().all(|l| l.auth != "basic"),
        "basic auth used: {log:?}"
    );
    assert!(
        log.iter()
            .filter(|l| l.path.starts_with(SYSTEM))
            .all(|l| l.auth == "token")
    );

    // The BMC drops all sessions: the driver logs in again once and goes on.
    rec.state.lock().unwrap().expire_sessions();
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::Off);
    let logins = rec
        .log()
        .iter()
        .filter(|l| l.method == "POST" && l.path.ends_with("/Sessions"))
        .count();
    assert_eq!(logins, 2);

    bmc.logout().await.unwrap();
    assert_eq!(rec.state.lock().unwrap().open_sessions(), 0);
    assert!(
        rec.log()
            .iter()
            .any(|l| l.method == "DELETE" && l.path == "/redfish/v1/SessionService/Sessions/2")
    );
    // After logout the next call opens a new session.
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::Off);
    assert_eq!(rec.state.lock().unwrap().open_sessions(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_on_session_login_is_authentication_failed() {
    let rec = Recorded::start().await;
    let bmc = driver(&rec, "nope-wrong");
    let err = bmc.power_state().await.unwrap_err();
    assert_eq!(err.reason(), "AuthenticationFailed", "{err}");
    assert!(!format!("{err:?}").contains("nope-wrong"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_types_come_from_action_info() {
    let rec = Recorded::start().await;
    let bmc = driver(&rec, PASSWORD);
    bmc.power(PowerAction::On).await.unwrap();
    // ActionInfo allows no ForceRestart: Reset falls back to PowerCycle.
    bmc.power(PowerAction::Reset).await.unwrap();
    // No GracefulShutdown offered: refused, never silently a hard off.
    let err = bmc.power(PowerAction::GracefulOff).await.unwrap_err();
    assert_eq!(err.reason(), "NotSupported", "{err}");
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::On);
    bmc.power(PowerAction::Off).await.unwrap();
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::Off);
    let resets: Vec<_> = rec
        .log()
        .into_iter()
        .filter(|l| l.path.ends_with("ComputerSystem.Reset"))
        .map(|l| l.body["ResetType"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(resets, vec!["On", "PowerCycle", "ForceOff"]);
    assert!(
        rec.log()
            .iter()
            .any(|l| l.path.ends_with("/ResetActionInfo"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_override_once_vs_continuous_and_secure_boot() {
    let rec = Recorded::start().await;
    let bmc = driver(&rec, PASSWORD);
    bmc.set_boot(BootDevice::Pxe, BootPersistence::Once, BootMode::Uefi)
        .await
        .unwrap();
    let boot = rec.state.lock().unwrap().doc(SYSTEM)["Boot"].clone();
    assert_eq!(boot["BootSourceOverrideTarget"], "Pxe");
    assert_eq!(boot["BootSourceOverrideEnabled"], "Once");
    assert_eq!(boot["BootSourceOverrideMode"], "UEFI");
    // A boot in UEFISecureBoot mode selects the UEFI override and never
    // touches Secure Boot: that is its own request.
    bmc.set_boot(
        BootDevice::VirtualCd,
        BootPersistence::Persistent,
        BootMode::UefiSecureBoot,
    )
    .await
    .unwrap();
    let sb_patches = |rec: &Recorded| {
        rec.log()
            .iter()
            .filter(|l| l.method == "PATCH" && l.path.ends_with("/SecureBoot"))
            .count()
    };
    assert_eq!(sb_patches(&rec), 0);
    {
        let st = rec.state.lock().unwrap();
        assert_eq!(st.doc(SYSTEM)["Boot"]["BootSourceOverrideTarget"], "Cd");
        assert_eq!(
            st.doc(SYSTEM)["Boot"]["BootSourceOverrideEnabled"],
            "Continuous"
        );
        assert_eq!(
            st.doc(&format!("{SYSTEM}/SecureBoot"))["SecureBootEnable"],
            json!(false)
        );
    }
    assert!(bmc.set_secure_boot(true).await.unwrap());
    assert!(!bmc.set_secure_boot(true).await.unwrap());
    assert_eq!(sb_patches(&rec), 1);
    // A legacy one-time boot does not silently turn Secure Boot off either.
    bmc.set_boot(BootDevice::Disk, BootPersistence::Once, BootMode::Legacy)
        .await
        .unwrap();
    {
        let st = rec.state.lock().unwrap();
        assert_eq!(st.doc(SYSTEM)["Boot"]["BootSourceOverrideMode"], "Legacy");
        assert_eq!(
            st.doc(&format!("{SYSTEM}/SecureBoot"))["SecureBootEnable"],
            json!(true)
        );
    }
    assert!(bmc.set_secure_boot(false).await.unwrap());
    let st = rec.state.lock().unwrap();
    assert_eq!(
        st.doc(&format!("{SYSTEM}/SecureBoot"))["SecureBootEnable"],
        json!(false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_media_on_the_manager() {
    let rec = Recorded::start().await;
    let bmc = driver(&rec, PASSWORD);
    let cd = "/redfish/v1/Managers/BMC/VirtualMedia/CD1";
    bmc.insert_virtual_media("http://images.invalid/a.iso")
        .await
        .unwrap();
    assert_eq!(
        rec.state.lock().unwrap().doc(cd)["Image"],
        "http://images.invalid/a.iso"
    );
    // Same image again: no-op. Another image: eject first, then insert.
    bmc.insert_virtual_media("http://images.invalid/a.iso")
        .await
        .unwrap();
    bmc.insert_virtual_media("http://images.invalid/b.iso")
        .await
        .unwrap();
    assert_eq!(
        rec.state.lock().unwrap().doc(cd)["Image"],
        "http://images.invalid/b.iso"
    );
    bmc.eject_virtual_media().await.unwrap();
    bmc.eject_virtual_media().await.unwrap();
    assert_eq!(rec.state.lock().unwrap().doc(cd)["Inserted"], json!(false));
    let actions: Vec<_> = rec
        .log()
        .into_iter()
        .filter(|l| l.method == "POST" && l.path.contains("VirtualMedia."))
        .map(|l| l.path.rsplit('.').next().unwrap().to_string())
        .collect();
    assert_eq!(
        actions,
        vec!["InsertMedia", "EjectMedia", "InsertMedia", "EjectMedia"]
    );
    // The USB stick slot (listed first) was never used.
    assert!(
        !rec.log()
            .iter()
            .any(|l| l.method != "GET" && l.path.contains("USB1"))
    );
}
