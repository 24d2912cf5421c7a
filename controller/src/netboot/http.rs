//! HTTP boot: `/boot/<mac>.ipxe` (each machine's script), `/boot/<mac>/vmlinuz` and
//! `/boot/<mac>/initrd.img` (the ramdisk), `/boot/ipxe.efi` (UEFI HTTP boot), and
//! `POST /boot/callback` (the ramdisk reporting in).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use boot::dhcp::Mac;
use boot::metrics::{FileLabels, ScriptLabels};
use boot::{ipxe, token::TokenKey};
use crds::Server;
use crds::server::{Disk, HardwareInventory, Nic};
use kube::ResourceExt;
use kube::runtime::events::Recorder;
use serde::Deserialize;
use tracing::{info, warn};

use super::Shared;
use super::report::{ReportError, report_in};
use super::steps::{self, Details, Step};
use super::target::{Target, target};

/// What the handlers share.
pub struct BootHttp {
    /// Caches and index.
    pub shared: Arc<Shared>,
    /// API client for boot-step writes.
    pub client: kube::Client,
    /// Events.
    pub recorder: Recorder,
    /// Boot token key.
    pub key: TokenKey,
    /// Ramdisk artifacts directory.
    pub artifacts: std::path::PathBuf,
    /// iPXE binaries directory.
    pub ipxe_dir: std::path::PathBuf,
    /// Discovery for undeclared machines.
    pub auto_enroll: bool,
    /// Extra kernel arguments.
    pub kernel_args: String,
    /// Port of the agent API (on the same address as HTTP boot).
    pub agent_port: u16,
    /// Metrics.
    pub metrics: boot::metrics::Metrics,
}

/// The HTTP boot routes.
pub fn router(state: Arc<BootHttp>) -> Router {
    Router::new()
        .route("/boot/{file}", get(file))
        .route("/boot/{mac}/{artifact}", get(artifact))
        .route("/boot/callback", post(callback))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], body.into()).into_response()
}

