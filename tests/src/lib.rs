//! Harness for the end-to-end tests: the real control plane started by `hack/test.sh`, the
//! example site, and the controller run in-process with a chosen identity.
//!
//! Every helper fails loudly when its peer is missing: a test never skips itself.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap_free::parse_config;
use controller::app::App;
use controller::health::Health;
use controller::metrics::Metrics;
use futures::FutureExt;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config};
use tokio::sync::oneshot;

pub mod cluster;
pub mod netlab;
pub mod process;
pub mod provisioning;
mod wait;

pub use wait::{eventually, eventually_every};

/// The control plane directory written by `hack/controlplane.sh up` (kubeconfig, audit log,
/// etcd URL). Panics when the variable or the directory is missing.
pub fn controlplane_dir() -> PathBuf {
    let dir = std::env::var("GROUNDWORK_TEST_CONTROLPLANE").expect(
        "GROUNDWORK_TEST_CONTROLPLANE is not set: run the tests through hack/test.sh, which starts a real kube-apiserver",
    );
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("kubeconfig").exists(),
        "no kubeconfig in {}: is the control plane up?",
        dir.display()
    );
    dir
}

/// A benchmark's comma-separated argument `name` (`--servers 1,2`), else `default`.
pub fn arg_list(name: &str, default: &str) -> Vec<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.as_str())
        .split(',')
        .map(str::to_string)
        .collect()
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// An admin client for the test control plane.
pub async fn admin_client() -> Client {
    client_for(&controlplane_dir().join("kubeconfig")).await
}

/// A client with the credentials of `kubeconfig`.
pub async fn client_for(kubeconfig: &Path) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// Creates a namespace with a unique name (a bare API server never finishes deleting one, so
/// every test gets its own).
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = format!(
        "{prefix}-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_millisecond() % 1_000_000
    );
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    Api::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    name
}

/// The API resource of a kind the tests handle.
pub fn resource_of(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

/// Every document of every file in `examples/`, in file order, namespace documents left out.
pub fn example_documents() -> Vec<serde_json::Value> {
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: serde_json::Value = serde::Deserialize::deserialize(doc).unwrap();
            if !value.is_null() && value["kind"] != "Namespace" {
                docs.push(value);
            }
        }
    }
    docs
}

/// Server-side applies a document into `namespace` as the admin (the user's field manager).
pub async fn apply_doc(
    client: &Client,
    namespace: &str,
    mut doc: serde_json::Value,
) -> Result<DynamicObject, kube::Error> {
    doc["metadata"]["namespace"] = namespace.into();
    let ar = resource_of(
        doc["apiVersion"].as_str().unwrap(),
        doc["kind"].as_str().unwrap(),
    );
    let name = doc["metadata"]["name"].as_str().unwrap().to_string();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    api.patch(
        &name,
        &PatchParams::apply("e2e-user").force(),
        &Patch::Apply(&doc),
    )
    .await
}

/// Applies the example site into `namespace`.
pub async fn apply_examples(client: &Client, namespace: &str) {
    for doc in example_documents() {
        apply_doc(client, namespace, doc).await.unwrap();
    }
}

static LOG: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// Every log line the in-process controller wrote so far (all tests of this binary).
pub fn captured_log() -> String {
    String::from_utf8_lossy(&LOG.lock().unwrap()).into_owned()
}

struct CapturedLog;

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs helm against the test control plane.
pub fn helm_run(args: &[&str]) -> std::process::Output {
    let kubeconfig = controlplane_dir().join("kubeconfig");
    std::process::Command::new("helm")
        .args(args)
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("helm is not on PATH: hack/test.sh builds it from Go modules")
}

