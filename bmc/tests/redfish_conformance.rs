//! Vendor conformance: the real Redfish driver against recorded vendor trees
//! (tests/corpus/, see its README for sources) served over HTTP by the strict emulator
//! hack/bmc/redfish_emulator.py with the documented vendor behaviours switched on.
//!
//! The matrix drives every profile through identity, power on / off / reset and a one-time
//! PXE boot followed by a power cycle, and checks what the emulator saw: the power state,
//! and the boot it recorded (override, target, mode, Secure Boot). A profile whose data
//! says it cannot do something (a GPU baseboard without boot override or reset action)
//! must get a typed `NotSupported`, and no PATCH may reach it. The other tests pin one
//! vendor behaviour each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bmc::{
    Bmc, BmcAddress, BootDevice, BootMode, BootPersistence, Credentials, PowerAction, PowerState,
    TlsOptions,
};
use common::emulator::{PASSWORD, Setup, StrictBmc, USER};
use common::test_config;
use common::wait::eventually;
use serde_json::{Value, json};

fn driver(emu: &StrictBmc) -> Arc<dyn Bmc> {
    bmc::connect(
        BmcAddress::parse(&emu.address()).unwrap(),
        Credentials::new(USER, PASSWORD),
        TlsOptions::default(),
        test_config(),
    )
    .unwrap()
}

/// What the profile's own data says the driver can do.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Power and a one-time PXE boot work.
    Works,
    /// No boot override and no reset action: typed refusals only.
    NoBootNoReset,
}

struct Profile {
    tree: &'static str,
    system: &'static str,
    quirks: &'static [&'static str],
    expect: Expect,
}

fn setup(p: &Profile, set: Value) -> Setup {
    Setup {
        tree: p.tree,
        system: p.system,
        quirks: p.quirks.iter().map(|q| q.to_string()).collect(),
        set: Some(set),
        ..Setup::default()
    }
}

/// The corpus document at `path` of `tree`.
fn corpus_doc(tree: &str, path: &str) -> Value {
    let text =
        std::fs::read_to_string(common::repo_root().join(format!("bmc/tests/corpus/{tree}.json")))
            .unwrap();
    serde_json::from_str::<Value>(&text).unwrap()[path].clone()
}

fn patches(state: &Value) -> Vec<Value> {
    state["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["method"] == "PATCH")
        .cloned()
        .collect()
}

async fn power_now(emu: &StrictBmc) -> Value {
    emu.doc(&emu.system).await["PowerState"].clone()
}

/// Every operation against one profile.
async fn conformance(p: &Profile) {
    let emu = StrictBmc::start(&setup(p, json!({ p.system: {"PowerState": "Off"} })));
    let bmc = driver(&emu);
    let label = p.tree;

    let id = bmc
        .identity()
        .await
        .unwrap_or_else(|e| panic!("{label}: identity: {e}"));
    let sys = corpus_doc(p.tree, p.system);
    assert_eq!(
        id.manufacturer.as_deref(),
        sys["Manufacturer"].as_str(),
        "{label}"
    );
    let uuid = sys["UUID"]
        .as_str()
        .map(str::to_ascii_lowercase)
        .filter(|u| u.chars().any(|c| c != '0' && c != '-'));
    assert_eq!(id.uuid, uuid, "{label}");

    if p.expect == Expect::NoBootNoReset {
        for action in [PowerAction::On, PowerAction::Reset, PowerAction::Cycle] {
            let err = bmc.power(action).await.unwrap_err();
            assert_eq!(err.reason(), "NotSupported", "{label}: {action:?}: {err}");
        }
        // Off while off is already done: no reset needed, none attempted.
        bmc.power(PowerAction::Off).await.unwrap();
        let err = bmc
            .set_boot(BootDevice::Pxe, BootPersistence::Once, BootMode::Uefi)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "NotSupported", "{label}: boot: {err}");
        let state = emu.state().await;
        let writes: Vec<&Value> = state["log"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["method"] != "GET" && !l["path"].as_str().unwrap().ends_with("/Sessions"))
            .collect();
        assert!(
            writes.is_empty(),
            "{label}: wrote to a system without boot override or reset action: {writes:?}"
        );
        return;
    }

    bmc.power(PowerAction::On)
        .await
        .unwrap_or_else(|e| panic!("{label}: power on: {e}"));
    assert_eq!(power_now(&emu).await, "On", "{label}");
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::On, "{label}");
    bmc.power(PowerAction::Off)
        .await
        .unwrap_or_else(|e| panic!("{label}: power off: {e}"));
    assert_eq!(power_now(&emu).await, "Off", "{label}");
    // A reset of a machine that is off powers it on; of one that is on, restarts it.
    bmc.power(PowerAction::Reset)
        .await
        .unwrap_or_else(|e| panic!("{label}: reset (off): {e}"));
    assert_eq!(power_now(&emu).await, "On", "{label}");
    bmc.power(PowerAction::Reset)
        .await
        .unwrap_or_else(|e| panic!("{label}: reset (on): {e}"));
    let boots_before = emu.state().await["boots"].as_array().unwrap().len();
    assert_eq!(
        boots_before, 3,
        "{label}: power-on, reset from off and restart are boots"
    );

    let mode_before = emu.doc(p.system).await["Boot"]["BootSourceOverrideMode"].clone();
    let sb_link = sys["SecureBoot"]["@odata.id"].as_str().map(str::to_string);
    let sb_before = match &sb_link {
        Some(l) => emu.doc(l).await["SecureBootEnable"].clone(),
        None => Value::Null,
    };
    bmc.set_boot(BootDevice::Pxe, BootPersistence::Once, BootMode::Uefi)
        .await
        .unwrap_or_else(|e| panic!("{label}: one-time PXE: {e}"));
    bmc.power(PowerAction::Cycle)
        .await
        .unwrap_or_else(|e| panic!("{label}: cycle: {e}"));
    let state = emu.state().await;
    let boot = state["boots"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(boot["override"], "Once", "{label}: {boot}");
    assert_eq!(boot["target"], "Pxe", "{label}: {boot}");
    if mode_before.is_string() {
        assert_eq!(boot["mode"], "UEFI", "{label}: {boot}");
    }
    assert_eq!(
        boot["secure_boot"], sb_before,
        "{label}: Secure Boot changed by a one-time boot"
    );
    assert_eq!(
        state["docs"][p.system]["Boot"]["BootSourceOverrideEnabled"], "Disabled",
        "{label}: the one-time override was consumed"
    );
}

