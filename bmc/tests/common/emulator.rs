//! The strict Redfish emulator (hack/bmc/redfish_emulator.py) serving one tree of the
//! vendor corpus (tests/corpus/) with vendor quirks switched on, as a child process killed
//! by PID when dropped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{ChildGuard, INSTALL_HINT, python, repo_root};

pub const USER: &str = "conformance";
pub const PASSWORD: &str = "c0nf0rmance-pass";

/// A running emulator.
pub struct StrictBmc {
    pub ports: Vec<u16>,
    /// The ComputerSystem path the test drives.
    pub system: String,
    pub guard: ChildGuard,
}

/// What to start: a corpus tree, quirks, and documents merged over the tree.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    pub tree: &'static str,
    pub system: &'static str,
    pub quirks: Vec<String>,
    /// `{path: partial document}` merged into the tree before serving.
    pub set: Option<Value>,
    /// Serve N clones of the system (fleet mode) on `ports` ports.
    pub fleet: usize,
    pub ports: usize,
}

impl StrictBmc {
    pub fn start(setup: &Setup) -> StrictBmc {
        let tree = repo_root().join(format!("bmc/tests/corpus/{}.json", setup.tree));
        assert!(tree.is_file(), "no corpus tree {}", tree.display());
        let mut cmd = Command::new(python());
        cmd.arg(repo_root().join("hack/bmc/redfish_emulator.py"))
            .arg("--tree")
            .arg(&tree)
            .args(["--user", USER, "--password", PASSWORD]);
        for q in &setup.quirks {
            cmd.args(["--quirk", q]);
        }
        if let Some(set) = &setup.set {
            cmd.args(["--set", &set.to_string()]);
        }
        if setup.fleet > 0 {
            cmd.args(["--fleet", &setup.fleet.to_string()]);
        }
        if setup.ports > 1 {
            cmd.args(["--ports", &setup.ports.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redfish_emulator.py: {e}: {INSTALL_HINT}"));
        let stdout = child.stdout.take().unwrap();
        let mut guard = ChildGuard {
            name: format!("redfish_emulator.py {}", setup.tree),
            child,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(ports) = line.strip_prefix("READY ") {
                    let _ = tx.send(ports.to_string());
                }
            }
        });
        let Ok(ports) = rx.recv_timeout(Duration::from_secs(30)) else {
            guard.assert_alive();
            panic!("redfish_emulator.py did not become ready");
        };
        StrictBmc {
            ports: ports
                .split_whitespace()
                .map(|p| p.parse().unwrap())
                .collect(),
            system: setup.system.to_string(),
            guard,
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[0])
    }

    /// The driver address of the system.
    pub fn address(&self) -> String {
        format!("redfish+http://127.0.0.1:{}{}", self.ports[0], self.system)
    }

    /// Sessions, request log, boots and the system's documents, as the emulator sees them.
    pub async fn state(&self) -> Value {
        self.control("state").await
    }

    /// Requests served (this one included), peak in flight and open sessions.
    pub async fn stats(&self) -> Value {
        self.control("stats").await
    }

    async fn control(&self, what: &str) -> Value {
        super::http_client()
            .build()
            .unwrap()
            .get(format!("{}/_emulator/{what}", self.base()))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn clear_log(&self) {
        super::http_client()
            .build()
            .unwrap()
            .post(format!("{}/_emulator/clear-log", self.base()))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .unwrap();
    }

    /// The current document at `path`.
    pub async fn doc(&self, path: &str) -> Value {
        self.state().await["docs"][path].clone()
    }
}