/// Runs helm against the test control plane; panics with its stderr when it fails.
pub fn helm(args: &[&str]) -> String {
    let out = helm_run(args);
    assert!(
        out.status.success(),
        "helm {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A client acting as ServiceAccount `name` of `namespace` (a token request): exactly its RBAC.
pub async fn client_as_service_account(namespace: &str, name: &str) -> kube::Client {
    let admin = admin_client().await;
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(admin, namespace);
    let request: k8s_openapi::api::authentication::v1::TokenRequest = serde_json::from_value(
        serde_json::json!({"spec": {"audiences": [], "expirationSeconds": 3600}}),
    )
    .unwrap();
    let token = sas
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap();
    let token = token.status.unwrap().token;
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(controlplane_dir().join("kubeconfig")).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    kube::Client::try_from(config).unwrap()
}

/// The controller running in this process against `client` (any identity).
pub struct RunningController {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    /// Its metrics.
    pub metrics: Arc<Metrics>,
    /// Its readiness.
    pub health: Arc<Health>,
    /// Its parts, as the binary wires them.
    pub app: Arc<App>,
}

impl RunningController {
    /// Starts the controllers watching `namespace` and waits until the caches synced.
    pub async fn start(client: Client, namespace: &str) -> Self {
        Self::start_with(client, namespace, &[]).await
    }

    /// Like [`Self::start`] with extra controller flags; with `--boot-services` the boot
    /// services run too (as in the binary, beside the controllers).
    pub async fn start_with(client: Client, namespace: &str, extra: &[String]) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info,kube=warn".into()),
            )
            .with_ansi(false)
            .with_writer(|| CapturedLog)
            .try_init();
        let mut args = vec!["--namespace", namespace, "--resync-seconds", "3600"];
        args.extend(extra.iter().map(String::as_str));
        let config = parse_config(&args);
        let app = Arc::new(App::new(client, config));
        let (metrics, health, parts) = (app.metrics.clone(), app.health.clone(), app.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = stopped.map(|_| ()).shared();
        let task = tokio::spawn(async move {
            let boot = async {
                app.boot_services("test", shutdown.clone())
                    .await
                    .expect("boot services failed to start");
            };
            tokio::join!(boot, app.reconcilers(shutdown.clone()));
        });
        let running = Self {
            stop: Some(stop),
            task,
            metrics,
            health,
            app: parts,
        };
        let h = running.health.clone();
        eventually(Duration::from_secs(30), "controller caches to sync", || {
            let ready = h.ready.load(Ordering::Relaxed);
            async move { ready.then_some(()) }
        })
        .await;
        running
    }

    /// Stops the controllers gracefully.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("controller did not stop")
            .unwrap();
    }
}

/// A span of the API server's audit log in which to count the writes to groundwork.dev objects
/// (and, when asked, Events) of one namespace (lease renewals are in another API group and never
/// counted).
///
/// The reader cannot pass by seeing nothing: [`AuditWindow::close`] ends the span with a write
/// of the test's own, which the same reader must find, and every complete line of the span
/// must be an audit event.
pub struct AuditWindow {
    from: u64,
    namespace: String,
    groups: &'static [&'static str],
}

/// The annotation the closing write of an [`AuditWindow`] sets (nothing reads it).
const AUDIT_MARKER_ANNOTATION: &str = "e2e.groundwork.dev/audit-marker";

fn audit_log() -> PathBuf {
    controlplane_dir().join("audit.log")
}

/// The audit log's bytes from `offset` on.
fn audit_log_from(offset: u64) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(audit_log()).expect("audit log missing");
    file.seek(SeekFrom::Start(offset)).unwrap();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    bytes
}

impl AuditWindow {
    /// Starts at the current end of the audit log (once a write in progress has ended there).
    pub fn open(namespace: &str) -> Self {
        Self::open_for(namespace, &["groundwork.dev"])
    }

    /// [`AuditWindow::open`], counting Events (`events.k8s.io`) as writes too.
    pub fn open_with_events(namespace: &str) -> Self {
        Self::open_for(namespace, &["groundwork.dev", "events.k8s.io"])
    }

    /// [`AuditWindow::open`], counting writes to the core group (`""`: Services, their status)
    /// too.
    pub fn open_with_core(namespace: &str) -> Self {
        Self::open_for(namespace, &["groundwork.dev", ""])
    }