macro_rules! profiles {
    ($($name:ident: $tree:literal, $system:literal, [$($q:literal),*], $expect:expr;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                conformance(&Profile { tree: $tree, system: $system, quirks: &[$($q),*], expect: $expect }).await;
            }
        )*
    };
}

profiles! {
    matrix_dmtf_rackmount: "dmtf-public-rackmount1", "/redfish/v1/Systems/437XR1138R2", [], Expect::Works;
    matrix_hpe_ilo5: "hpe-ilo5-dl385-gen10plus", "/redfish/v1/Systems/1", ["mode_read_only", "power_conflict"], Expect::Works;
    matrix_dell_idrac9: "dell-idrac9", "/redfish/v1/Systems/System.Embedded.1", ["power_conflict"], Expect::Works;
    matrix_dell_idrac8_13g: "dell-idrac9", "/redfish/v1/Systems/System.Embedded.1", ["mode_alone_only", "error_in_200"], Expect::Works;
    matrix_dell_multi_dpu: "dell-idrac9-multi-dpu", "/redfish/v1/Systems/System.Embedded.1", [], Expect::Works;
    matrix_lenovo_xcc: "lenovo-xcc", "/redfish/v1/Systems/1", [], Expect::Works;
    matrix_supermicro: "supermicro-sys-821ge", "/redfish/v1/Systems/1", ["mode_reset_unless_sent"], Expect::Works;
    matrix_ami_megarac: "ami-megarac-dgx-h100", "/redfish/v1/Systems/DGX", ["require_if_match", "etag_in_body_only"], Expect::Works;
    matrix_bluefield3_dpu: "nvidia-bluefield3-dpu", "/redfish/v1/Systems/Bluefield", [], Expect::Works;
    matrix_gh200: "nvidia-gh200", "/redfish/v1/Systems/System_0", [], Expect::Works;
    matrix_gb200: "nvidia-gb200", "/redfish/v1/Systems/System_0", [], Expect::Works;
    matrix_hgx_baseboard: "nvidia-hgx-baseboard", "/redfish/v1/Systems/HGX_Baseboard_0", ["lenient_patch"], Expect::NoBootNoReset;
}

const DMTF: &str = "/redfish/v1/Systems/437XR1138R2";

