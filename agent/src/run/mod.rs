//! The agent's life in the ramdisk: register with the boot token, then ask for tasks and carry
//! them out until told to power off.
//!
//! Every call survives a controller restart (retries for up to ten minutes); a task's result
//! is delivered before the next task is asked for; log lines go to the controller every two
//! seconds, before each task's result and once more before the agent stops.

mod api;
mod clean_task;
mod progress;
mod provision;
pub mod retry;
mod task;
mod tls;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use proto::agent_v1::{
    Inventory, KexecOutcome, LogBatch, RegisterRequest, Task, TaskResult, task as kind,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use self::api::Api;
pub use self::api::channel;
pub use self::retry::RetryPolicy;
pub use self::task::{Decision, TaskError, decide};
use crate::cmdline::BootParams;
use crate::kexec;
use crate::logs::LogBuffer;

/// How often buffered log lines are shipped.
const LOG_INTERVAL: Duration = Duration::from_secs(2);
/// Lines per SendLogs call.
const LOG_BATCH: usize = 500;
/// How long the final log flush may retry before the agent stops anyway.
const FINAL_FLUSH_BUDGET: Duration = Duration::from_secs(30);
/// How long the flush before a task's result may retry (the result matters more).
const TASK_FLUSH_BUDGET: Duration = Duration::from_secs(5);
/// Pause before asking again after re-reporting a task the controller handed out twice.
const REPEAT_PAUSE: Duration = Duration::from_secs(2);

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The agent API URL is not usable.
    #[error("agent API URL {url:?} is invalid: {source}")]
    Endpoint {
        /// URL.
        url: String,
        /// Cause.
        source: tonic::transport::Error,
    },
    /// The controller kept failing (unreachable, restarting) past the retry budget.
    #[error("{call} still failing after {tries} tries: {status}")]
    Unreachable {
        /// The RPC.
        call: &'static str,
        /// Tries made.
        tries: u32,
        /// The last error.
        status: tonic::Status,
    },
    /// The controller refused a call for good.
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
    /// The CA certificate the controller serves is not the one pinned on the command line.
    #[error("the agent API CA at {url} is {served}, not the pinned {pinned}")]
    CAFingerprintMismatch {
        /// Where the CA certificate was fetched.
        url: String,
        /// `groundwork.ca`.
        pinned: String,
        /// The served certificate's pin (or why there was none).
        served: String,
    },
    /// An `https://` agent API without `groundwork.ca`: nothing to trust.
    #[error("no groundwork.ca pin for the agent API at {url}")]
    CAPinMissing {
        /// The agent API URL.
        url: String,
    },
    /// The TLS client could not be built.
    #[error("agent API TLS: {0}")]
    TlsSetup(String),
}

impl RunError {
    /// CamelCase reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Endpoint { .. } => "InvalidAgentURL",
            Self::Unreachable { .. } => "AgentAPIUnreachable",
            Self::Refused { .. } => "AgentRefused",
            Self::Credential => "MalformedCredential",
            Self::CAFingerprintMismatch { .. } => "CAFingerprintMismatch",
            Self::CAPinMissing { .. } => "CAPinMissing",
            Self::TlsSetup(_) => "AgentTLSSetupFailed",
        }
    }
}

/// What the controller finally asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Power the machine off.
    PowerOff,
    /// Execute the installed OS's kernel, loaded by a warm Provision task
    /// ([`crate::kexec::execute`]).
    Kexec,
}

/// Where the agent finds the machine and how it talks.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// sysfs root (disks for Provision and Clean).
    pub sys: PathBuf,
    /// The log lines to ship, if a [`crate::logs::LogLayer`] fills them.
    pub logs: Option<LogBuffer>,
    /// Retries of agent API calls.
    pub retry: RetryPolicy,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            sys: PathBuf::from("/sys"),
            logs: None,
            retry: RetryPolicy::default(),
        }
    }
}

/// Registers with `params` and `inventory`, then follows tasks until one ends the agent's work.
pub async fn run(
    params: &BootParams,
    inventory: Inventory,
    boot_mac: &str,
    options: &RunOptions,
) -> Result<Outcome, RunError> {
    let mut api = Api::connect(params, options.retry).await?;
    let registered = api
        .register(RegisterRequest {
            server: params.server.clone(),
            boot_token: params.token.clone(),
            boot_mac: boot_mac.to_string(),
            inventory: Some(inventory),
        })
        .await;
    if let Err(e) = &registered {
        // Nobody will receive the logs: the credential is what SendLogs needs.
        warn!(reason = e.reason(), error = %e, "registration failed");
        return registered.map(|_| Outcome::PowerOff);
    }
    info!(server = %params.server, "registered");
    let shipper = options.logs.clone().map(|logs| {
        let (stop, stopped) = oneshot::channel();
        (ship_logs(api.clone(), logs.clone(), stopped), stop, logs)
    });
    let outcome = follow_tasks(&api, options).await;
    if let Err(e) = &outcome {
        warn!(reason = e.reason(), error = %e, "agent stopping");
    }
    if let Some((handle, stop, logs)) = shipper {
        let _ = stop.send(());
        let _ = handle.await;
        flush_logs(&api, &logs, FINAL_FLUSH_BUDGET).await;
    }
    outcome
}

