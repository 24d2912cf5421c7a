//! The agent's life in the ramdisk: register with the boot token, then ask for tasks until
//! told to power off.

use std::time::Duration;

use proto::agent_v1::agent_client::AgentClient;
use proto::agent_v1::{Inventory, NextTaskRequest, RegisterRequest, task};
use tonic::metadata::MetadataValue;
use tracing::{info, warn};

use crate::cmdline::BootParams;

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The agent API could not be reached.
    #[error("agent API unreachable at {url}: {source}")]
    Connect {
        /// URL.
        url: String,
        /// Cause.
        source: tonic::transport::Error,
    },
    /// The controller refused or failed a call.
    #[error("{call} refused: {status}")]
    Refused {
        /// The RPC.
        call: &'static str,
        /// What the controller said.
        status: tonic::Status,
    },
    /// The credential is not valid metadata.
    #[error("malformed credential")]
    Credential,
}

impl RunError {
    /// CamelCase reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "AgentAPIUnreachable",
            Self::Refused { .. } => "AgentRefused",
            Self::Credential => "MalformedCredential",
        }
    }
}

/// What the controller finally asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Power the machine off.
    PowerOff,
}

/// Registers with `params` and `inventory`, then follows tasks until one ends the agent's work.
pub async fn run(
    params: &BootParams,
    inventory: Inventory,
    boot_mac: &str,
) -> Result<Outcome, RunError> {
    let mut client = AgentClient::connect(params.agent.clone())
        .await
        .map_err(|source| RunError::Connect {
            url: params.agent.clone(),
            source,
        })?;
    let registered = client
        .register(RegisterRequest {
            server: params.server.clone(),
            boot_token: params.token.clone(),
            boot_mac: boot_mac.to_string(),
            inventory: Some(inventory),
        })
        .await
        .map_err(|status| RunError::Refused {
            call: "Register",
            status,
        })?
        .into_inner();
    info!(server = %params.server, "registered");
    let bearer = MetadataValue::try_from(format!("Bearer {}", registered.credential))
        .map_err(|_| RunError::Credential)?;
    loop {
        let mut request = tonic::Request::new(NextTaskRequest {});
        request
            .metadata_mut()
            .insert("authorization", bearer.clone());
        let task = client
            .next_task(request)
            .await
            .map_err(|status| RunError::Refused {
                call: "NextTask",
                status,
            })?
            .into_inner();
        match task.kind {
            Some(task::Kind::PowerOff(_)) => return Ok(Outcome::PowerOff),
            Some(task::Kind::Wait(w)) => {
                tokio::time::sleep(Duration::from_secs(u64::from(w.seconds.clamp(1, 60)))).await;
            }
            other => {
                warn!(task = %task.id, kind = ?other, "task not supported by this agent yet; waiting");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}
