//! Test harness: real peers started as child processes on free loopback ports
//! and killed by PID when their guard drops. A missing peer (python module,
//! binary) fails the test with a message pointing at `hack/deps/bmc.sh`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod emulator;
pub mod proxy;
pub mod recorded;
#[path = "../../../tests/src/wait.rs"]
pub mod wait;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const INSTALL_HINT: &str = "run `bash hack/deps/bmc.sh` to install the BMC test peers";

/// Repository root (the workspace).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Panic unless `python3 -c "import <module>"` works.
pub fn require_python_module(module: &str) {
    let ok = Command::new(python())
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "python module `{module}` is missing: {INSTALL_HINT}");
}

/// Panic unless `bin` is on PATH; returns its path.
pub fn require_binary(bin: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{bin}` not found on PATH: {INSTALL_HINT}"))
}

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "bmc-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kills the child by PID (SIGKILL) and reaps it on drop.
pub struct ChildGuard {
    pub name: String,
    pub child: Child,
}

impl ChildGuard {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early with {status}", self.name);
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_tcp(port: u16, guard: &mut ChildGuard, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = guard.child.try_wait() {
            let out = std::fs::read_to_string(log).unwrap_or_default();
            panic!(
                "{} exited with {status} before listening:\n{out}",
                guard.name
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = std::fs::read_to_string(log).unwrap_or_default();
    panic!(
        "{} did not listen on {port} within 30 s:\n{out}",
        guard.name
    );
}

/// One emulated system.
#[derive(Debug, Clone)]
pub struct FakeSystem {
    pub uuid: String,
    pub name: String,
    pub mac: String,
}

/// Options for a sushy-tools instance.
#[derive(Debug, Clone, Default)]
pub struct SushyOptions {
    pub systems: usize,
    /// Fixed power-change delay (seconds) patched into the fake driver.
    pub power_delay_secs: u32,
    /// (username, password): enables basic auth with a bcrypt htpasswd file.
    pub basic_auth: Option<(String, String)>,
    /// Serve HTTPS with a certificate signed by a CA made for this instance.
    pub tls: bool,
    /// Initial power state of every system ("On" / "Off").
    pub initial_power: Option<&'static str>,
    /// Record the emulator's own state changes (its external notifier, see
    /// [`Sushy::power_trail`]).
    pub notifications: bool,
}

/// A running sushy-tools emulator (fake driver) with its own state dir.
pub struct Sushy {
    pub port: u16,
    pub systems: Vec<FakeSystem>,
    /// PEM of the CA that signed the server certificate (TLS only).
    pub ca_pem: Option<Vec<u8>>,
    pub scheme: &'static str,
    pub dir: TempDir,
    pub guard: ChildGuard,
    notifications: Option<Notifications>,
}

/// Receives the documents sushy-tools' fake driver PUTs to `EXTERNAL_NOTIFICATION_URL` on every
/// change of a system with `external_notifier` set: the whole system, power state and pending
/// power change included. Served by its own thread; stops when dropped.
struct Notifications {
    url: String,
    seen: Arc<Mutex<Vec<serde_json::Value>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Notifications {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let record = seen.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let app = axum::Router::new().fallback(
                    move |axum::Json(doc): axum::Json<serde_json::Value>| {
                        record.lock().unwrap().push(doc);
                        async {}
                    },
                );
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Notifications {
            url,
            seen,
            _stop: stop,
        }
    }
}

impl Sushy {
    pub fn start(opts: SushyOptions) -> Self {
        require_python_module("sushy_tools.emulator.main");
        let dir = TempDir::new("sushy");
        let port = free_tcp_port();
        let systems: Vec<FakeSystem> = (0..opts.systems.max(1))
            .map(|i| FakeSystem {
                uuid: format!("{:08x}-0000-4000-8000-{:012x}", port as u32, i + 1),
                name: format!("node-{i}"),
                mac: format!(
                    "52:54:00:{:02x}:{:02x}:{:02x}",
                    (port >> 8) & 0xff,
                    port & 0xff,
                    i & 0xff
                ),
            })
            .collect();
        let power = opts.initial_power.unwrap_or("Off");
        let notifications = opts.notifications.then(Notifications::start);
        let notify = if notifications.is_some() {
            "True"
        } else {
            "False"
        };
        let sys_py: Vec<String> = systems
            .iter()
            .map(|s| {
                format!(
                    "{{'uuid': '{}', 'name': '{}', 'power_state': '{power}', 'external_notifier': {notify}, 'nics': [{{'mac': '{}', 'ip': '192.0.2.10'}}]}}",
                    s.uuid, s.name, s.mac
                )
            })
            .collect();
        let mut conf = format!(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = {port}\n\
             SUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_STATE_DIR = '{}'\n\
             SUSHY_EMULATOR_FAKE_SYSTEMS = [{}]\n",
            dir.path().join("state").display(),
            sys_py.join(", ")
        );
        if let Some(n) = &notifications {
            conf += &format!("EXTERNAL_NOTIFICATION_URL = '{}'\n", n.url);
        }
        if let Some((user, pass)) = &opts.basic_auth {
            let htpasswd = dir.path().join("htpasswd");
            let hash = bcrypt_hash(pass);
            std::fs::write(&htpasswd, format!("{user}:{hash}\n")).unwrap();
            conf += &format!("SUSHY_EMULATOR_AUTH_FILE = '{}'\n", htpasswd.display());
        }
        let mut ca_pem = None;
        if opts.tls {
            let (ca, cert, key) = make_certs(dir.path());
            conf += &format!(
                "SUSHY_EMULATOR_SSL_CERT = '{}'\nSUSHY_EMULATOR_SSL_KEY = '{}'\n",
                cert.display(),
                key.display()
            );
            ca_pem = Some(std::fs::read(ca).unwrap());
        }
        let conf_path = dir.path().join("emulator.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = dir.path().join("emulator.log");
        let logf = std::fs::File::create(&log).unwrap();
        let child = Command::new(python())
            .arg(repo_root().join("hack/bmc/sushy_launcher.py"))
            .arg("--config")
            .arg(&conf_path)
            .env("SUSHY_FAKE_POWER_DELAY", opts.power_delay_secs.to_string())
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sushy-tools: {e}: {INSTALL_HINT}"));
        let mut guard = ChildGuard {
            name: format!("sushy-tools on {port}"),
            child,
        };
        wait_for_tcp(port, &mut guard, &log);
        Sushy {
            port,
            systems,
            ca_pem,
            scheme: if opts.tls {
                "redfish+https"
            } else {
                "redfish+http"
            },
            dir,
            guard,
            notifications,
        }
    }

    /// System `i`'s power as the emulator recorded it, one entry per change it notified:
    /// `"On"`, `"Off"`, or `"Off, pending ForceRestart"` while a requested change is not applied
    /// yet. Needs [`SushyOptions::notifications`].
    pub fn power_trail(&self, i: usize) -> Vec<String> {
        let n = self
            .notifications
            .as_ref()
            .expect("started without SushyOptions::notifications");
        n.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|doc| doc["uuid"] == self.systems[i].uuid.as_str())
            .map(|doc| {
                let power = doc["power_state"].as_str().unwrap_or("?");
                match doc["pending_power"]["power_state"].as_str() {
                    Some(pending) => format!("{power}, pending {pending}"),
                    None => power.to_string(),
                }
            })
            .collect()
    }

    /// Address of system `i` by UUID.
    pub fn address(&self, i: usize) -> String {
        format!(
            "{}://127.0.0.1:{}/redfish/v1/Systems/{}",
            self.scheme, self.port, self.systems[i].uuid
        )
    }

    /// Address of system `i` by name (sushy-tools redirects it to the UUID URL).
    pub fn address_by_name(&self, i: usize) -> String {
        format!(
            "{}://127.0.0.1:{}/redfish/v1/Systems/{}",
            self.scheme, self.port, self.systems[i].name
        )
    }

    pub fn http_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The emulator's log, without the ANSI colour werkzeug (the HTTP server under
    /// sushy-tools) puts around request lines whatever its output is.
    pub fn log(&self) -> String {
        let raw = std::fs::read_to_string(self.dir.path().join("emulator.log")).unwrap_or_default();
        strip_ansi(&raw)
    }
}

/// `text` without ANSI SGR sequences (`ESC [ … m`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("\x1b[") {
        out.push_str(&rest[..at]);
        rest = &rest[at + 2..];
        match rest.find('m') {
            Some(end) => rest = &rest[end + 1..],
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}

/// A bcrypt hash with few rounds (sushy-tools checks it on every request).
pub fn bcrypt_hash(password: &str) -> String {
    require_python_module("bcrypt");
    let out = Command::new(python())
        .args([
            "-c",
            "import bcrypt,sys; print(bcrypt.hashpw(sys.stdin.read().encode(), bcrypt.gensalt(rounds=4)).decode())",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(password.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "bcrypt hashing failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A CA and a server certificate for 127.0.0.1/localhost, made with the
/// `openssl` CLI. Returns (ca.pem, server.pem, server.key).
pub fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    require_binary("openssl");
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=groundwork-test-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// The pyghmi IPMI simulator (hack/bmc/ipmi_sim.py) serving several BMCs.
pub struct IpmiSim {
    pub ports: Vec<u16>,
    pub user: String,
    pub password: String,
    pub events: Arc<Mutex<Vec<String>>>,
    pub guard: ChildGuard,
}

impl IpmiSim {
    pub fn start(count: usize, user: &str, password: &str) -> Self {
        require_python_module("pyghmi.ipmi.bmc");
        let ports: Vec<u16> = (0..count).map(|_| free_udp_port()).collect();
        let mut cmd = Command::new(python());
        cmd.arg(repo_root().join("hack/bmc/ipmi_sim.py")).args([
            "--user",
            user,
            "--password",
            password,
        ]);
        for p in &ports {
            cmd.arg("--port").arg(p.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start ipmi_sim.py: {e}: {INSTALL_HINT}"));
        let stdout = child.stdout.take().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let ev = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "READY" {
                    let _ = tx.send(());
                }
                ev.lock().unwrap().push(line);
            }
        });
        let mut guard = ChildGuard {
            name: "ipmi_sim.py".into(),
            child,
        };
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            guard.assert_alive();
            panic!("ipmi_sim.py did not become ready");
        }
        IpmiSim {
            ports,
            user: user.into(),
            password: password.into(),
            events,
            guard,
        }
    }

    pub fn address(&self, i: usize) -> String {
        format!("ipmi://127.0.0.1:{}", self.ports[i])
    }

    /// Events the simulator printed for BMC `i`.
    pub fn events_for(&self, i: usize) -> Vec<String> {
        let needle = format!("\"port\": {}", self.ports[i]);
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(&needle))
            .cloned()
            .collect()
    }

    /// Run Debian's ipmitool directly (cipher suite 3) for cross-checks.
    pub fn ipmitool(&self, i: usize, args: &[&str]) -> String {
        let out = Command::new(require_binary("ipmitool"))
            .args([
                "-I",
                "lanplus",
                "-H",
                "127.0.0.1",
                "-p",
                &self.ports[i].to_string(),
                "-U",
                &self.user,
                "-E",
                "-C",
                "3",
            ])
            .args(args)
            .env("IPMI_PASSWORD", &self.password)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ipmitool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// Fast-failing test configuration.
pub fn test_config() -> bmc::DriverConfig {
    bmc::DriverConfig {
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        retries: 2,
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..bmc::DriverConfig::default()
    }
}

/// A plain reqwest client for test helpers (installs ring as the process's
/// default rustls provider, which only test binaries do).
pub fn http_client() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// GET a JSON document directly (for cross-checks), no auth.
pub async fn raw_get(url: &str) -> serde_json::Value {
    let client = http_client()
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .unwrap();
    client.get(url).send().await.unwrap().json().await.unwrap()
}
