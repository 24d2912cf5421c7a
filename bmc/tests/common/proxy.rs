//! A fault-injecting HTTP proxy placed *in front of* a real sushy-tools:
//! injects 500s, hangs or slows requests, and measures how many requests are
//! in flight at once (to prove per-endpoint serialization).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, Response, StatusCode};
use tokio::task::JoinHandle;

/// Knobs and counters shared with the test.
#[derive(Default)]
pub struct ProxyState {
    upstream: String,
    /// Answer the next N requests with a 500 (without forwarding them).
    pub fail_next: AtomicU32,
    /// Accept requests and never answer.
    pub hang: AtomicBool,
    /// Extra delay before forwarding, in milliseconds.
    pub delay_ms: AtomicU64,
    /// Requests received.
    pub requests: AtomicU32,
    /// 500s injected.
    pub injected: AtomicU32,
    in_flight: AtomicU32,
    /// Highest number of requests in flight at once.
    pub max_in_flight: AtomicU32,
}

impl ProxyState {
    pub fn reset_counters(&self) {
        self.requests.store(0, Ordering::SeqCst);
        self.injected.store(0, Ordering::SeqCst);
        self.max_in_flight.store(0, Ordering::SeqCst);
    }
}

pub struct Proxy {
    pub port: u16,
    pub state: Arc<ProxyState>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Start a proxy to `upstream` (e.g. `http://127.0.0.1:8000`) on a free port.
    pub async fn start(upstream: &str) -> Proxy {
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            ..ProxyState::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy { port, state, task }
    }

    /// Rewrite a sushy address to go through this proxy.
    pub fn address_for(&self, sushy_address: &str, sushy_port: u16) -> String {
        sushy_address.replace(&format!(":{sushy_port}/"), &format!(":{}/", self.port))
    }
}

struct InFlight<'a>(&'a ProxyState);

impl<'a> InFlight<'a> {
    fn enter(s: &'a ProxyState) -> Self {
        let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        s.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(s)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(State(state): State<Arc<ProxyState>>, req: Request) -> Response<Body> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight::enter(&state);
    if state.hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let injected = state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if injected {
        state.injected.fetch_add(1, Ordering::SeqCst);
        return Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"error":{"code":"Base.1.0.InternalError","message":"injected by test proxy"}}"#,
            ))
            .unwrap();
    }
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, 1 << 20).await.unwrap();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let client = super::http_client()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut fwd = client.request(parts.method.clone(), format!("{}{path}", state.upstream));
    for (k, v) in parts.headers.iter() {
        if k != "host" && k != "content-length" {
            fwd = fwd.header(k.as_str(), v.as_bytes());
        }
    }
    let resp = match fwd.body(body.to_vec()).send().await {
        Ok(r) => r,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(e.to_string()))
                .unwrap();
        }
    };
    let mut out = Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers().iter() {
        let name = k.as_str();
        if !matches!(name, "transfer-encoding" | "connection" | "content-length") {
            out = out.header(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                v.as_bytes(),
            );
        }
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    out.body(Body::from(bytes)).unwrap()
}
