//! The GroundworkMachine reconciler: read (the owning Machine, its Cluster, the bootstrap
//! Secret, the site's Servers and Racks) → select (pure) → decide (pure) → apply (the one
//! write: a claim with a resourceVersion precondition, the Server's intent, or the
//! GroundworkMachine's finalizer and providerID, all server-side applied under the field
//! manager `groundwork-provider`) → status.

pub mod decide;
pub mod node;
mod read;
pub mod select;
mod write;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crds::GroundworkMachine;
use crds::field_managers::PROVIDER;
use crds::provider::MachineState;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use tracing::info;

use super::context::Context;
use decide::Write;

/// How often a provisioned Machine looks for its Node until it registers.
const NODE_POLL: Duration = Duration::from_secs(3);

/// Kind name for logs and metric labels.
pub const KIND: &str = "GroundworkMachine";

/// Why a reconciliation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// Another Machine claimed the Server first (the resourceVersion precondition failed):
    /// the next pass selects again.
    #[error("Server {0} was claimed or changed concurrently")]
    ClaimLost(String),
    /// The workload cluster's Node could not be read or labelled.
    #[error(transparent)]
    Node(#[from] node::NodeError),
}

impl Error {
    /// Label for the errors metric (and the condition reason when it is one).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "KubeError",
            Self::ClaimLost(_) => "ClaimLost",
            Self::Node(node::NodeError::Kube(_)) => "WorkloadClusterError",
            Self::Node(node::NodeError::Kubeconfig(_)) => "WorkloadKubeconfig",
        }
    }
}

/// Reconciles one GroundworkMachine.
pub async fn reconcile(
    obj: Arc<DeserializeGuard<GroundworkMachine>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let Ok(gm) = &obj.0 else {
        return Ok(Action::await_change());
    };
    let started = Instant::now();
    let facts = read::read(&ctx, gm).await?;
    let now = Time(jiff::Timestamp::now());
    let decision = decide::decide(&facts.view(), gm.status.as_ref(), &now);
    let before = gm.status.as_ref().and_then(|s| s.state);
    let after = decision.status.state;
    if before != after {
        info!(kind = KIND, namespace = %facts.namespace, name = %gm.name_any(),
            from = ?before, to = ?after, server = ?decision.status.server_ref.as_ref().map(|r| &r.name), "state changed");
    }
    let api: Api<GroundworkMachine> = Api::namespaced(ctx.client.clone(), &facts.namespace);
    let gone = matches!(
        decision.write,
        Write::Machine {
            finalizer: false,
            ..
        }
    );
    if !gone {
        let written = kube_kit::status::apply_if_changed(
            &api,
            PROVIDER,
            &gm.name_any(),
            gm.status.as_ref(),
            &decision.status,
        )
        .await?;
        if written {
            ctx.metrics.status_written(KIND);
            let old = gm
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default();
            kube_kit::events::announce(
                &ctx.recorder,
                gm,
                old,
                &decision.status.conditions,
                kube_kit::events::FirstStatus::ProblemsOnly,
            )
            .await;
        }
    }
    let wrote = write::write(&ctx, gm, &facts.namespace, &decision.write).await?;
    // Once provisioned: the Node, when it registers, gets its zone, region and providerID.
    let node_pending = match facts.node() {
        Some((cluster, wanted)) if after == Some(MachineState::Provisioned) && !wrote => {
            let workload = node::workload_client(&ctx.client, &facts.namespace, cluster).await?;
            !node::sync(&workload, &wanted).await?
        }
        _ => false,
    };
    ctx.metrics.reconciled(KIND, started.elapsed());
    Ok(if wrote {
        Action::requeue(Duration::from_millis(200))
    } else if node_pending {
        Action::requeue(NODE_POLL)
    } else {
        Action::requeue(ctx.resync)
    })
}
