//! The controller binary with its output in a file, as a Pod's log or `nohup … >file` has it:
//! no colour escapes there, and with `--log-format json` one JSON object per line. With
//! `--admission-policy` naming a policy that does not narrow its identity it writes nothing, not
//! even its Lease. Runs against the real API server started by `hack/controlplane.sh`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use e2e::process::ControllerProcess;
use e2e::{admin_client, namespace};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

fn flags(extra: &[&str]) -> Vec<String> {
    extra.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn a_text_log_in_a_file_has_no_colour_escapes() {
    let ns = namespace(&admin_client().await, "log-text").await;
    let log = std::env::temp_dir().join(format!("{ns}.log"));
    let mut controller = ControllerProcess::spawn(&ns, "log-text", &[], &log);
    controller.wait_for_log("leading").await;
    let exit = controller.stop().await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(exit.success(), "{exit}:\n{text}");
    assert!(
        text.contains(" INFO ") && text.contains("shutting down"),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "colour escapes in a log file:\n{text:?}"
    );
    std::fs::remove_file(&log).unwrap();
}

#[tokio::test]
async fn json_lines_and_no_write_before_the_admission_policy_is_enforced() {
    let client = admin_client().await;
    let ns = namespace(&client, "log-json").await;
    let log = std::env::temp_dir().join(format!("{ns}.log"));
    let extra = flags(&[
        "--log-format",
        "json",
        "--admission-policy",
        "no-such-policy",
    ]);
    let mut controller = ControllerProcess::spawn(&ns, "log-json", &extra, &log);
    // Admin identity, no such policy: the probe Server would be created, so nothing starts.
    controller.wait_for_log("AdmissionPolicyNotEnforced").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leases: Api<Lease> = Api::namespaced(client, &ns);
    assert!(
        leases.get_opt("log-json").await.unwrap().is_none(),
        "a Lease was written"
    );
    let exit = controller.stop().await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(exit.success(), "{exit}:\n{text}");
    assert!(!text.contains("waiting for leadership"), "{text}");
    assert!(!text.contains('\x1b'), "{text:?}");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let warning = lines
        .iter()
        .find(|l| l["fields"]["reason"] == "AdmissionPolicyNotEnforced")
        .unwrap();
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["fields"]["policy"], "no-such-policy");
    assert!(
        lines.iter().all(|l| l["fields"]["message"].is_string()),
        "{text}"
    );
    std::fs::remove_file(&log).unwrap();
}
