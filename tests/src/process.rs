//! The controller binary as a child process, for what only a process shows: SIGKILL at an
//! arbitrary moment (no graceful shutdown, a Lease left held), SIGTERM as Kubernetes sends
//! it, and its output in a file as a Pod's log has it.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::{controlplane_dir, eventually};

/// A `groundwork-controller` process of the workspace's debug build, with the admin kubeconfig.
pub struct ControllerProcess {
    child: Child,
    /// The child is a shell that starts the binary again whenever it exits (its own process
    /// group, killed as a whole).
    supervised: bool,
    /// Its stdout and stderr.
    pub log: PathBuf,
    /// Its `/metrics`, `/healthz` and `/readyz` port on 127.0.0.1.
    pub port: u16,
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
    /// Spawns the binary watching `namespace`, with its leader-election Lease `lease` in
    /// `namespace` and `extra` flags; stdout and stderr go to `log` (appended). Only the
    /// environment given here reaches it (no RUST_LOG, NO_COLOR, … of the test's).
    pub fn spawn(namespace: &str, lease: &str, extra: &[String], log: &Path) -> Self {
        Self::spawn_on(
            &controlplane_dir().join("kubeconfig"),
            namespace,
            lease,
            extra,
            log,
        )
    }

    /// [`Self::spawn`] against the API server of `kubeconfig`.
    pub fn spawn_on(
        kubeconfig: &Path,
        namespace: &str,
        lease: &str,
        extra: &[String],
        log: &Path,
    ) -> Self {
        Self::launch(kubeconfig, namespace, lease, extra, log, false)
    }

    /// [`Self::spawn_on`], started again a second after each exit, as a Deployment's Pod is
    /// restarted: a controller that loses its Lease (the API server unreachable for longer)
    /// exits by design. Each restart is a `supervisor:` line in the log.
    pub fn supervised_on(
        kubeconfig: &Path,
        namespace: &str,
        lease: &str,
        extra: &[String],
        log: &Path,
    ) -> Self {
        Self::launch(kubeconfig, namespace, lease, extra, log, true)
    }

    fn launch(
        kubeconfig: &Path,
        namespace: &str,
        lease: &str,
        extra: &[String],
        log: &Path,
        supervised: bool,
    ) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = File::options().create(true).append(true).open(log).unwrap();
        let mut command = if supervised {
            let mut c = Command::new("sh");
            c.args([
                "-c",
                r#"while :; do "$0" "$@"; echo "supervisor: exited with $?; restarting in 1 s"; sleep 1; done"#,
            ])
            .arg(controller_binary())
            .process_group(0);
            c
        } else {
            Command::new(controller_binary())
        };
        let child = command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", kubeconfig)
            .args(["--namespace", namespace, "--resync-seconds", "3600"])
            .args(["--lease-name", lease, "--lease-namespace", namespace])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Self {
            child,
            supervised,
            log: log.to_path_buf(),
            port,
        }
    }

    /// [`Self::spawn`] with a Lease of `lease_seconds`, then waits until it leads and its
    /// caches synced (`/readyz`).
    pub async fn start(namespace: &str, extra: &[String], lease_seconds: u64, log: &Path) -> Self {
        let mut flags = vec!["--lease-seconds".to_string(), lease_seconds.to_string()];
        flags.extend_from_slice(extra);
        Self::spawn(namespace, "groundwork-test", &flags, log)
            .ready(lease_seconds)
            .await
    }

    /// Waits until it leads and its caches synced (`/readyz`; a Lease of `lease_seconds`).
    pub async fn ready(mut self, lease_seconds: u64) -> Self {
        let running = &mut self;
        let url = format!("http://127.0.0.1:{}/readyz", running.port);
        let wait = lease_seconds * 2 + 30;
        eventually(
            Duration::from_secs(wait),
            "the controller process to lead and be ready",
            || {
                running.assert_running();
                let ready = Command::new("curl")
                    .args(["-sf", "-o", "/dev/null", "--max-time", "2", &url])
                    .status()
                    .unwrap()
                    .success();
                async move { ready.then_some(()) }
            },
        )
        .await;
        self
    }

    /// Its output so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    fn assert_running(&mut self) {
        let exited = self.child.try_wait().unwrap();
        assert!(
            exited.is_none(),
            "the controller exited ({exited:?}):\n{}",
            self.text()
        );
    }

    /// Waits until its output contains `needle` (failing if it exits first).
    pub async fn wait_for_log(&mut self, needle: &str) {
        eventually(
            Duration::from_secs(30),
            &format!("{needle:?} in the controller's log"),
            || {
                self.assert_running();
                let found = self.text().contains(needle);
                async move { found.then_some(()) }
            },
        )
        .await;
    }

    /// SIGTERM (as Kubernetes stops a Pod) and waits for the exit.
    pub async fn stop(mut self) -> ExitStatus {
        assert!(
            !self.supervised,
            "a supervised process is only stopped by drop"
        );
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        eventually(
            Duration::from_secs(30),
            "the controller to exit after SIGTERM",
            || {
                let exited = self.child.try_wait().unwrap();
                async move { exited }
            },
        )
        .await
    }

    /// SIGKILL, then reaps the process.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        if self.supervised {
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
