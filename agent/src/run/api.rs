//! The agent API client: a lazily (re)connecting channel over TLS to the pinned CA, the bearer
//! credential on every call after Register, and retries on transient failures.

use std::time::Duration;

use proto::agent_v1::agent_client::AgentClient;
use proto::agent_v1::{
    LogBatch, NextTaskRequest, Progress, RegisterRequest, RegisterResponse, Task, TaskResult,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use super::RunError;
use super::retry::{Failure, RetryPolicy, retry};
use super::tls::Connector;
use crate::cmdline::BootParams;
use crate::image::fetch::chain;

/// Deadline of a NextTask long poll (the controller answers Wait well before).
const NEXT_TASK_TIMEOUT: Duration = Duration::from_secs(120);
/// Deadline of every other call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline of a progress report: progress is a liveness signal, never worth waiting for.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(5);
/// TCP keepalive of the connection.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// A channel to the agent API of `params` that connects on first use and reconnects after
/// failures. With a CA pin (`groundwork.ca`), the CA certificate is fetched from the HTTP boot
/// service first (retried within `policy`) and must match it; the channel then speaks TLS
/// trusting that CA alone. Without a pin, only an `http://` URL is accepted (development).
pub async fn channel(params: &BootParams, policy: RetryPolicy) -> Result<Channel, RunError> {
    let url = &params.agent;
    let invalid = |source| RunError::Endpoint {
        url: url.clone(),
        source,
    };
    let endpoint = |uri: &str| {
        Endpoint::from_shared(uri.to_string()).map(|e| {
            e.connect_timeout(Duration::from_secs(5))
                .tcp_keepalive(Some(TCP_KEEPALIVE))
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(10))
        })
    };
    if params.ca.is_empty() {
        if !url.starts_with("http://") {
            return Err(RunError::CAPinMissing { url: url.clone() });
        }
        return Ok(endpoint(url).map_err(invalid)?.connect_lazy());
    }
    let origin = endpoint(url).map_err(invalid)?.uri().clone();
    let ca = fetch_ca(params, policy).await?;
    // tonic dials plain `http://` and the connector adds TLS; requests still name the origin.
    let authority = origin
        .authority()
        .map(ToString::to_string)
        .unwrap_or_default();
    let dial = endpoint(&format!("http://{authority}")).map_err(invalid)?;
    Ok(dial
        .origin(origin)
        .connect_with_connector_lazy(Connector::new(ca, TCP_KEEPALIVE)?))
}

/// The CA certificate served at `<groundwork.url>/boot/ca.crt`, if it is the pinned one.
async fn fetch_ca(
    params: &BootParams,
    policy: RetryPolicy,
) -> Result<CertificateDer<'static>, RunError> {
    let http = crate::image::default_client().map_err(|e| RunError::TlsSetup(e.to_string()))?;
    let url = format!("{}/boot/ca.crt", params.url.trim_end_matches('/'));
    let (http, target) = (&http, &url);
    let body = retry(&policy, "FetchCA", move || async move {
        let response = http
            .get(target)
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|e| Status::unavailable(format!("{target}: {}", chain(&e))))?;
        match response.status() {
            reqwest::StatusCode::NOT_FOUND => Err(Status::not_found(format!("{target}: HTTP 404"))),
            s if !s.is_success() => Err(Status::unavailable(format!("{target}: HTTP {s}"))),
            _ => response
                .bytes()
                .await
                .map_err(|e| Status::unavailable(format!("{target}: {}", chain(&e)))),
        }
    })
    .await
    .map_err(|f| failed("FetchCA", f))?;
    let mismatch = |served| RunError::CAFingerprintMismatch {
        url: url.clone(),
        pinned: params.ca.clone(),
        served,
    };
    match CertificateDer::from_pem_slice(&body) {
        Ok(ca) if proto::ca_pin(&ca).eq_ignore_ascii_case(&params.ca) => Ok(ca),
        Ok(ca) => Err(mismatch(proto::ca_pin(&ca))),
        Err(e) => Err(mismatch(format!("no PEM certificate ({e})"))),
    }
}

/// A handle on the agent API; clones share the connection.
#[derive(Debug, Clone)]
pub struct Api {
    client: AgentClient<Channel>,
    bearer: Option<MetadataValue<Ascii>>,
    policy: RetryPolicy,
}

impl Api {
    /// A client for the agent API of `params` (see [`channel`]).
    pub async fn connect(params: &BootParams, policy: RetryPolicy) -> Result<Self, RunError> {
        Ok(Self {
            client: AgentClient::new(channel(params, policy).await?),
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
        let params = |agent: &str| BootParams {
            agent: agent.to_string(),
            ..Default::default()
        };
        let api = Api::connect(&params(&format!("http://127.0.0.1:{port}")), policy)
            .await
            .unwrap();
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
            Api::connect(&params("http://not a url"), policy).await,
            Err(RunError::Endpoint { .. })
        ));
        // TLS needs the pin.
        assert!(matches!(
            Api::connect(&params(&format!("https://127.0.0.1:{port}")), policy).await,
            Err(RunError::CAPinMissing { .. })
        ));
    }
}
