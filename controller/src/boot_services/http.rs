//! HTTP boot: `/boot/<mac>.ipxe` (each machine's script), `/boot/<mac>/vmlinuz` and
//! `/boot/<mac>/initrd.img` (the ramdisk), `/boot/ipxe.efi` (UEFI HTTP boot), `/boot/ca.crt`
//! (the agent API's CA), and the NoCloud metadata of provisioned servers with their first-boot
//! check-in (`/metadata/...`). The ramdisk reports in over the agent API (gRPC), not here.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use boot::dhcp::Mac;
use boot::metrics::{FileLabels, ScriptLabels};
use boot::{ipxe, token::TokenKey};
use crds::Server;
use crds::server::{BootProgressPatch, CheckIn, Field, KexecOutcome, ServerState};
use kube::ResourceExt;
use kube::runtime::events::Recorder;
use serde::Deserialize;
use tracing::{info, warn};

use super::nocloud;
use super::shared::Shared;
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
    /// The ramdisk (its directory and version).
    pub ramdisk: boot::ramdisk::Ramdisk,
    /// iPXE binaries directory.
    pub ipxe_dir: std::path::PathBuf,
    /// Discovery for undeclared machines.
    pub auto_enroll: bool,
    /// Extra kernel arguments.
    pub kernel_args: String,
    /// Port of the agent API (on the same address as HTTP boot).
    pub agent_port: u16,
    /// The agent API's CA certificate (PEM), served at `/boot/ca.crt`.
    pub agent_ca_pem: String,
    /// Its pin on the ramdisk's kernel command line.
    pub agent_ca_pin: String,
    /// Metrics.
    pub metrics: boot::metrics::Metrics,
}

/// The HTTP boot routes.
pub fn router(state: Arc<BootHttp>) -> Router {
    Router::new()
        .route("/boot/{file}", get(file))
        .route("/boot/ca.crt", get(agent_ca))
        .route("/boot/{mac}/{artifact}", get(artifact))
        .route("/metadata/checkin", post(checkin))
        .route("/metadata/{document}", get(metadata))
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
    if !st.shared.synced() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the boot services are still reading the site; try again",
        );
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let base = format!("http://{host}");
    // The agent API listens on the address the machine reached us on.
    let hostname = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let agent = format!("https://{hostname}:{}", st.agent_port);
    let (kind, script) = script(&st, &base, &agent, mac).await;
    st.metrics
        .scripts
        .get_or_create(&ScriptLabels { kind })
        .inc();
    text(StatusCode::OK, script)
}

/// The agent API's CA certificate: public, the ramdisk checks it against its pin.
async fn agent_ca(State(st): State<Arc<BootHttp>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        st.agent_ca_pem.clone(),
    )
        .into_response()
}

