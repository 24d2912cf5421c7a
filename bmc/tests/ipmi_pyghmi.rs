//! The IPMI driver (ipmitool -I lanplus) against the pyghmi BMC simulator
//! (hack/bmc/ipmi_sim.py), several BMCs in one process, cross-checked with
//! Debian's ipmitool run independently by the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bmc::ipmi::boot_flags;
use bmc::{
    Bmc, BmcAddress, BootDevice, BootMode, BootPersistence, Credentials, DriverConfig, PowerAction,
    PowerState, TlsOptions,
};
use common::{IpmiSim, TempDir, require_binary, test_config};

const USER: &str = "admin";
const PASSWORD: &str = "ipmi-Pa55";

/// An `ipmitool` wrapper that appends its own /proc/self/cmdline and whether
/// IPMI_PASSWORD is set to a log, records its PID, then execs the real one.
struct Wrapper {
    dir: TempDir,
    path: PathBuf,
}

impl Wrapper {
    fn new() -> Self {
        let real = require_binary("ipmitool");
        let dir = TempDir::new("ipmitool-wrapper");
        let path = dir.path().join("ipmitool");
        let log = dir.path().join("calls.log");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\n\
                 {{ tr '\\0' ' ' < /proc/$$/cmdline; echo; \
                 if [ -n \"$IPMI_PASSWORD\" ]; then echo 'ENV IPMI_PASSWORD set'; fi; echo \"PID $$\"; }} >> '{}'\n\
                 exec '{}' \"$@\"\n",
                log.display(),
                real.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Wrapper { dir, path }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("calls.log")).unwrap_or_default()
    }
    fn cmdlines(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("lanplus"))
            .map(str::to_string)
            .collect()
    }
}

/// [`test_config`] with room for a simulator slowed by a loaded CI machine (a cold CI run once
/// saw the pyghmi simulator leave three session openings in a row unanswered): for tests about
/// what the BMC does, not how long it takes.
fn patient_config() -> DriverConfig {
    DriverConfig {
        retries: 5,
        backoff_max: Duration::from_secs(2),
        ..test_config()
    }
}

fn driver(address: &str, password: &str, cfg: DriverConfig) -> std::sync::Arc<dyn Bmc> {
    bmc::connect(
        BmcAddress::parse(address).unwrap(),
        Credentials::new(USER, password),
        TlsOptions::default(),
        cfg,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_from_mc_info_and_guid() {
    let sim = IpmiSim::start(2, USER, PASSWORD);
    let bmc = driver(&sim.address(1), PASSWORD, patient_config());
    let id = bmc.identity().await.unwrap();
    assert_eq!(id.bmc_firmware_version.as_deref(), Some("2.31"));
    let expected = format!("5a5a0000-0000-4000-8000-{:012x}", sim.ports[1]);
    assert_eq!(id.uuid.as_deref(), Some(expected.as_str()));
    assert!(id.manufacturer.is_some(), "{id:?}");
    // The independent reading agrees.
    assert!(sim.ipmitool(1, &["mc", "guid"]).contains(&expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_changes_cross_checked_with_ipmitool() {
    let sim = IpmiSim::start(2, USER, PASSWORD);
    let bmc = driver(&sim.address(0), PASSWORD, patient_config());
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::Off);
    bmc.power(PowerAction::On).await.unwrap();
    assert_eq!(
        sim.ipmitool(0, &["power", "status"]).trim(),
        "Chassis Power is on"
    );
    // The other BMC in the same process is untouched.
    assert_eq!(
        sim.ipmitool(1, &["power", "status"]).trim(),
        "Chassis Power is off"
    );
    bmc.power(PowerAction::Reset).await.unwrap();
    bmc.power(PowerAction::Cycle).await.unwrap();
    bmc.power(PowerAction::GracefulOff).await.unwrap();
    assert_eq!(
        sim.ipmitool(0, &["power", "status"]).trim(),
        "Chassis Power is off"
    );
    // Off already: no command sent. Cycle of an off machine powers it on.
    bmc.power(PowerAction::Off).await.unwrap();
    bmc.power(PowerAction::Cycle).await.unwrap();
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::On);
    bmc.power(PowerAction::Off).await.unwrap();
    assert_eq!(
        sim.ipmitool(0, &["power", "status"]).trim(),
        "Chassis Power is off"
    );
    let events: Vec<String> = sim
        .events_for(0)
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(e).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        events,
        vec![
            "power_on",
            "power_reset",
            "power_cycle",
            "power_shutdown",
            "power_on",
            "power_off"
        ]
    );
    assert!(sim.events_for(1).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_device_cross_checked_with_ipmitool() {
    let sim = IpmiSim::start(1, USER, PASSWORD);
    let bmc = driver(&sim.address(0), PASSWORD, patient_config());
    bmc.set_boot(BootDevice::Pxe, BootPersistence::Persistent, BootMode::Uefi)
        .await
        .unwrap();
    let flags = boot_flags(&sim.ipmitool(0, &["chassis", "bootparam", "get", "5"]));
    assert_eq!(flags.device.as_deref(), Some("Force PXE"));
    assert!(flags.persistent && flags.efi, "{flags:?}");
    bmc.set_boot(BootDevice::Disk, BootPersistence::Once, BootMode::Legacy)
        .await
        .unwrap();
    let flags = boot_flags(&sim.ipmitool(0, &["chassis", "bootparam", "get", "5"]));
    assert_eq!(
        flags.device.as_deref(),
        Some("Force Boot from default Hard-Drive")
    );
    assert!(!flags.persistent && !flags.efi, "{flags:?}");
    bmc.set_boot(BootDevice::VirtualCd, BootPersistence::Once, BootMode::Uefi)
        .await
        .unwrap();
    let flags = boot_flags(&sim.ipmitool(0, &["chassis", "bootparam", "get", "5"]));
    assert_eq!(flags.device.as_deref(), Some("Force Boot from CD/DVD"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cipher_fallback_17_to_3_is_remembered_and_password_stays_out_of_argv() {
    let sim = IpmiSim::start(1, USER, PASSWORD);
    let wrapper = Wrapper::new();
    let cfg = DriverConfig {
        ipmitool_path: wrapper.path.clone(),
        ..test_config()
    };
    assert_eq!(cfg.ipmi_cipher_suite, 17);
    let bmc = driver(&sim.address(0), PASSWORD, cfg.clone());
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::Off);
    let calls = wrapper.cmdlines();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls[0].contains(" -C 17 "), "{}", calls[0]);
    assert!(calls[1].contains(" -C 3 "), "{}", calls[1]);
    // Remembered per endpoint, also by a new driver instance.
    let again = driver(&sim.address(0), PASSWORD, cfg);
    again.power(PowerAction::On).await.unwrap();
    let calls = wrapper.cmdlines();
    assert!(calls[2..].iter().all(|c| c.contains(" -C 3 ")), "{calls:?}");
    // The password is never in any child's argv, always in its environment.
    let log = wrapper.log();
    assert!(!log.contains(PASSWORD), "password leaked into argv:\n{log}");
    assert!(
        calls
            .iter()
            .all(|c| c.contains(" -E ") && !c.contains(" -P ")),
        "{calls:?}"
    );
    assert_eq!(log.matches("ENV IPMI_PASSWORD set").count(), calls.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_authentication_failed() {
    let sim = IpmiSim::start(1, USER, PASSWORD);
    let bmc = driver(&sim.address(0), "wrong-pass", test_config());
    let err = bmc.power_state().await.unwrap_err();
    assert_eq!(err.reason(), "AuthenticationFailed", "{err}");
    assert!(err.to_string().contains("RAKP"), "{err}");
    assert!(!format!("{err:?} {bmc:?}").contains("wrong-pass"));
    // With suite 3 configured directly, same answer.
    let cfg = DriverConfig {
        ipmi_cipher_suite: 3,
        ..test_config()
    };
    let err = driver(&sim.address(0), "wrong-pass", cfg)
        .power_state()
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "AuthenticationFailed", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_bmc_times_out_and_the_child_is_killed() {
    // A UDP socket that never answers: ipmitool would keep retrying.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let wrapper = Wrapper::new();
    let timeout = Duration::from_millis(1500);
    let cfg = DriverConfig {
        request_timeout: timeout,
        ipmitool_path: wrapper.path.clone(),
        ipmi_cipher_suite: 3,
        ..test_config()
    };
    let bmc = driver(&format!("ipmi://127.0.0.1:{port}"), PASSWORD, cfg);
    let start = Instant::now();
    let err = bmc.power_state().await.unwrap_err();
    let took = start.elapsed();
    assert!(
        matches!(err.reason(), "Timeout" | "BMCUnreachable"),
        "{err}"
    );
    assert_eq!(err.reason(), "Timeout", "{err}");
    assert!(took < timeout + Duration::from_millis(1500), "{took:?}");
    let pid: u32 = wrapper
        .log()
        .lines()
        .find_map(|l| l.strip_prefix("PID ").map(|p| p.trim().parse().unwrap()))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z"),
        "ipmitool {pid} still running after the timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_unreachable() {
    let port = common::free_udp_port();
    let cfg = DriverConfig {
        retries: 0,
        ipmi_cipher_suite: 3,
        ..test_config()
    };
    let bmc = driver(&format!("ipmi://127.0.0.1:{port}"), PASSWORD, cfg);
    let err = bmc.power_state().await.unwrap_err();
    assert_eq!(err.reason(), "BMCUnreachable", "{err}");
}
