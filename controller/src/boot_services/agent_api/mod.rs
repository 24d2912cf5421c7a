//! The gRPC API the on-host agent calls (`proto/groundwork/agent/v1/agent.proto`).
//!
//! Register trades the one-time boot token for a per-server credential: an HMAC over the
//! Server's UID and its boot attempt, sent as `authorization: Bearer <namespace>/<name>:<hex>`.
//! The credential alone decides which Server a call acts on, so an agent can neither read nor
//! act on another Server; it dies with the attempt.

pub mod enroll;
mod tasks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use boot::token::TokenKey;
use crds::Server;
use crds::server::{
    BootProgressPatch, Disk, DmiIdentity, Field, HardwareInventory, KexecOutcome, Nic, ServerState,
    TaskOutcome, TaskProgress,
};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::events::{EventType, Recorder};
use proto::agent_v1::agent_server::Agent;
use proto::agent_v1::{
    Ack, LogBatch, NextTaskRequest, Progress, RegisterRequest, RegisterResponse, Task, TaskResult,
};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

pub use proto::agent_v1::agent_server::AgentServer;

use crate::boot_services::nocloud::server_id;
use crate::boot_services::report::{ReportError, report_in};
use crate::boot_services::shared::{AgentContext, Shared};
use crate::boot_services::steps;

/// Progress is written to status at most this often per server (phase changes always are).
const PROGRESS_WRITE_INTERVAL: Duration = Duration::from_secs(5);

/// A standby agent's heartbeat is written at most this often per server (and every quarter
/// of the heartbeat timeout when that is shorter).
const HEARTBEAT_WRITE_INTERVAL: Duration = Duration::from_secs(60);

/// How long a standby agent's NextTask is held open waiting for work before it is answered
/// with a short Wait (under the agent's 120 s NextTask deadline).
const STANDBY_HOLD: Duration = Duration::from_secs(25);

/// Log lines quoted in a failure's Event and condition message.
const FAILURE_LOG_LINES: usize = 15;

/// The agent API service.
pub struct AgentApi {
    /// Caches and index of the boot services.
    pub shared: Arc<Shared>,
    /// API client for status writes.
    pub client: kube::Client,
    /// Events.
    pub recorder: Recorder,
    /// The key boot tokens and credentials are signed with.
    pub key: TokenKey,
    /// Port of the HTTP boot service (metadata, check-in), on the address agents reach.
    pub http_port: u16,
    /// Where unknown machines are enrolled (None: auto-enrolment off).
    pub enroll_namespace: Option<String>,
    /// How often a standby agent's heartbeat is written.
    pub heartbeat_interval: Duration,
    /// When each server's progress was last written, and in which phase.
    written: Mutex<HashMap<String, (String, Instant)>>,
}

fn credential_scope(attempt: &str) -> String {
    format!("agent:{attempt}")
}

impl AgentApi {
    /// Registers an unknown machine (discovery ramdisk) as a Discovered Server.
    async fn enroll(&self, r: RegisterRequest) -> Result<Response<RegisterResponse>, Status> {
        let Some(namespace) = self.enroll_namespace.as_deref() else {
            return Err(Status::not_found(enroll::EnrollError::Disabled.to_string()));
        };
        let server = enroll::enroll(
            &self.client,
            &self.recorder,
            namespace,
            &r.boot_mac,
            r.inventory.map(hardware),
        )
        .await
        .map_err(|e| match e {
            enroll::EnrollError::BadMac(_) => Status::invalid_argument(e.to_string()),
            other => Status::unavailable(other.to_string()),
        })?;
        let uid = server.uid().unwrap_or_default();
        let mac = self
            .key
            .issue(&uid, &credential_scope(enroll::DISCOVERY_ATTEMPT));
        Ok(Response::new(RegisterResponse {
            credential: format!("{}:{mac}", server_id(&server)),
            server_uid: uid,
        }))
    }

    /// A restarted replica knows no Server until its caches are complete: a refusal (or an
    /// enrollment) before that would be final for an agent whose Server exists. Unavailable is
    /// what the agent retries.
    fn ready(&self) -> Result<(), Status> {
        if self.shared.synced() {
            Ok(())
        } else {
            Err(Status::unavailable(
                "boot services starting: Servers not read yet",
            ))
        }
    }