    fn open_for(namespace: &str, groups: &'static [&'static str]) -> Self {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let from = std::fs::metadata(audit_log())
                .expect("audit log missing")
                .len();
            if from == 0 || audit_log_from(from - 1).first() == Some(&b'\n') {
                return Self {
                    from,
                    namespace: namespace.to_string(),
                    groups,
                };
            }
            assert!(
                Instant::now() < deadline,
                "the audit log never ended a line within 5 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Ends the window with a write of its own — the annotation [`AUDIT_MARKER_ANNOTATION`] set
    /// on the namespace's object `marker` of a counted group — and returns the writes to the
    /// counted groups' objects in the namespace recorded before it, as `verb resource/subresource name`.
    /// Panics on a line that is not an audit event, when the marker write is not found within
    /// 10 s, or when the reader would not have counted it as a write.
    pub async fn close<K>(self, client: &Client, marker: &str) -> Vec<String>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let manager = format!(
            "e2e-audit-marker-{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        );
        let patch =
            serde_json::json!({"metadata": {"annotations": {AUDIT_MARKER_ANNOTATION: manager}}});
        Api::<K>::namespaced(client.clone(), &self.namespace)
            .patch(
                marker,
                &PatchParams {
                    field_manager: Some(manager.clone()),
                    ..Default::default()
                },
                &Patch::Merge(&patch),
            )
            .await
            .unwrap_or_else(|e| panic!("audit marker write on {marker}: {e}"));
        let needle = format!("fieldManager={manager}");
        let what = format!(
            "the marker write on {marker} ({needle}) in the audit log (if it never shows: the reader sees nothing)"
        );
        eventually(Duration::from_secs(10), &what, || async {
            self.writes_before(&needle)
        })
        .await
    }

    /// The namespace's groundwork.dev writes from the window's start up to the event whose
    /// request URI contains `needle`, or None while that event is not in the log yet.
    fn writes_before(&self, needle: &str) -> Option<Vec<String>> {
        let text = audit_log_from(self.from);
        let mut writes = Vec::new();
        // Only complete lines: the last one may still be being written.
        for (n, line) in text.split_inclusive(|b| *b == b'\n').enumerate() {
            if line.last() != Some(&b'\n') {
                break;
            }
            let e: serde_json::Value = serde_json::from_slice(line).unwrap_or_else(|err| {
                panic!(
                    "line {n} of the audit window is not an audit event ({err}): {}",
                    String::from_utf8_lossy(line)
                )
            });
            assert_eq!(
                e["kind"], "Event",
                "line {n} of the audit window is not an audit event: {e}"
            );
            let field = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
            // The core group has no apiGroup in the audit log.
            let group = e["objectRef"]["apiGroup"].as_str().unwrap_or("");
            let ours = self.groups.contains(&group)
                && e["objectRef"]["namespace"] == self.namespace.as_str();
            let writing = matches!(
                e["verb"].as_str(),
                Some("create" | "update" | "patch" | "delete" | "deletecollection")
            );
            let marker = field(&e["requestURI"]).contains(needle);
            assert!(
                !marker || (ours && writing),
                "the reader does not count the marker write as a write: {e}"
            );
            if marker {
                return Some(writes);
            }
            if ours && writing {
                writes.push(format!(
                    "{} {}/{} {}",
                    field(&e["verb"]),
                    field(&e["objectRef"]["resource"]),
                    field(&e["objectRef"]["subresource"]),
                    field(&e["objectRef"]["name"])
                ));
            }
        }
        None
    }
}

mod clap_free {
    use clap::Parser;
    use controller::config::Config;

    /// The controller's configuration from flags, as the binary would parse them.
    pub fn parse_config(args: &[&str]) -> Config {
        Config::parse_from(std::iter::once("groundwork-controller").chain(args.iter().copied()))
    }
}

/// A Rack with provisioning `subnet` and one Server per `(name, boot MAC, BMC address)` in U1,
/// U2, …, created with an inspection request (attempt `inspect-first`), powered off, sharing
/// the BMC credentials admin/lab-password.
pub async fn inspection_site(
    client: &Client,
    namespace: &str,
    subnet: &str,
    servers: &[(&str, &str, String)],
) {
    use serde_json::json;
    apply_doc(
        client,
        namespace,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bmc"},
            "stringData": {"username": "admin", "password": "lab-password"}}),
    )
    .await
    .unwrap();
    apply_doc(
        client,
        namespace,
        json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Rack",
            "metadata": {"name": "r"}, "spec": {"location": {"site": "lab"},
            "networks": {"provisioning": {"subnet": subnet}}}}),
    )
    .await
    .unwrap();
    for (i, (name, mac, bmc)) in servers.iter().enumerate() {
        apply_doc(
            client,
            namespace,
            json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server",
                "metadata": {"name": name, "annotations": {"groundwork.dev/inspect": "first"}},
                "spec": {"rackRef": {"name": "r"}, "rackUnit": i + 1, "bootMACAddress": mac,
                    "online": false, "bmc": {"address": bmc,
                    "credentialsSecretRef": {"name": "bmc"}}}}),
        )
        .await
        .unwrap();
    }
}

/// Waits until each named Server is in `state`.
pub async fn wait_state(
    client: &Client,
    namespace: &str,
    names: &[&str],
    state: crds::ServerState,
) {
    let api: Api<crds::Server> = Api::namespaced(client.clone(), namespace);
    for name in names {
        eventually(
            Duration::from_secs(60),
            &format!("{name} {state:?}"),
            || async {
                let s = api.get(name).await.ok()?;
                (s.status?.state? == state).then_some(())
            },
        )
        .await;
    }
}

/// Writes `value` at `key` through etcd's JSON gateway (`/v3/kv/put`), bypassing the API server.
pub async fn etcd_put(etcd_url: &str, key: &str, value: &str) {
    use std::io::{Read, Write};
    let b64 = |s: &str| base64_encode(s.as_bytes());
    let body = serde_json::json!({"key": b64(key), "value": b64(value)}).to_string();
    let hostport = etcd_url.trim_start_matches("http://").to_string();
    let request = format!(
        "POST /v3/kv/put HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let response = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&hostport).expect("etcd is not reachable");
        stream.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "etcd put failed: {response}"
    );
}

fn base64_encode(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
