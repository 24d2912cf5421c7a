//! BMC fleet benchmark: N Servers whose Redfish systems are spread over K sushy-tools processes
//! (`--emulator sushy`, the default), or served by the strict emulator in fleet mode
//! (`--emulator strict`: hack/bmc/redfish_emulator.py, one process, N systems over `--ports`
//! ports, so BMCs are distinct origins as in a real fleet).
//!
//! Prints, beside each other: the time from the last create to every Server being Available with
//! PowerMatchesSpec=True, the peak number of BMC requests in flight (counted by a proxy in this
//! process in front of each emulator port), the controller's peak RSS
//! beside its RSS before the first Server (baseline, same run), and the baseline — a plain
//! load client against the same emulators (their own request ceiling) — beside the controller's
//! achieved BMC request rate, with the ratio. Run through `hack/bench-bmc-fleet.sh`; never a
//! timed test. Every process it starts is killed by PID when its guard drops, also on panic.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, Response, StatusCode};
use crds::Server;
use e2e::{AuditWindow, admin_client, namespace};
use futures::{StreamExt, stream};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const IN_FLIGHT: usize = 64;
const BASELINE_CONCURRENCY: usize = 64;
/// The controller's default `--bmc-concurrency`.
const BMC_CONCURRENCY: u32 = 64;
const USER: &str = "admin";
const PASSWORD: &str = "bench-password";

fn arg(name: &str, default: u32) -> u32 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().unwrap())
}

/// Kills the child by PID (SIGKILL) and reaps it on drop.
struct ChildGuard {
    name: String,
    child: Child,
}