    /// The Server and its current attempt, when the call's credential verifies: it was issued
    /// for the attempt that booted the agent's ramdisk (the current one, or the one a warm
    /// attempt names).
    fn authenticate<T>(&self, req: &Request<T>) -> Result<(Server, String), Status> {
        let bearer = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("missing bearer credential"))?;
        let (id, mac) = bearer
            .rsplit_once(':')
            .ok_or_else(|| Status::unauthenticated("malformed credential"))?;
        self.ready()?;
        let refused = || Status::unauthenticated("credential refused");
        let server = self.shared.server_by_name(id).ok_or_else(refused)?;
        let open = server
            .status
            .as_ref()
            .and_then(|s| s.boot_attempt.as_ref())
            .ok_or_else(refused)?;
        let attempt = open.id.clone();
        if !self.key.verify(
            &server.uid().unwrap_or_default(),
            &credential_scope(open.credential_attempt()),
            mac,
        ) {
            warn!(server = %id, "agent credential refused");
            return Err(refused());
        }
        Ok((server, attempt))
    }

    /// What an answered poll records: a standby agent's heartbeat (at most once a
    /// heartbeat interval), or the start of a warm attempt's record when its
    /// Provision task is handed to the agent that waited on standby (before the task goes out,
    /// so the agent's progress and result land in the new attempt's record, not the old one's).
    async fn record_poll(
        &self,
        server: &Server,
        attempt: &str,
        kind: &proto::agent_v1::task::Kind,
    ) -> Result<(), Status> {
        let Some(status) = server.status.as_ref() else {
            return Ok(());
        };
        let record = status.boot_progress.as_ref();
        let patch = match kind {
            proto::agent_v1::task::Kind::Provision(_)
                if record.is_none_or(|p| p.attempt != attempt) =>
            {
                let mut patch = BootProgressPatch::fresh(attempt);
                patch.called_back_at = Field::Set(steps::now());
                info!(server = %server.name_any(), %attempt, "warm handoff: Provision task to the agent on standby");
                patch
            }
            proto::agent_v1::task::Kind::Wait(_) if status.state == Some(ServerState::Standby) => {
                let stale = record
                    .filter(|p| p.attempt == attempt)
                    .and_then(|p| p.heartbeat_at.as_ref())
                    .is_none_or(|t| {
                        Timestamp::now().duration_since(t.0).as_secs()
                            >= self.heartbeat_interval.as_secs() as i64
                    });
                if !stale {
                    return Ok(());
                }
                let mut patch = BootProgressPatch::of(attempt);
                patch.heartbeat_at = Field::Set(steps::now());
                patch
            }
            _ => return Ok(()),
        };
        steps::write(&self.client, server, &patch, None)
            .await
            .map_err(|e| Status::unavailable(format!("not recorded: {e}")))
    }

    /// Refuses a task id that is not of this server's attempt.
    fn own_task(server: &Server, attempt: &str, task_id: &str) -> Result<(), Status> {
        if task_id.starts_with(&task_prefix(server, attempt)) {
            Ok(())
        } else {
            warn!(server = %server.name_any(), task_id, "agent reported on a task that is not its own");
            Err(Status::permission_denied("not a task of this server"))
        }
    }
}

/// The Server status's name for what the agent did about kexec (the one conversion from the
/// API's enum; `None` when it was not asked for).
fn kexec_outcome(k: proto::agent_v1::KexecOutcome) -> Option<KexecOutcome> {
    use proto::agent_v1::KexecOutcome as Wire;
    match k {
        Wire::NotAsked => None,
        Wire::Loaded => Some(KexecOutcome::Loaded),
        Wire::NoBootEntry => Some(KexecOutcome::NoBootEntry),
        Wire::LoadFailed => Some(KexecOutcome::LoadFailed),
    }
}

/// Task ids are `<server uid>/<attempt>/<kind>`: unique across servers and attempts.
fn task_prefix(server: &Server, attempt: &str) -> String {
    format!("{}/{attempt}/", server.uid().unwrap_or_default())
}

fn hardware(i: proto::agent_v1::Inventory) -> HardwareInventory {
    let text = |s: String| (!s.is_empty()).then_some(s);
    HardwareInventory {
        cpu_model: text(i.cpu_model),
        cpu_count: i.cpu_count,
        memory_bytes: i.memory_bytes,
        disks: i
            .disks
            .into_iter()
            .map(|d| Disk {
                name: d.name,
                size_bytes: d.size_bytes,
                model: text(d.model),
                serial_number: text(d.serial_number),
                wwn: text(d.wwn),
                rotational: d.rotational,
            })
            .collect(),
        nics: i
            .nics
            .into_iter()
            .map(|n| Nic {
                name: n.name,
                mac: n.mac,
                speed_mbps: (n.speed_mbps > 0).then_some(n.speed_mbps),
                link_up: n.link_up,
            })
            .collect(),
        dmi: i.dmi.map(|d| DmiIdentity {
            system_manufacturer: text(d.system_manufacturer),
            system_product: text(d.system_product),
            system_serial: text(d.system_serial),
            system_uuid: text(d.system_uuid),
            board_vendor: text(d.board_vendor),
            board_product: text(d.board_product),
            bios_vendor: text(d.bios_vendor),
            bios_version: text(d.bios_version),
        }),
    }
}

