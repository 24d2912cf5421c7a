//! The controller binary with its output in a file, as a Pod's log or `nohup … >file` has it:
//! no colour escapes there, and with `--log-format json` one JSON object per line. With
//! `--admission-policy` naming a policy that does not narrow its identity it writes nothing, not
//! even its Lease. Runs against the real API server started by `hack/controlplane.sh`
//! (`GROUNDWORK_TEST_CONTROLPLANE`).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

fn kubeconfig() -> PathBuf {
    let dir = std::env::var("GROUNDWORK_TEST_CONTROLPLANE").expect(
        "GROUNDWORK_TEST_CONTROLPLANE is not set: run the tests through hack/test.sh, which starts a real kube-apiserver",
    );
    let path = PathBuf::from(dir).join("kubeconfig");
    assert!(
        path.exists(),
        "no {}: is the control plane up?",
        path.display()
    );
    path
}

/// The binary running with stdout and stderr in `log`; killed on drop.
struct Controller {
    child: Child,
    log: PathBuf,
}

impl Controller {
    /// Starts it with the Lease `lease` in `default`, watching a namespace of that name.
    fn start(lease: &str, extra: &[&str]) -> Self {
        let log = std::env::temp_dir().join(format!("{lease}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_groundwork-controller"))
            .args(["--namespace", lease, "--lease-name", lease])
            .args([
                "--lease-namespace",
                "default",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("KUBECONFIG", kubeconfig())
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .env_remove("GROUNDWORK_LOG_FORMAT")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap()).into_owned()
    }

    /// Waits until the log contains `needle`.
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.text().contains(needle) {
            let exited = self.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "no {needle:?} in the log (exit: {exited:?}):\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops it with SIGTERM (as Kubernetes does) and returns its whole log.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let text = self.text();
        assert!(status.success(), "{status}:\n{text}");
        text
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

#[test]
fn a_text_log_in_a_file_has_no_colour_escapes() {
    let lease = format!("log-text-{}", std::process::id());
    let mut controller = Controller::start(&lease, &[]);
    controller.wait_for("leading");
    let log = controller.stop();
    assert!(
        log.contains(" INFO ") && log.contains("shutting down"),
        "{log}"
    );
    assert!(
        !log.contains('\x1b'),
        "colour escapes in a log file:\n{log:?}"
    );
}

#[tokio::test]
async fn json_lines_and_no_write_before_the_admission_policy_is_enforced() {
    let lease = format!("log-json-{}", std::process::id());
    let mut controller = Controller::start(
        &lease,
        &[
            "--log-format",
            "json",
            "--admission-policy",
            "no-such-policy",
        ],
    );
    // Admin identity, no such policy: the probe Server would be created, so nothing starts.
    controller.wait_for("AdmissionPolicyNotEnforced");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig()).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let leases: Api<Lease> = Api::namespaced(kube::Client::try_from(config).unwrap(), "default");
    assert!(
        leases.get_opt(&lease).await.unwrap().is_none(),
        "a Lease was written"
    );
    let log = controller.stop();
    assert!(!log.contains("waiting for leadership"), "{log}");
    assert!(!log.contains('\x1b'), "{log:?}");
    let lines: Vec<serde_json::Value> = log
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
        "{log}"
    );
}