async fn script(st: &Arc<BootHttp>, base: &str, agent: &str, mac: Mac) -> (&'static str, String) {
    let mac_s = mac.to_string();
    let Some(server) = st.shared.server_by_mac(mac) else {
        if st.auto_enroll {
            let s = ipxe::ramdisk(&ipxe::Ramdisk {
                base,
                agent,
                ca: &st.agent_ca_pin,
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
    let server = steps::confirmed(&st.client, server).await;
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
                ca: &st.agent_ca_pin,
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
            record_later(st, server, Step::Script, details);
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
    let response = send_file(&st, &st.ramdisk.dir().join(&artifact), &artifact).await;
    if response.status() == StatusCode::OK
        && let Some(server) = Mac::parse(&mac).and_then(|m| st.shared.server_by_mac(m))
    {
        // The version goes with the initrd: the kernel alone does not make a running agent.
        let ramdisk_version = (step == Step::Initrd)
            .then(|| st.ramdisk.version())
            .and_then(|v| {
                v.inspect_err(|e| warn!(error = %e, "ramdisk version unknown"))
                    .ok()
            });
        let details = Details {
            note: format!("{artifact} fetched"),
            ramdisk_version,
            ..Default::default()
        };
        record_later(&st, server, step, details);
    }
    response
}

/// Records a boot step without holding up the answer: a slow API server must not make the
/// firmware's download time out (the step is still recorded, moments later).
fn record_later(st: &Arc<BootHttp>, server: Server, step: Step, details: Details) {
    let st = st.clone();
    tokio::spawn(async move {
        steps::record(&st.client, &st.recorder, &server, step, details).await;
    });
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

/// The Server a metadata request comes from (by source address), if it is provisioned or
/// being provisioned.
fn requester(st: &BootHttp, from: std::net::SocketAddr) -> Option<Server> {
    let server = st.shared.server_by_address(from.ip())?;
    let imaged = server
        .status
        .as_ref()
        .and_then(|s| s.state)
        .is_some_and(|s| matches!(s, ServerState::Provisioning | ServerState::Provisioned));
    imaged.then_some(server)
}

/// `GET /metadata/{meta-data,network-config,user-data}`: the NoCloud documents of the
/// requesting server (identified by its source address: its node address or its provisioning
/// reservation), the same bytes as its config drive.
async fn metadata(
    State(st): State<Arc<BootHttp>>,
    ConnectInfo(from): ConnectInfo<std::net::SocketAddr>,
    Path(document): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(server) = requester(&st, from) else {
        warn!(%from, %document, "metadata request from an address no provisioned server holds");
        return text(
            StatusCode::FORBIDDEN,
            "no provisioned server has this address",
        );
    };
    let Some(image) = server.spec.image.as_ref() else {
        return text(StatusCode::NOT_FOUND, "no image");
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let checkin = format!("http://{host}/metadata/checkin");
    let docs = match nocloud::read(&st.client, &st.shared, &server, &image.checksum, &checkin).await
    {
        Ok(docs) => docs,
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    match document.as_str() {
        "meta-data" => text(StatusCode::OK, docs.meta_data),
        "network-config" => text(StatusCode::OK, docs.network_config),
        "user-data" => match &server.spec.user_data {
            Some(r) => {
                let namespace = server.namespace().unwrap_or_default();
                match nocloud::secret_value(&st.client, &namespace, r, "userData").await {
                    Ok(t) => text(StatusCode::OK, String::from_utf8_lossy(&t).into_owned()),
                    Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                }
            }
            None => text(StatusCode::OK, ""),
        },
        _ => text(StatusCode::NOT_FOUND, "no such document"),
    }
}

/// What the installed OS reports on its first boot.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckInBody {
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    instance_id: String,
}

/// `POST /metadata/checkin`: the installed OS's first boot, from its source address. Recorded
/// once for the provisioning attempt whose disk boot the controller asked for, or whose agent
/// kexecs into the installed OS.
async fn checkin(
    State(st): State<Arc<BootHttp>>,
    ConnectInfo(from): ConnectInfo<std::net::SocketAddr>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(report) = serde_json::from_slice::<CheckInBody>(&body) else {
        return text(StatusCode::BAD_REQUEST, "expected a JSON check-in");
    };
    let Some(server) = requester(&st, from) else {
        warn!(%from, "check-in from an address no provisioned server holds");
        return text(
            StatusCode::FORBIDDEN,
            "no provisioned server has this address",
        );
    };
    if report.instance_id != server.uid().unwrap_or_default() {
        warn!(%from, server = %server.name_any(), "check-in with another server's instance id");
        return text(StatusCode::FORBIDDEN, "instance id does not match");
    }
    let status = server.status.as_ref();
    let attempt = status.and_then(|s| s.boot_attempt.as_ref());
    // The installed OS was started: a disk boot through the BMC, or a kexec by the agent (its
    // result says so before the reconciler records the kexec).
    let awaited = attempt.filter(|a| {
        status
            .and_then(|s| s.boot_progress.as_ref())
            .is_some_and(|p| {
                let kexec = p.result.as_ref().and_then(|r| r.kexec) == Some(KexecOutcome::Loaded);
                p.attempt == a.id
                    && p.checked_in_at.is_none()
                    && (a.disk_boot_at.is_some() || a.kexec_at.is_some() || kexec)
            })
    });
    let Some(attempt) = awaited else {
        return text(StatusCode::OK, "ok (already recorded)");
    };
    let note = format!(
        "installed OS checked in from {}: hostname {}, addresses {}",
        from.ip(),
        report.hostname,
        report.addresses.join(", ")
    );
    let mut patch = BootProgressPatch::of(&attempt.id);
    patch.checked_in_at = Field::Set(steps::now());
    patch.check_in = Field::Set(CheckIn {
        hostname: report.hostname,
        addresses: report.addresses,
        instance_id: report.instance_id,
    });
    if let Err(e) = steps::write(&st.client, &server, &patch, None).await {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not recorded: {e}"),
        );
    }
    info!(server = %server.name_any(), %note, "first boot check-in");
    kube_kit::events::publish(
        &st.recorder,
        &server,
        kube::runtime::events::EventType::Normal,
        "CheckedIn",
        "FirstBoot",
        note,
    )
    .await;
    text(StatusCode::OK, "ok")
}