#[tonic::async_trait]
impl Agent for AgentApi {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        self.ready()?;
        let r = request.into_inner();
        if r.server == "-" {
            return self.enroll(r).await;
        }
        let reported = report_in(
            &self.shared,
            &self.client,
            &self.recorder,
            &self.key,
            &r.server,
            &r.boot_token,
            r.inventory.map(hardware),
        )
        .await;
        let (server, attempt) = reported.map_err(|e| match e {
            ReportError::UnknownServer => Status::not_found(e.to_string()),
            ReportError::NoOpenAttempt => Status::failed_precondition(e.to_string()),
            ReportError::TokenRefused => Status::permission_denied(e.to_string()),
            ReportError::NotRecorded => Status::unavailable(e.to_string()),
        })?;
        let uid = server.uid().unwrap_or_default();
        let mac = self.key.issue(&uid, &credential_scope(&attempt));
        info!(server = %r.server, %attempt, "agent registered");
        Ok(Response::new(RegisterResponse {
            credential: format!("{}:{mac}", r.server),
            server_uid: uid,
        }))
    }

    async fn next_task(&self, request: Request<NextTaskRequest>) -> Result<Response<Task>, Status> {
        let (server, attempt) = self.authenticate(&request)?;
        // The address the agent reached us at (plain TCP or TLS) is where its OS checks in.
        let local = request.local_addr();
        let checkin_url = match local {
            Some(a) => format!(
                "http://{}/metadata/checkin",
                std::net::SocketAddr::new(a.ip(), self.http_port)
            ),
            None => String::new(),
        };
        let next = |server: Server, attempt: String| {
            let checkin_url = checkin_url.clone();
            async move {
                match tasks::next(&self.client, &self.shared, &server, &attempt, &checkin_url).await
                {
                    Ok(kind) => Ok((server, attempt, kind)),
                    Err(e) => {
                        warn!(server = %server.name_any(), error = %e, "no task for the agent");
                        Err(Status::unavailable(e.to_string()))
                    }
                }
            }
        };
        let mut changes = self.shared.changes();
        let (mut server, mut attempt, mut kind) = next(server, attempt).await?;
        // A waiting agent's poll (on standby, or about to be) is held until there is work (the
        // handoff is then immediate) or the hold ends; the heartbeat is written as it is
        // answered.
        // Never longer than the heartbeat interval: the answer is what writes the heartbeat.
        let until = tokio::time::Instant::now() + STANDBY_HOLD.min(self.heartbeat_interval);
        while matches!(kind, proto::agent_v1::task::Kind::Wait(_)) {
            if !matches!(
                tokio::time::timeout_at(until, changes.changed()).await,
                Ok(Ok(()))
            ) {
                break;
            }
            let (now, now_attempt) = self.authenticate(&request)?;
            (server, attempt, kind) = next(now, now_attempt).await?;
        }
        self.record_poll(&server, &attempt, &kind).await?;
        Ok(Response::new(Task {
            id: format!("{}{}", task_prefix(&server, &attempt), tasks::name(&kind)),
            kind: Some(kind),
        }))
    }

    async fn report_progress(&self, request: Request<Progress>) -> Result<Response<Ack>, Status> {
        let (server, attempt) = self.authenticate(&request)?;
        let p = request.into_inner();
        Self::own_task(&server, &attempt, &p.task_id)?;
        let id = server_id(&server);
        let due = self.written.lock().map_or(true, |mut w| {
            let due = w.get(&id).is_none_or(|(phase, at)| {
                *phase != p.phase || at.elapsed() >= PROGRESS_WRITE_INTERVAL
            });
            if due {
                w.insert(id.clone(), (p.phase.clone(), Instant::now()));
            }
            due
        });
        if due {
            info!(server = %id, task = %p.task_id, phase = %p.phase, done = p.bytes_done, total = p.bytes_total, rate = p.bytes_per_second, "agent progress");
            let mut patch = BootProgressPatch::of(&attempt);
            patch.progress = Field::Set(TaskProgress {
                phase: p.phase.clone(),
                bytes_done: p.bytes_done,
                bytes_total: p.bytes_total,
                bytes_per_second: p.bytes_per_second,
                at: Time(Timestamp::now()),
            });
            steps::write(&self.client, &server, &patch, None)
                .await
                .map_err(|e| Status::unavailable(format!("progress not recorded: {e}")))?;
        }
        Ok(Response::new(Ack {}))
    }

    async fn report_result(&self, request: Request<TaskResult>) -> Result<Response<Ack>, Status> {
        let (server, attempt) = self.authenticate(&request)?;
        let r = request.into_inner();
        let reason = r.reason().condition_reason();
        let kexec = kexec_outcome(r.kexec());
        Self::own_task(&server, &attempt, &r.task_id)?;
        let id = server_id(&server);
        let already = server
            .status
            .as_ref()
            .and_then(|s| s.boot_progress.as_ref())
            .is_some_and(|p| p.attempt == attempt && p.result.is_some());
        if already {
            return Ok(Response::new(Ack {}));
        }
        let text = |s: String| (!s.is_empty()).then_some(s);
        let mut message = text(r.message);
        if !r.ok {
            let tail = self.shared.logs.tail(&id, FAILURE_LOG_LINES);
            if !tail.is_empty() {
                message = Some(format!(
                    "{}; last agent log lines:\n{}",
                    message.unwrap_or_default(),
                    tail.join("\n")
                ));
            }
        }
        let outcome = TaskOutcome {
            ok: r.ok,
            reason: reason.map(str::to_string),
            message,
            device: text(r.device),
            adopted: r.adopted,
            bytes_written: r.bytes_written,
            kexec,
        };
        info!(server = %id, task = %r.task_id, ok = outcome.ok, reason = ?outcome.reason, adopted = outcome.adopted, "agent result");
        let mut patch = BootProgressPatch::of(&attempt);
        patch.result_at = Field::Set(steps::now());
        patch.result = Field::Set(outcome.clone());
        steps::write(&self.client, &server, &patch, None)
            .await
            .map_err(|e| Status::unavailable(format!("result not recorded: {e}")))?;
        let (type_, reason, note) = match (&outcome.ok, outcome.adopted) {
            (true, true) => (
                EventType::Normal,
                "Adopted".to_string(),
                "the target disk already holds this image: adopted without writing".to_string(),
            ),
            (true, false) => (
                EventType::Normal,
                "AgentTaskSucceeded".to_string(),
                format!(
                    "{} done on {} ({} MiB written)",
                    r.task_id.rsplit('/').next().unwrap_or_default(),
                    outcome.device.as_deref().unwrap_or("?"),
                    outcome.bytes_written >> 20
                ),
            ),
            (false, _) => (
                EventType::Warning,
                outcome
                    .reason
                    .clone()
                    .unwrap_or_else(|| "AgentTaskFailed".into()),
                outcome.message.clone().unwrap_or_default(),
            ),
        };
        kube_kit::events::publish(&self.recorder, &server, type_, &reason, "Agent", note).await;
        Ok(Response::new(Ack {}))
    }

    async fn send_logs(&self, request: Request<LogBatch>) -> Result<Response<Ack>, Status> {
        let (server, _) = self.authenticate(&request)?;
        self.shared
            .logs
            .append(&server_id(&server), request.into_inner().lines);
        Ok(Response::new(Ack {}))
    }
}

/// Serves the agent API on the boot services' listener until it fails.
pub async fn serve(ctx: AgentContext) {
    let api = AgentApi {
        shared: ctx.shared,
        client: ctx.client,
        recorder: ctx.recorder,
        key: ctx.key,
        http_port: ctx.http_port,
        enroll_namespace: ctx.enroll_namespace,
        heartbeat_interval: HEARTBEAT_WRITE_INTERVAL.min(ctx.standby_heartbeat_timeout / 4),
        written: Mutex::default(),
    };
    let tls = tonic::transport::ServerTlsConfig::new().identity(ctx.identity);
    let mut builder = match tonic::transport::Server::builder().tls_config(tls) {
        Ok(b) => b,
        Err(e) => {
            warn!(error = %e, "agent API TLS configuration refused");
            return;
        }
    };
    let served = builder
        .add_service(AgentServer::new(api))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(ctx.listener))
        .await;
    if let Err(e) = served {
        warn!(error = %e, "agent API failed");
    }
}
