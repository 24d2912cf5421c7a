//! The agent API client: a lazily (re)connecting channel, the bearer credential on every call
//! after Register, and retries on transient failures.

use std::time::Duration;

use proto::agent_v1::agent_client::AgentClient;
use proto::agent_v1::{
    LogBatch, NextTaskRequest, Progress, RegisterRequest, RegisterResponse, Task, TaskResult,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use super::RunError;
use super::retry::{Failure, RetryPolicy, retry};

/// Deadline of a NextTask long poll (the controller answers Wait well before).
const NEXT_TASK_TIMEOUT: Duration = Duration::from_secs(120);
/// Deadline of every other call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of a progress report: progress is a liveness signal, never worth waiting for.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on the agent API; clones share the connection.
#[derive(Debug, Clone)]
pub struct Api {
    client: AgentClient<Channel>,
    bearer: Option<MetadataValue<Ascii>>,
    policy: RetryPolicy,
}

impl Api {
    /// A client for `url` that connects on first use and reconnects after failures.
    pub fn new(url: &str, policy: RetryPolicy) -> Result<Self, RunError> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|source| RunError::Endpoint {
                url: url.to_string(),
                source,
            })?
            .connect_timeout(Duration::from_secs(5))
            .tcp_keepalive(Some(Duration::from_secs(30)))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        Ok(Self {
            client: AgentClient::new(endpoint.connect_lazy()),
            bearer: None,
            policy,
        })
    }

    /// The retry policy of this client.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    fn request<T>(&self, message: T, timeout: Duration) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(timeout);
        if let Some(bearer) = &self.bearer {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
        }
        request
    }

    /// Trades the boot token for the credential used on every later call.
    pub async fn register(&mut self, req: RegisterRequest) -> Result<RegisterResponse, RunError> {
        let this = self.clone();
        let response = retry(&self.policy, "Register", || {
            let mut client = this.client.clone();
            let request = this.request(req.clone(), CALL_TIMEOUT);
            async move { client.register(request).await }
        })
        .await
        .map_err(|f| failed("Register", f))?
        .into_inner();
        let bearer = MetadataValue::try_from(format!("Bearer {}", response.credential))
            .map_err(|_| RunError::Credential)?;
        self.bearer = Some(bearer);
        Ok(response)
    }

    /// The next task (a long poll).
    pub async fn next_task(&self) -> Result<Task, RunError> {
        retry(&self.policy, "NextTask", || {
            let mut client = self.client.clone();
            let request = self.request(NextTaskRequest {}, NEXT_TASK_TIMEOUT);
            async move { client.next_task(request).await }
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(|f| failed("NextTask", f))
    }

    /// Reports a task's outcome, retrying until the controller has it.
    pub async fn report_result(&self, result: &TaskResult) -> Result<(), RunError> {
        retry(&self.policy, "ReportResult", || {
            let mut client = self.client.clone();
            let request = self.request(result.clone(), CALL_TIMEOUT);
            async move { client.report_result(request).await }
        })
        .await
        .map(drop)
        .map_err(|f| failed("ReportResult", f))
    }

    /// Reports progress once; a lost report is superseded by the next.
    pub async fn report_progress(&self, progress: Progress) -> Result<(), Status> {
        let request = self.request(progress, PROGRESS_TIMEOUT);
        self.client.clone().report_progress(request).await.map(drop)
    }

    /// Sends log lines, retrying within `policy`.
    pub async fn send_logs(&self, batch: &LogBatch, policy: &RetryPolicy) -> Result<(), RunError> {
        retry(policy, "SendLogs", || {
            let mut client = self.client.clone();
            let request = self.request(batch.clone(), CALL_TIMEOUT);
            async move { client.send_logs(request).await }
        })
        .await
        .map(drop)
        .map_err(|f| failed("SendLogs", f))
    }
}

fn failed(call: &'static str, failure: Failure) -> RunError {
    match failure {
        Failure::Final(status) => RunError::Refused { call, status },
        Failure::GaveUp { status, tries } => RunError::Unreachable {
            call,
            tries,
            status,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A controller that is down (connection refused) is retried, not a final refusal.
    #[tokio::test]
    async fn refused_connections_are_retried_until_the_budget() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let policy = RetryPolicy {
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
            budget: Duration::from_millis(200),
        };
        let api = Api::new(&format!("http://127.0.0.1:{port}"), policy).unwrap();
        match api.next_task().await {
            Err(RunError::Unreachable {
                call,
                tries,
                status,
            }) => {
                assert_eq!(call, "NextTask");
                assert!(tries >= 3, "{tries} tries, last {status}");
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
        assert!(matches!(
            Api::new("not a url", policy),
            Err(RunError::Endpoint { .. })
        ));
    }
}
