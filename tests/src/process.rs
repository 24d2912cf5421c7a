//! The controller binary as a child process, for what only a process can suffer: SIGKILL at
//! an arbitrary moment (no graceful shutdown, no flushed state, a Lease left held).

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{controlplane_dir, eventually};

/// A `groundwork-controller` process of the workspace's debug build, with the admin kubeconfig.
pub struct ControllerProcess {
    child: Child,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

/// The `groundwork-controller` binary next to this test's own executable (`target/<profile>`),
/// built by `cargo build --workspace` (hack/test.sh's build stage).
pub fn controller_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("groundwork-controller");
    assert!(
        bin.exists(),
        "{} missing: run `cargo build -p controller --bin groundwork-controller` first (hack/test.sh does)",
        bin.display()
    );
    bin
}

impl ControllerProcess {
    /// Starts the binary watching `namespace` with `extra` flags, leader election through a
    /// Lease of its own in `namespace` (`lease_seconds` long), and waits until it leads and its
    /// caches synced (`/readyz`). Output is appended to `log`.
    pub async fn start(namespace: &str, extra: &[String], lease_seconds: u64, log: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = File::options().create(true).append(true).open(log).unwrap();
        let child = Command::new(controller_binary())
            .env("KUBECONFIG", controlplane_dir().join("kubeconfig"))
            .env("RUST_LOG", "info,kube=warn")
            .args(["--namespace", namespace, "--resync-seconds", "3600"])
            .args([
                "--lease-name",
                "groundwork-test",
                "--lease-namespace",
                namespace,
            ])
            .args(["--lease-seconds", &lease_seconds.to_string()])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut running = Self {
            child,
            log: log.to_path_buf(),
        };
        let url = format!("http://127.0.0.1:{port}/readyz");
        let wait = lease_seconds * 2 + 30;
        eventually(
            Duration::from_secs(wait),
            "the controller process to lead and be ready",
            || {
                let exited = running.child.try_wait().unwrap();
                assert!(
                    exited.is_none(),
                    "the controller exited ({exited:?}): {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
                let ready = Command::new("curl")
                    .args(["-sf", "-o", "/dev/null", "--max-time", "2", &url])
                    .status()
                    .unwrap()
                    .success();
                async move { ready.then_some(()) }
            },
        )
        .await;
        running
    }

    /// SIGKILL, then reaps the process.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