fn dmtf(quirks: &[&str], set: Value) -> StrictBmc {
    StrictBmc::start(&Setup {
        tree: "dmtf-public-rackmount1",
        system: DMTF,
        quirks: quirks.iter().map(|q| q.to_string()).collect(),
        set: Some(set),
        ..Setup::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ilo5_keeps_an_unchanged_mode_out_of_the_patch_and_cannot_switch_legacy() {
    let sys = "/redfish/v1/Systems/1";
    let p = Profile {
        tree: "hpe-ilo5-dl385-gen10plus",
        system: sys,
        quirks: &["mode_read_only"],
        expect: Expect::Works,
    };
    let emu = StrictBmc::start(&setup(&p, json!({})));
    let bmc = driver(&emu);
    bmc.set_boot(BootDevice::Pxe, BootPersistence::Once, BootMode::Uefi)
        .await
        .unwrap();
    let state = emu.state().await;
    let sent = patches(&state);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0]["body"]["Boot"]
            .get("BootSourceOverrideMode")
            .is_none()
    );

    // In Legacy the mode cannot be switched on iLO 5 (a BIOS setting): a typed refusal,
    // and nothing is left half-done.
    let emu = StrictBmc::start(&setup(
        &p,
        json!({ sys: {"Boot": {"BootSourceOverrideMode": "Legacy"}} }),
    ));
    let bmc = driver(&emu);
    let err = bmc
        .set_boot(BootDevice::Pxe, BootPersistence::Once, BootMode::Uefi)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "NotSupported", "{err}");
    assert!(err.message().contains("BootSourceOverrideMode"), "{err}");
    let boot = emu.doc(sys).await["Boot"].clone();
    assert_eq!(boot["BootSourceOverrideMode"], "Legacy");
    assert_eq!(boot["BootSourceOverrideEnabled"], "Disabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idrac8_gets_the_mode_in_its_own_patch_even_when_refusing_with_200() {
    let sys = "/redfish/v1/Systems/System.Embedded.1";
    let emu = StrictBmc::start(&Setup {
        tree: "dell-idrac9",
        system: sys,
        quirks: vec!["mode_alone_only".into(), "error_in_200".into()],
        set: Some(json!({ sys: {"Boot": {"BootSourceOverrideMode": "Legacy"}} })),
        ..Setup::default()
    });
    let bmc = driver(&emu);
    bmc.set_boot(BootDevice::Pxe, BootPersistence::Once, BootMode::Uefi)
        .await
        .unwrap();
    let boot = emu.doc(sys).await["Boot"].clone();
    assert_eq!(boot["BootSourceOverrideMode"], "UEFI");
    assert_eq!(boot["BootSourceOverrideTarget"], "Pxe");
    assert_eq!(boot["BootSourceOverrideEnabled"], "Once");
    let bodies: Vec<Value> = patches(&emu.state().await)
        .iter()
        .map(|p| p["body"]["Boot"].clone())
        .collect();
    assert_eq!(
        bodies,
        vec![
            json!({"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once", "BootSourceOverrideMode": "UEFI"}),
            json!({"BootSourceOverrideMode": "UEFI"}),
            json!({"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supermicro_keeps_its_mode_and_boots_virtual_media_from_usbcd() {
    let sys = "/redfish/v1/Systems/1";
    let emu = StrictBmc::start(&Setup {
        tree: "supermicro-sys-821ge",
        system: sys,
        quirks: vec!["mode_reset_unless_sent".into()],
        ..Setup::default()
    });
    let bmc = driver(&emu);
    bmc.set_boot(BootDevice::VirtualCd, BootPersistence::Once, BootMode::Uefi)
        .await
        .unwrap();
    let boot = emu.doc(sys).await["Boot"].clone();
    assert_eq!(boot["BootSourceOverrideTarget"], "UsbCd");
    assert_eq!(boot["BootSourceOverrideMode"], "UEFI", "mode reset: {boot}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ami_428_is_answered_with_if_match_from_the_body_etag() {
    let sys = "/redfish/v1/Systems/DGX";
    let emu = StrictBmc::start(&Setup {
        tree: "ami-megarac-dgx-h100",
        system: sys,
        quirks: vec!["require_if_match".into(), "etag_in_body_only".into()],
        ..Setup::default()
    });
    let bmc = driver(&emu);
    bmc.set_boot(BootDevice::Pxe, BootPersistence::Once, BootMode::Uefi)
        .await
        .unwrap();
    bmc.set_boot(BootDevice::Disk, BootPersistence::Once, BootMode::Uefi)
        .await
        .unwrap();
    assert_eq!(
        emu.doc(sys).await["Boot"]["BootSourceOverrideTarget"],
        "Hdd"
    );
    let sent: Vec<(Value, Value)> = patches(&emu.state().await)
        .iter()
        .map(|p| (p["status"].clone(), p["if_match"].clone()))
        .collect();
    // First PATCH: 428, then again with If-Match; the second request carries it at once.
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[0], (json!(428), Value::Null));
    assert_eq!(sent[1].0, json!(204));
    assert!(sent[1].1.is_string());
    assert_eq!(sent[2].0, json!(204));
    assert!(sent[2].1.is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_boot_request_leaves_the_mode_as_it_was() {
    // The target is refused after the mode was switched on its own (iDRAC 8 needs that):
    // the switch is undone.
    let emu = dmtf(
        &["mode_alone_only", "refuse_target:Pxe"],
        json!({ DMTF: {"Boot": {"BootSourceOverrideMode": "Legacy"}} }),
    );
    let bmc = driver(&emu);
    let err = bmc
        .set_boot(BootDevice::Pxe, BootPersistence::Once, BootMode::Uefi)
        .await
        .unwrap_err();
    assert!(err.message().contains("disabled"), "{err}");
    assert_eq!(
        emu.doc(DMTF).await["Boot"]["BootSourceOverrideMode"],
        "Legacy"
    );
    // The target is not offered even after switching the mode first: undone too.
    let emu = dmtf(
        &[],
        json!({ DMTF: {"Boot": {"BootSourceOverrideMode": "Legacy"}} }),
    );
    let bmc = driver(&emu);
    let err = bmc
        .set_boot(BootDevice::UefiHttp, BootPersistence::Once, BootMode::Uefi)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "NotSupported", "{err}");
    assert_eq!(
        emu.doc(DMTF).await["Boot"]["BootSourceOverrideMode"],
        "Legacy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_boot_leaves_secure_boot_on() {
    let sb = format!("{DMTF}/SecureBoot");
    let emu = dmtf(
        &[],
        json!({ DMTF: {"PowerState": "On"}, sb.as_str(): {"SecureBootEnable": true} }),
    );
    let bmc = driver(&emu);
    bmc.set_boot(BootDevice::Pxe, BootPersistence::Once, BootMode::Uefi)
        .await
        .unwrap();
    bmc.power(PowerAction::Cycle).await.unwrap();
    let state = emu.state().await;
    assert_eq!(state["docs"][sb.as_str()]["SecureBootEnable"], true);
    assert_eq!(state["boots"][0]["secure_boot"], true);
    assert_eq!(state["boots"][0]["target"], "Pxe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placeholder_uuid_and_macs_are_absent() {
    let eth = format!("{DMTF}/EthernetInterfaces/12446A3B0411");
    let emu = dmtf(
        &[],
        json!({ DMTF: {"UUID": "00000000-0000-0000-0000-000000000000"},
                eth.as_str(): {"MACAddress": "00:00:00:00:00:00", "PermanentMACAddress": "00:00:00:00:00:00"} }),
    );
    let id = driver(&emu).identity().await.unwrap();
    assert_eq!(id.uuid, None);
    assert_eq!(id.mac_addresses, vec!["aa:bb:cc:dd:ee:00"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_without_token_is_deleted_and_basic_auth_used() {
    let emu = dmtf(&["session_no_token"], json!({}));
    let bmc = driver(&emu);
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::On);
    bmc.power(PowerAction::Off).await.unwrap();
    let state = emu.state().await;
    assert_eq!(state["sessions"], json!([]), "session leaked");
    let log = state["log"].as_array().unwrap();
    let logins = log
        .iter()
        .filter(|l| l["method"] == "POST" && l["path"].as_str().unwrap().ends_with("/Sessions"))
        .count();
    assert_eq!(logins, 1, "{log:?}");
    assert!(
        log.iter()
            .filter(|l| l["path"].as_str().unwrap().starts_with(DMTF))
            .all(|l| l["auth"] == "basic"),
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_found_only_through_links_and_closed_when_the_driver_is_dropped() {
    let emu = dmtf(&["sessions_at_root", "no_basic_auth"], json!({}));
    let bmc = driver(&emu);
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::On);
    let state = emu.state().await;
    assert_eq!(state["sessions"], json!(["/redfish/v1/Sessions/1"]));
    drop(bmc);
    eventually(
        Duration::from_secs(5),
        "session deleted on drop",
        || async { (emu.state().await["sessions"] == json!([])).then_some(()) },
    )
    .await;
}