impl ChildGuard {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn assert_alive(&mut self) {
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

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn arg_str(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or_else(|| default.to_string(), Clone::clone)
}

/// System i's UUID, as both emulators are told (hack/bmc/redfish_emulator.py `fleet_uuid`).
fn uuid(i: u32) -> String {
    format!("f1ee7000-0000-4000-8000-{i:012x}")
}

fn mac(i: u32) -> String {
    format!(
        "52:54:01:{:02x}:{:02x}:{:02x}",
        (i >> 16) & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

/// One sushy-tools process (fake driver, plain HTTP) serving `systems`, all Off.
struct Emulator {
    port: u16,
    guard: ChildGuard,
    log: PathBuf,
}

fn bcrypt_hash(password: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            &format!("import bcrypt; print(bcrypt.hashpw(b'{password}', bcrypt.gensalt(rounds=4)).decode())"),
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "bcrypt hashing failed (run hack/deps/bmc.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn start_emulator(
    dir: &Path,
    k: u32,
    systems: &[u32],
    htpasswd: Option<&Path>,
    delay: u32,
) -> Emulator {
    let port = free_port();
    let sys: Vec<String> = systems
        .iter()
        .map(|&i| {
            format!(
                "{{'uuid': '{}', 'name': 'node-{i}', 'power_state': 'Off', 'nics': [{{'mac': '{}', 'ip': '192.0.2.10'}}]}}",
                uuid(i),
                mac(i)
            )
        })
        .collect();
    let state = dir.join(format!("state-{k}"));
    let mut conf = format!(
        "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = {port}\n\
         SUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_STATE_DIR = '{}'\n\
         SUSHY_EMULATOR_FAKE_SYSTEMS = [{}]\n",
        state.display(),
        sys.join(", ")
    );
    if let Some(h) = htpasswd {
        conf += &format!("SUSHY_EMULATOR_AUTH_FILE = '{}'\n", h.display());
    }
    let conf_path = dir.join(format!("emulator-{k}.conf"));
    std::fs::write(&conf_path, conf).unwrap();
    let log = dir.join(format!("emulator-{k}.log"));
    let logf = std::fs::File::create(&log).unwrap();
    let child = Command::new("python3")
        .arg(e2e::repo_root().join("hack/bmc/sushy_launcher.py"))
        .arg("--config")
        .arg(&conf_path)
        .env("SUSHY_FAKE_POWER_DELAY", delay.to_string())
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .expect("cannot start sushy-tools: run hack/deps/bmc.sh");
    Emulator {
        port,
        guard: ChildGuard {
            name: format!("sushy-tools {k} on {port}"),
            child,
        },
        log,
    }
}

fn wait_listening(e: &mut Emulator) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", e.port)).is_err() {
        if let Ok(Some(status)) = e.guard.child.try_wait() {
            panic!(
                "{} exited with {status}:\n{}",
                e.guard.name,
                std::fs::read_to_string(&e.log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{} did not listen within 60 s",
            e.guard.name
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Counters shared by every proxy.
#[derive(Default)]
struct Counters {
    in_flight: AtomicU32,
    max_in_flight: AtomicU32,
    requests: AtomicU64,
    failed: AtomicU64,
    /// Microseconds since `Proxy::base` of the first request (0 = none yet).
    first_us: AtomicU64,
    /// Requests by method and path, the system's id replaced by `{system}`.
    by_kind: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

/// `METHOD path` with the segment after `Systems` (and the session id) generalised.
fn kind(method: &str, path: &str) -> String {
    let mut out = Vec::new();
    let mut after = "";
    for seg in path.split('/') {
        out.push(match after {
            "Systems" => "{system}",
            "Sessions" => "{session}",
            "Managers" => "{manager}",
            "EthernetInterfaces" => "{nic}",
            _ => seg,
        });
        after = seg;
    }
    format!("{method} {}", out.join("/"))
}

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    counters: Arc<Counters>,
    base: Instant,
}

/// A counting HTTP proxy in front of one emulator; aborted on drop.
struct Proxy {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_proxy(upstream_port: u16, counters: Arc<Counters>, base: Instant) -> Proxy {
    let state = Arc::new(ProxyState {
        upstream: format!("http://127.0.0.1:{upstream_port}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        counters,
        base,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(forward).with_state(state);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Proxy { port, task }
}

struct InFlight<'a>(&'a Counters);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn forward(State(s): State<Arc<ProxyState>>, req: Request) -> Response<Body> {
    let c = &s.counters;
    let now_us = u64::try_from(s.base.elapsed().as_micros()).unwrap().max(1);
    let _ = c
        .first_us
        .compare_exchange(0, now_us, Ordering::SeqCst, Ordering::SeqCst);
    c.requests.fetch_add(1, Ordering::SeqCst);
    let now = c.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    c.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let _guard = InFlight(c);
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, 1 << 20).await.unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    *c.by_kind
        .lock()
        .unwrap()
        .entry(kind(parts.method.as_str(), path))
        .or_default() += 1;
    let mut fwd = s
        .client
        .request(parts.method.clone(), format!("{}{path}", s.upstream));
    for (k, v) in &parts.headers {
        if k != "host" && k != "content-length" && k != "connection" {
            fwd = fwd.header(k.as_str(), v.as_bytes());
        }
    }
    let resp = match fwd.body(body.to_vec()).send().await {
        Ok(r) => r,
        Err(e) => {
            c.failed.fetch_add(1, Ordering::SeqCst);
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(e.to_string()))
                .unwrap();
        }
    };
    if resp.status().is_server_error() {
        c.failed.fetch_add(1, Ordering::SeqCst);
    }
    let mut out = Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        if !matches!(
            k.as_str(),
            "transfer-encoding" | "connection" | "content-length"
        ) {
            out = out.header(
                HeaderName::from_bytes(k.as_str().as_bytes()).unwrap(),
                v.as_bytes(),
            );
        }
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    out.body(Body::from(bytes)).unwrap()
}

/// The emulators' own ceiling: `BASELINE_CONCURRENCY` clients GET systems directly for `secs`.
/// Returns (successful requests/s, failed requests).
async fn baseline(urls: Vec<String>, auth: bool, secs: u32) -> (f64, u64) {
    let client = reqwest::Client::new();
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let urls = Arc::new(urls);
    let started = Instant::now();
    let until = started + Duration::from_secs(u64::from(secs));
    let tasks: Vec<_> = (0..BASELINE_CONCURRENCY)
        .map(|t| {
            let (client, ok, failed, urls) =
                (client.clone(), ok.clone(), failed.clone(), urls.clone());
            tokio::spawn(async move {
                let mut i = t;
                while Instant::now() < until {
                    let mut req = client.get(&urls[i % urls.len()]);
                    if auth {
                        req = req.basic_auth(USER, Some(PASSWORD));
                    }
                    let good = match req.send().await {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if good {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    i += BASELINE_CONCURRENCY;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    (
        ok.load(Ordering::Relaxed) as f64 / elapsed,
        failed.load(Ordering::Relaxed),
    )
}

/// One successful GET per URL (sequentially), retried for up to 180 s.
async fn warm_up(urls: &[String], auth: bool) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    for url in urls {
        loop {
            let mut req = client.get(url).timeout(Duration::from_secs(60));
            if auth {
                req = req.basic_auth(USER, Some(PASSWORD));
            }
            if req.send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "emulator at {url} never answered"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The strict emulator in fleet mode: `servers` clones of the DMTF rack server over `ports`
/// ports of one process; returns the ports. Basic auth and sessions both work.
fn start_strict(servers: u32, ports: u32) -> (ChildGuard, Vec<u16>) {
    let mut child = Command::new("python3")
        .arg(e2e::repo_root().join("hack/bmc/redfish_emulator.py"))
        .arg("--tree")
        .arg(e2e::repo_root().join("bmc/tests/corpus/dmtf-public-rackmount1.json"))
        .args(["--user", USER, "--password", PASSWORD])
        .args([
            "--fleet",
            &servers.to_string(),
            "--ports",
            &ports.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start hack/bmc/redfish_emulator.py");
    let stdout = child.stdout.take().unwrap();
    let mut guard = ChildGuard {
        name: "redfish_emulator.py".into(),
        child,
    };
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    guard.assert_alive();
    let ports = line
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("redfish_emulator.py: {line:?}"))
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    (guard, ports)
}

fn server_doc(i: u32, port: u16) -> serde_json::Value {
    json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server", "metadata": {"name": format!("s{i:04}")},
           "spec": {"bmc": {"address": format!("redfish+http://127.0.0.1:{port}/redfish/v1/Systems/{}", uuid(i)),
                            "credentialsSecretRef": {"name": "bmc-bench"}},
                    "bootMACAddress": mac(i), "online": i.is_multiple_of(2), "maxPowerWatts": 400}})
}

/// The write floor: how long the API server takes to accept `writes` writes from one client
/// with as many in flight as the controller may have (metadata patches of the bench's Servers,
/// once the controller is gone, so nothing reacts to them).
async fn write_floor(api: &Api<Server>, servers: u32, writes: usize) -> Duration {
    let started = Instant::now();
    stream::iter(0..writes)
        .for_each_concurrent(IN_FLIGHT, |n| {
            let api = api.clone();
            async move {
                let name = format!("s{:04}", n % servers as usize);
                let patch = json!({"metadata": {"annotations": {"bench.groundwork.dev/floor": n.to_string()}}});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
            }
        })
        .await;
    started.elapsed()
}

fn converged(s: &Server) -> bool {
    s.status.as_ref().is_some_and(|st| {
        st.state == Some(crds::server::ServerState::Available)
            && st
                .conditions
                .iter()
                .any(|c| c.type_ == "PowerMatchesSpec" && c.status == "True")
    })
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let servers = arg("--servers", 1000);
    let emulators = arg("--emulators", 4).max(1);
    let strict = match arg_str("--emulator", "sushy").as_str() {
        "strict" => true,
        "sushy" => false,
        other => panic!("--emulator {other}: sushy or strict"),
    };
    let strict_ports = arg("--ports", servers.min(1000)).clamp(1, servers.max(1));
    let auth = arg("--auth", 1) != 0;
    let delay = arg("--power-delay", 0);
    let baseline_secs = arg("--baseline-seconds", 10);
    let timeout = Duration::from_secs(u64::from(arg("--timeout-seconds", 900)));
    let bin = std::env::var("GROUNDWORK_CONTROLLER_BIN")
        .expect("GROUNDWORK_CONTROLLER_BIN: path of the controller binary");
    if strict {
        println!(
            "BMC fleet benchmark: {servers} Servers on the strict Redfish emulator \
             (one process, {strict_ports} ports, DMTF rack server tree, half online)"
        );
    } else {
        println!(
            "BMC fleet benchmark: {servers} Servers over {emulators} sushy-tools emulators \
             (basic auth {}, power delay {delay} s, half online)",
            if auth { "on, bcrypt rounds 4" } else { "off" }
        );
    }

    // Emulators: system i lives on emulator i % K.
    let dir =
        TempDir(std::env::temp_dir().join(format!("groundwork-bench-bmc-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let htpasswd = auth.then(|| {
        let p = dir.0.join("htpasswd");
        std::fs::write(&p, format!("{USER}:{}\n", bcrypt_hash(PASSWORD))).unwrap();
        p
    });
    let mut emus: Vec<Emulator> = Vec::new();
    let mut guards: Vec<ChildGuard> = Vec::new();
    let emu_ports: Vec<u16> = if strict {
        let (guard, ports) = start_strict(servers, strict_ports);
        guards.push(guard);
        ports
    } else {
        emus = (0..emulators)
            .map(|k| {
                let systems: Vec<u32> = (0..servers).filter(|i| i % emulators == k).collect();
                start_emulator(&dir.0, k, &systems, htpasswd.as_deref(), delay)
            })
            .collect();
        for e in &mut emus {
            wait_listening(e);
        }
        emus.iter().map(|e| e.port).collect()
    };
    let auth = auth || strict;

    let base = Instant::now();
    let counters = Arc::new(Counters::default());
    let mut proxies = Vec::new();
    for port in &emu_ports {
        proxies.push(start_proxy(*port, counters.clone(), base).await);
    }

    // Baseline: the emulators' own ceiling, straight to them (no proxy), same auth.
    let urls: Vec<String> = (0..servers)
        .map(|i| {
            let port = emu_ports[i as usize % emu_ports.len()];
            format!("http://127.0.0.1:{port}/redfish/v1/Systems/{}", uuid(i))
        })
        .collect();
    // Warm-up: sushy-tools builds its fake-driver state (one sqlite row per system) on the
    // first request; one request per emulator, waited for, keeps that out of both figures.
    let warm = Instant::now();
    warm_up(&urls[..urls.len().min(emu_ports.len())], auth).await;
    println!(
        "emulators warmed up in {:.1} s",
        warm.elapsed().as_secs_f64()
    );
    let (base_rate, base_failed) = baseline(urls, auth, baseline_secs).await;
    assert!(
        base_rate > 0.0,
        "baseline: no request succeeded ({base_failed} failed)"
    );

    let client = admin_client().await;
    let ns = namespace(&client, "bench-bmc").await;
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "bmc-bench"}, "stringData": {"username": USER, "password": PASSWORD}}))
    .unwrap();
    Api::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let kubeconfig = e2e::controlplane_dir().join("kubeconfig");
    let mut controller = ChildGuard {
        name: "groundwork-controller".into(),
        child: Command::new(&bin)
            .args([
                "--namespace",
                &ns,
                "--metrics-addr",
                "127.0.0.1:0",
                "--lease-name",
                &format!("bench-{ns}"),
            ])
            .env("KUBECONFIG", &kubeconfig)
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("controller binary"),
    };
    let pid = controller.pid();
    tokio::time::sleep(Duration::from_secs(2)).await;
    controller.assert_alive();
    // Baseline for the memory figures: the controller's RSS before the first Server.
    let idle_rss_mib = status_kib(pid, "VmRSS:") as f64 / 1024.0;

    let api: Api<Server> = Api::namespaced(client.clone(), &ns);
    let audit = AuditWindow::open_with_events(&ns);
    let docs: Vec<serde_json::Value> = (0..servers)
        .map(|i| server_doc(i, proxies[i as usize % proxies.len()].port))
        .collect();
    stream::iter(docs)
        .for_each_concurrent(IN_FLIGHT, |doc| {
            let api = api.clone();
            async move {
                let obj: Server = serde_json::from_value(doc).unwrap();
                api.create(&PostParams::default(), &obj).await.unwrap();
            }
        })
        .await;
    let last_create = Instant::now();
    loop {
        let list = api.list(&ListParams::default()).await.unwrap();
        let done = list.items.iter().filter(|s| converged(s)).count();
        if done == servers as usize {
            break;
        }
        controller.assert_alive();
        for e in &mut emus {
            e.guard.assert_alive();
        }
        for g in &mut guards {
            g.assert_alive();
        }
        assert!(
            last_create.elapsed() < timeout,
            "not converged after {timeout:?} ({done}/{servers} Available with PowerMatchesSpec=True)"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let converge = last_create.elapsed();
    let at_converge = base.elapsed();
    let requests = counters.requests.load(Ordering::SeqCst);
    let failed = counters.failed.load(Ordering::SeqCst);
    let peak = counters.max_in_flight.load(Ordering::SeqCst);
    let first = Duration::from_micros(counters.first_us.load(Ordering::SeqCst));
    let window = at_converge.saturating_sub(first).as_secs_f64().max(1e-3);
    let rate = requests as f64 / window;
    let rss_mib = status_kib(pid, "VmHWM:") as f64 / 1024.0;
    let end_rss_mib = status_kib(pid, "VmRSS:") as f64 / 1024.0;
    drop(controller);
    // The controller's writes: everything in the namespace but the Servers this process created.
    let writes: Vec<String> = audit
        .close::<Server>(&client, "s0000")
        .await
        .into_iter()
        .filter(|w| !(w.starts_with("create servers/ ")))
        .collect();
    let count = |prefix: &str| writes.iter().filter(|w| w.starts_with(prefix)).count();
    let (status_writes, event_writes) = (count("patch servers/status "), count("create events/ "));
    let other_writes = writes.len() - status_writes - event_writes;
    let floor = write_floor(&api, servers, writes.len()).await;
    drop(proxies);
    drop(emus);
    drop(guards);

    println!("{:<56} {:>14} {:>16}", "figure", "measured", "target");
    println!(
        "{:<56} {:>12.1} s {:>16}",
        "last create -> all Available + PowerMatchesSpec=True",
        converge.as_secs_f64(),
        "<= 60 s"
    );
    println!(
        "{:<56} {:>14} {:>16}",
        "peak BMC requests in flight (proxy)",
        peak,
        format!("<= {BMC_CONCURRENCY}")
    );
    println!(
        "{:<56} {:>10.1} MiB {:>16}",
        "controller peak RSS (VmHWM)", rss_mib, "<= 256 MiB"
    );
    println!(
        "{:<56} {:>10.1} MiB {:>16}",
        "controller RSS once converged (VmRSS)", end_rss_mib, "-"
    );
    println!(
        "{:<56} {:>10.1} MiB {:>16}",
        "baseline: controller RSS before the first Server", idle_rss_mib, "-"
    );
    println!(
        "{:<56} {:>10.1} KiB {:>16}",
        "controller peak RSS growth per Server",
        (rss_mib - idle_rss_mib) * 1024.0 / f64::from(servers),
        "-"
    );
    println!(
        "{:<56} {:>10.0} r/s {:>16}",
        format!("baseline: {BASELINE_CONCURRENCY} clients GET system, {baseline_secs} s"),
        base_rate,
        "-"
    );
    println!(
        "{:<56} {:>10.0} r/s {:>16}",
        format!("controller BMC requests ({requests} in {window:.1} s)"),
        rate,
        "-"
    );
    println!(
        "{:<56} {:>13.2}x {:>16}",
        "ratio controller rate / baseline",
        rate / base_rate,
        "-"
    );
    println!(
        "{:<56} {:>14.1} {:>16}",
        "BMC requests per Server",
        requests as f64 / f64::from(servers),
        "-"
    );
    for (what, n) in counters.by_kind.lock().unwrap().iter() {
        println!(
            "  {what:<54} {:>14.2} {:>16}",
            *n as f64 / f64::from(servers),
            "-"
        );
    }
    println!(
        "{:<56} {:>14.2} {:>16}",
        format!(
            "API writes per Server ({status_writes} status, {event_writes} Events, {other_writes} other)"
        ),
        writes.len() as f64 / f64::from(servers),
        "<= 2"
    );
    println!(
        "{:<56} {:>12.1} s {:>16}",
        format!(
            "baseline: API server accepts {} writes ({IN_FLIGHT} in flight)",
            writes.len()
        ),
        floor.as_secs_f64(),
        "-"
    );
    println!(
        "{:<56} {:>13.2}x {:>16}",
        "ratio converge time / write floor",
        converge.as_secs_f64() / floor.as_secs_f64().max(1e-3),
        "<= 1.2x"
    );
    println!(
        "{:<56} {:>14} {:>16}",
        "BMC requests failed (5xx / proxy errors); baseline failed",
        format!("{failed}; {base_failed}"),
        "0; 0"
    );
}