/// Asks for tasks and carries them out until PowerOff.
async fn follow_tasks(api: &Api, options: &RunOptions) -> Result<Outcome, RunError> {
    let sys_block = options.sys.join("block");
    // Results already delivered: a task handed out again (the controller restarted before it
    // recorded the result) is answered with the same result, never run twice.
    let mut done: HashMap<String, TaskResult> = HashMap::new();
    loop {
        let task = api.next_task().await?;
        match &task.kind {
            Some(kind::Kind::PowerOff(_)) => {
                info!(task = %task.id, "told to power off");
                return Ok(Outcome::PowerOff);
            }
            Some(kind::Kind::Wait(w)) => {
                tokio::time::sleep(Duration::from_secs(u64::from(w.seconds.clamp(1, 60)))).await;
            }
            Some(kind::Kind::Provision(_) | kind::Kind::Clean(_)) => {
                if let Some(result) = done.get(&task.id) {
                    info!(task = %task.id, "task handed out again; repeating its result");
                    api.report_result(result).await?;
                    tokio::time::sleep(REPEAT_PAUSE).await;
                    continue;
                }
                let result = execute(api, &task, &sys_block).await;
                // The controller may power-cycle the machine as soon as it has the result:
                // the task's own log lines go first.
                if let Some(logs) = &options.logs {
                    flush_logs(api, logs, TASK_FLUSH_BUDGET).await;
                }
                api.report_result(&result).await?;
                info!(task = %task.id, ok = result.ok, "result delivered");
                if result.kexec() == KexecOutcome::Loaded {
                    info!(task = %task.id, "booting the installed OS with kexec");
                    return Ok(Outcome::Kexec);
                }
                done.insert(task.id.clone(), result);
            }
            None => {
                warn!(task = %task.id, "task of an unknown kind; asking again shortly");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

/// Loads the kernel the image on `device` declares for kexec; what became of it.
async fn load_installed(device: &str) -> KexecOutcome {
    let device = PathBuf::from(device);
    let loaded = tokio::task::spawn_blocking(move || {
        let found = kexec::find(&device)?;
        kexec::load(&found).map(|()| found.entry)
    })
    .await;
    match loaded {
        Ok(Ok(entry)) => {
            info!(kernel = %entry.kernel, initrds = ?entry.initrds, cmdline = %entry.cmdline, "installed kernel loaded for kexec");
            KexecOutcome::Loaded
        }
        Ok(Err(e)) => {
            warn!(error = %e, "no kexec: the controller boots the disk through the BMC");
            e.outcome()
        }
        Err(e) => {
            warn!(error = %e, "kexec load did not finish");
            KexecOutcome::LoadFailed
        }
    }
}

/// Runs a Provision or Clean task with progress reporting; its result.
async fn execute(api: &Api, task: &Task, sys_block: &std::path::Path) -> TaskResult {
    let (reporter, reporting) = progress::start(api.clone(), task.id.clone());
    let mut result = TaskResult {
        task_id: task.id.clone(),
        ..Default::default()
    };
    let outcome = match &task.kind {
        Some(kind::Kind::Provision(p)) => {
            info!(task = %task.id, image = %p.image_url, format = %p.format, "provisioning");
            let provisioned = provision::provision(p, sys_block, &reporter).await;
            if p.kexec
                && let Ok(done) = &provisioned
            {
                // Only a verified, committed write (or an adopted disk) gets here.
                result.set_kexec(load_installed(&done.device).await);
            }
            provisioned.map(|done| {
                result.message = if done.adopted {
                    format!(
                        "{} already holds this image (marker matches); nothing written",
                        done.device
                    )
                } else {
                    format!(
                        "image and config drive written to {} ({} bytes)",
                        done.device, done.bytes_written
                    )
                };
                result.device = done.device;
                result.adopted = done.adopted;
                result.bytes_written = done.bytes_written;
            })
        }
        Some(kind::Kind::Clean(c)) => {
            clean_task::clean(c, sys_block, &reporter)
                .await
                .map(|done| {
                    result.message = format!(
                        "cleaned {} ({} bytes zeroed)",
                        done.devices, done.bytes_written
                    );
                    result.device = done.devices;
                    result.bytes_written = done.bytes_written;
                })
        }
        _ => Err(TaskError::InvalidTask(
            "not a Provision or Clean task".into(),
        )),
    };
    drop(reporter);
    let _ = reporting.await;
    match outcome {
        Ok(()) => {
            info!(task = %task.id, device = %result.device, adopted = result.adopted, "task done");
            result.ok = true;
        }
        Err(e) => {
            warn!(task = %task.id, reason = ?e.reason(), error = %e, "task failed");
            result.ok = false;
            result.set_reason(e.reason());
            result.message = e.to_string();
        }
    }
    result
}

/// Ships buffered log lines every [`LOG_INTERVAL`] until `stop` fires (between rounds, so
/// no batch is lost); unsent lines wait for the next round.
fn ship_logs(api: Api, logs: LogBuffer, mut stop: oneshot::Receiver<()>) -> JoinHandle<()> {
    tokio::spawn(async move {
        // One quick try per round: the next round is the retry.
        let once = api.policy().with_budget(Duration::ZERO);
        let mut tick = tokio::time::interval(LOG_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = &mut stop => return,
            }
            while !logs.is_empty() {
                let lines = logs.drain(LOG_BATCH);
                let batch = LogBatch { lines };
                if api.send_logs(&batch, &once).await.is_err() {
                    logs.requeue(batch.lines);
                    break;
                }
            }
        }
    })
}

/// Sends what is buffered now, retrying for `budget` at most.
async fn flush_logs(api: &Api, logs: &LogBuffer, budget: Duration) {
    let policy = api.policy().with_budget(budget);
    while !logs.is_empty() {
        let batch = LogBatch {
            lines: logs.drain(LOG_BATCH),
        };
        if let Err(e) = api.send_logs(&batch, &policy).await {
            warn!(error = %e, lines = batch.lines.len(), "final log flush failed");
            return;
        }
    }
}
