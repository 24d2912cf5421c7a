//! The gRPC API the on-host agent calls (`proto/groundwork/agent/v1/agent.proto`).
//!
//! Register trades the one-time boot token for a per-server credential: an HMAC over the
//! Server's UID and its boot attempt, sent as `authorization: Bearer <namespace>/<name>:<hex>`.
//! The credential alone decides which Server a call acts on, so an agent can neither read nor
//! act on another Server; it dies with the attempt.

mod logs;

use std::sync::Arc;

use boot::token::TokenKey;
use crds::Server;
use crds::server::{BootPurpose, Disk, HardwareInventory, Nic};
use kube::ResourceExt;
use kube::runtime::events::Recorder;
use proto::agent_v1::agent_server::Agent;
use proto::agent_v1::{
    Ack, LogBatch, NextTaskRequest, PowerOff, Progress, RegisterRequest, RegisterResponse, Task,
    TaskResult, Wait, task,
};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

pub use logs::Logs;
pub use proto::agent_v1::agent_server::AgentServer;

use crate::netboot::report::{ReportError, report_in};
use crate::netboot::{AgentContext, Shared};

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
    /// The agents' recent log lines, per Server.
    pub logs: Arc<Logs>,
}

fn credential_scope(attempt: &str) -> String {
    format!("agent:{attempt}")
}

impl AgentApi {
    /// The Server and attempt the call's credential names; refused unless it verifies.
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
        let refused = || Status::unauthenticated("credential refused");
        let server = self.shared.server_by_name(id).ok_or_else(refused)?;
        let attempt = server
            .status
            .as_ref()
            .and_then(|s| s.boot_attempt.as_ref())
            .map(|a| a.id.clone())
            .ok_or_else(refused)?;
        if !self.key.verify(
            &server.uid().unwrap_or_default(),
            &credential_scope(&attempt),
            mac,
        ) {
            warn!(server = %id, "agent credential refused");
            return Err(refused());
        }
        Ok((server, attempt))
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
    }
}

#[tonic::async_trait]
impl Agent for AgentApi {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let r = request.into_inner();
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
        let purpose = server
            .status
            .as_ref()
            .and_then(|s| s.boot_attempt.as_ref())
            .map(|a| a.purpose)
            .unwrap_or_default();
        let kind = match purpose {
            // Inspection is complete once the agent registered with its inventory.
            BootPurpose::Inspect => task::Kind::PowerOff(PowerOff {}),
            // Provisioning and cleaning tasks arrive with the provisioning work.
            BootPurpose::Provision | BootPurpose::Clean => task::Kind::Wait(Wait { seconds: 5 }),
        };
        Ok(Response::new(Task {
            id: format!("{}{}", task_prefix(&server, &attempt), purpose.mode()),
            kind: Some(kind),
        }))
    }

    async fn report_progress(&self, request: Request<Progress>) -> Result<Response<Ack>, Status> {
        let (server, attempt) = self.authenticate(&request)?;
        let p = request.into_inner();
        Self::own_task(&server, &attempt, &p.task_id)?;
        info!(server = %server.name_any(), task = %p.task_id, phase = %p.phase, done = p.bytes_done, total = p.bytes_total, "agent progress");
        Ok(Response::new(Ack {}))
    }

    async fn report_result(&self, request: Request<TaskResult>) -> Result<Response<Ack>, Status> {
        let (server, attempt) = self.authenticate(&request)?;
        let r = request.into_inner();
        Self::own_task(&server, &attempt, &r.task_id)?;
        info!(server = %server.name_any(), task = %r.task_id, ok = r.ok, reason = %r.reason, "agent result");
        Ok(Response::new(Ack {}))
    }

    async fn send_logs(&self, request: Request<LogBatch>) -> Result<Response<Ack>, Status> {
        let (server, _) = self.authenticate(&request)?;
        let id = format!(
            "{}/{}",
            server.namespace().unwrap_or_default(),
            server.name_any()
        );
        self.logs.append(&id, request.into_inner().lines);
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
        logs: Arc::new(Logs::default()),
    };
    let served = tonic::transport::Server::builder()
        .add_service(AgentServer::new(api))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(ctx.listener))
        .await;
    if let Err(e) = served {
        warn!(error = %e, "agent API failed");
    }
}