async fn file(
    State(st): State<Arc<BootHttp>>,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Response {
    if file == boot::dhcp::client::UEFI_FILE {
        return send_file(&st, &st.ipxe_dir.join(&file), &file).await;
    }
    let Some(mac) = file.strip_suffix(".ipxe").and_then(Mac::parse) else {
        return text(StatusCode::NOT_FOUND, "not found");
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let base = format!("http://{host}");
    // The agent API listens on the address the machine reached us on.
    let hostname = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let agent = format!("http://{hostname}:{}", st.agent_port);
    let (kind, script) = script(&st, &base, &agent, mac).await;
    st.metrics
        .scripts
        .get_or_create(&ScriptLabels { kind })
        .inc();
    text(StatusCode::OK, script)
}

async fn script(st: &BootHttp, base: &str, agent: &str, mac: Mac) -> (&'static str, String) {
    let mac_s = mac.to_string();
    let Some(server) = st.shared.server_by_mac(mac) else {
        if st.auto_enroll {
            let s = ipxe::ramdisk(&ipxe::Ramdisk {
                base,
                agent,
                mac: &mac_s,
                server: "-",
                token: "",
                mode: "discover",
                kernel_args: &st.kernel_args,
            });
            return ("discovery", s);
        }
        return ("exit", ipxe::unknown(&mac_s));
    };
    let id = format!(
        "{}/{}",
        server.namespace().unwrap_or_default(),
        server.name_any()
    );
    match target(server.status.as_ref()) {
        Target::LocalDisk(why) => ("disk", ipxe::local_disk(&id, &why)),
        Target::Ramdisk(attempt) => {
            let token = st.key.issue(&server.uid().unwrap_or_default(), &attempt.id);
            let s = ipxe::ramdisk(&ipxe::Ramdisk {
                base,
                agent,
                mac: &mac_s,
                server: &id,
                token: &token,
                mode: attempt.purpose.mode(),
                kernel_args: &st.kernel_args,
            });
            let details = Details {
                note: format!("iPXE script served: {} ramdisk", attempt.purpose.mode()),
                ..Default::default()
            };
            steps::record(&st.client, &st.recorder, &server, Step::Script, details).await;
            ("ramdisk", s)
        }
    }
}

async fn artifact(
    State(st): State<Arc<BootHttp>>,
    Path((mac, artifact)): Path<(String, String)>,
) -> Response {
    let step = match artifact.as_str() {
        ipxe::KERNEL => Step::Kernel,
        ipxe::INITRD => Step::Initrd,
        _ => return text(StatusCode::NOT_FOUND, "not found"),
    };
    let response = send_file(&st, &st.artifacts.join(&artifact), &artifact).await;
    if response.status() == StatusCode::OK
        && let Some(server) = Mac::parse(&mac).and_then(|m| st.shared.server_by_mac(m))
    {
        let details = Details {
            note: format!("{artifact} fetched"),
            ..Default::default()
        };
        steps::record(&st.client, &st.recorder, &server, step, details).await;
    }
    response
}

async fn send_file(st: &BootHttp, path: &std::path::Path, name: &str) -> Response {
    match tokio::fs::read(path).await {
        Ok(bytes) => {
            st.metrics
                .http_bytes
                .get_or_create(&FileLabels {
                    file: name.to_string(),
                })
                .inc_by(bytes.len() as u64);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/octet-stream")],
                Body::from(bytes),
            )
                .into_response()
        }
        Err(e) => {
            warn!(path = %path.display(), error = %e, "boot artifact missing");
            text(StatusCode::NOT_FOUND, format!("{name} is not available"))
        }
    }
}

/// What the ramdisk reports.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Callback {
    server: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    mac: String,
    #[serde(default)]
    inventory: Option<Inventory>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Inventory {
    #[serde(default)]
    cpu_count: u32,
    #[serde(default)]
    cpu_model: Option<String>,
    #[serde(default)]
    memory_bytes: u64,
    #[serde(default)]
    disks: Vec<Disk>,
    #[serde(default)]
    nics: Vec<Nic>,
}

async fn callback(State(st): State<Arc<BootHttp>>, body: axum::body::Bytes) -> Response {
    let Ok(cb) = serde_json::from_slice::<Callback>(&body) else {
        return text(StatusCode::BAD_REQUEST, "expected a JSON callback");
    };
    if cb.server == "-" {
        info!(mac = %cb.mac, "discovery ramdisk reported in; enrolment of unknown machines is not available yet");
        return text(StatusCode::ACCEPTED, "noted");
    }
    let hardware = cb.inventory.map(|i| HardwareInventory {
        cpu_model: i.cpu_model,
        cpu_count: i.cpu_count,
        memory_bytes: i.memory_bytes,
        disks: i.disks,
        nics: i.nics,
    });
    let reported = report_in(
        &st.shared,
        &st.client,
        &st.recorder,
        &st.key,
        &cb.server,
        &cb.token,
        hardware,
    )
    .await;
    match reported {
        Ok(_) => text(StatusCode::OK, "ok"),
        Err(e) => {
            let status = match e {
                ReportError::UnknownServer => StatusCode::NOT_FOUND,
                ReportError::NoOpenAttempt => StatusCode::CONFLICT,
                ReportError::TokenRefused => StatusCode::FORBIDDEN,
                ReportError::NotRecorded => StatusCode::SERVICE_UNAVAILABLE,
            };
            text(status, e.to_string())
        }
    }
}

/// The Server record a name like `namespace/name` refers to.
pub fn split_name(id: &str) -> Option<(&str, &str)> {
    id.split_once('/')
}

impl Shared {
    /// The Server named `namespace/name`.
    pub fn server_by_name(&self, id: &str) -> Option<Server> {
        let (ns, name) = split_name(id)?;
        self.server(ns, name)
    }
}
