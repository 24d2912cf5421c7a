//! HTTP transport for one Redfish service: authentication (basic or session),
//! redirects that keep credentials on the same origin only, per-request
//! timeouts, and bounded retries with exponential backoff.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderMap, IF_MATCH, LOCATION};
use reqwest::{Client, Method, StatusCode, Url};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::{BmcError, Credentials, DriverConfig, TlsOptions};

use super::tls;

/// At most this many redirects are followed for one request.
const MAX_REDIRECTS: usize = 5;
/// Session token header (DSP0266).
pub(crate) const X_AUTH_TOKEN: &str = "X-Auth-Token";

/// One HTTP answer, after redirects.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Status of the final answer.
    pub status: StatusCode,
    /// URL of the final answer (after redirects).
    pub url: Url,
    /// Response headers.
    pub headers: HeaderMap,
    /// Response body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (`Null` when empty, an error when not JSON).
    pub fn json(&self) -> Result<Value, BmcError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            BmcError::Protocol(format!("{}: response is not JSON: {e}", self.url.path()))
        })
    }
}

/// How requests authenticate.
#[derive(Debug, Clone)]
enum Auth {
    /// HTTP basic authentication on every request.
    Basic,
    /// Redfish session: POST credentials once, then send `X-Auth-Token`.
    Session {
        sessions_url: Url,
        token: Option<String>,
        location: Option<Url>,
    },
}

/// What a session login returned.
#[derive(Debug)]
struct Login {
    token: Option<String>,
    location: Option<Url>,
}

/// How to authenticate after a login attempt.
#[derive(Debug, PartialEq, Eq)]
enum AuthStep {
    /// Use the session token (and delete the session at `Url` when done).
    UseToken(String, Option<Url>),
    /// The BMC created a session but sent no `X-Auth-Token`: delete that
    /// session (it would otherwise count against the BMC's session limit
    /// until it expires) and use basic auth.
    DeleteThenBasic(Url),
    /// Sessions are unusable here (no token and no session URL, the
    /// SessionService refused the POST with 404/405/501, or the session limit
    /// is reached with a 503): use basic auth, as sushy's `auto` mode does.
    Basic(String),
}

/// The authentication step after a login. Wrong credentials and transport
/// failures stay errors: only a service that cannot give us a session falls
/// back to basic auth.
fn after_login(outcome: Result<Login, BmcError>) -> Result<AuthStep, BmcError> {
    match outcome {
        Ok(Login {
            token: Some(t),
            location,
        }) => Ok(AuthStep::UseToken(t, location)),
        Ok(Login {
            token: None,
            location: Some(l),
        }) => Ok(AuthStep::DeleteThenBasic(l)),
        Ok(Login {
            token: None,
            location: None,
        }) => Ok(AuthStep::Basic("session created without token".into())),
        Err(BmcError::NotSupported(m)) => Ok(AuthStep::Basic(m)),
        Err(BmcError::Protocol(m))
            if ["HTTP 404", "HTTP 405", "HTTP 503"]
                .iter()
                .any(|code| m.contains(code)) =>
        {
            Ok(AuthStep::Basic(m))
        }
        Err(e) => Err(e),
    }
}

/// Which credentials one request carries.
#[derive(Debug, Clone, Copy)]
enum Cred<'a> {
    /// None (service root, session login).
    Anonymous,
    /// HTTP basic authentication.
    Basic,
    /// A session token.
    Token(&'a str),
}

/// Whether a failed attempt may be retried.
enum SendError {
    Retryable(BmcError),
    Fatal(BmcError),
}

/// What makes the HTTP clients of two drivers interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    tls: TlsOptions,
    request_timeout: Duration,
    connect_timeout: Duration,
}

type Clients = std::sync::Mutex<HashMap<ClientKey, Weak<Client>>>;

static CLIENTS: LazyLock<Clients> = LazyLock::new(Default::default);

/// How long a connection to a BMC stays open unused. A conversation's requests
/// follow each other within milliseconds; a longer wait only keeps a socket
/// and its buffers per BMC alive between reconciles.
const POOL_IDLE: Duration = Duration::from_secs(5);

/// The HTTP client for drivers with these TLS options and timeouts, shared by
/// every driver of the process that has the same ones: one rustls
/// configuration (the system root store is parsed once, not once per BMC,
/// which cost ~100 KiB per driver) and one connection pool (connections stay
/// per BMC origin). Freed with the last driver that uses it.
fn shared_client(tls_opts: &TlsOptions, config: &DriverConfig) -> Result<Arc<Client>, BmcError> {
    let key = ClientKey {
        tls: tls_opts.clone(),
        request_timeout: config.request_timeout,
        connect_timeout: config.connect_timeout,
    };
    // A poisoned registry only means another thread panicked while holding it.
    let mut clients = CLIENTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(client) = clients.get(&key).and_then(Weak::upgrade) {
        return Ok(client);
    }
    clients.retain(|_, c| c.strong_count() > 0);
    let builder = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.request_timeout)
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(1)
        .user_agent(concat!("groundwork-bmc/", env!("CARGO_PKG_VERSION")));
    // Always hand reqwest our own rustls configuration (ring provider): it
    // has no built-in crypto provider in this build, and plain-HTTP
    // clients would otherwise panic while building.
    let client = builder
        .tls_backend_preconfigured(tls::client_config(tls_opts)?)
        .build()
        .map_err(|e| BmcError::Protocol(format!("HTTP client setup: {}", chain(&e))))?;
    let client = Arc::new(client);
    clients.insert(key, Arc::downgrade(&client));
    Ok(client)
}

/// The HTTP side of a Redfish driver.
pub(crate) struct Transport {
    client: Arc<Client>,
    base: Url,
    creds: Credentials,
    config: DriverConfig,
    auth: Mutex<Auth>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("base", &self.base.as_str())
            .field("creds", &self.creds)
            .finish_non_exhaustive()
    }
}

impl Drop for Transport {
    /// Close the session on the BMC when the driver goes away (a new Secret
    /// version replaces the driver; BMCs allow few sessions, e.g. iDRAC
    /// answers 503 RAC0218 "maximum number of user sessions" once they leak).
    /// The DELETE is sent from a task on the current Tokio runtime; without
    /// one the session is left to expire.
    fn drop(&mut self) {
        let Auth::Session {
            token: Some(token),
            location: Some(location),
            ..
        } = std::mem::replace(self.auth.get_mut(), Auth::Basic)
        else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(
                session = location.path(),
                "no runtime to close the Redfish session; it will expire"
            );
            return;
        };
        let client = Arc::clone(&self.client);
        runtime.spawn(async move {
            let path = location.path().to_string();
            match client
                .delete(location)
                .header(X_AUTH_TOKEN, token)
                .header("OData-Version", "4.0")
                .send()
                .await
            {
                Ok(r) => tracing::debug!(session = %path, status = r.status().as_u16(), "Redfish session closed on drop"),
                Err(e) => tracing::debug!(session = %path, error = %e, "could not close the Redfish session on drop"),
            }
        });
    }
}

impl Transport {
    /// A transport for the service at `base` (scheme, host and port).
    pub fn new(
        base: &str,
        creds: Credentials,
        tls_opts: &TlsOptions,
        config: DriverConfig,
    ) -> Result<Self, BmcError> {
        let base = Url::parse(base)
            .map_err(|e| BmcError::Protocol(format!("invalid Redfish base URL: {e}")))?;
        let client = shared_client(tls_opts, &config)?;
        Ok(Self {
            client,
            base,
            creds,
            config,
            auth: Mutex::new(Auth::Basic),
        })
    }

    /// Resolve an `@odata.id` or absolute URL against the service.
    pub fn url(&self, odata_id: &str) -> Result<Url, BmcError> {
        self.base
            .join(odata_id)
            .map_err(|e| BmcError::Protocol(format!("invalid resource link {odata_id:?}: {e}")))
    }

    /// Switch to session authentication; the session is created lazily.
    pub async fn use_sessions(&self, sessions_url: Url) {
        let mut auth = self.auth.lock().await;
        if !matches!(*auth, Auth::Session { .. }) {
            *auth = Auth::Session {
                sessions_url,
                token: None,
                location: None,
            };
        }
    }

    /// Use HTTP basic authentication.
    pub async fn use_basic(&self) {
        *self.auth.lock().await = Auth::Basic;
    }

    /// GET without any credentials (the service root is public).
    pub async fn get_anonymous(&self, url: &Url) -> Result<Reply, BmcError> {
        self.execute(Method::GET, url, None, false, None).await
    }

    /// GET with credentials.
    pub async fn get(&self, url: &Url) -> Result<Reply, BmcError> {
        self.execute(Method::GET, url, None, true, None).await
    }

    /// POST a JSON body with credentials.
    pub async fn post(&self, url: &Url, body: &Value) -> Result<Reply, BmcError> {
        self.execute(Method::POST, url, Some(body), true, None)
            .await
    }

    /// PATCH a JSON body with credentials, conditional on `if_match` when given.
    pub async fn patch(
        &self,
        url: &Url,
        body: &Value,
        if_match: Option<&str>,
    ) -> Result<Reply, BmcError> {
        self.execute(Method::PATCH, url, Some(body), true, if_match)
            .await
    }

    /// Close the Redfish session, if one is open. Basic auth: nothing to do.
    pub async fn logout(&self) -> Result<(), BmcError> {
        let mut auth = self.auth.lock().await;
        if let Auth::Session {
            token, location, ..
        } = &mut *auth
        {
            let (Some(tok), Some(loc)) = (token.take(), location.take()) else {
                return Ok(());
            };
            let reply = self
                .send_with_retries(Method::DELETE, &loc, None, Cred::Token(&tok), None)
                .await?;
            if !reply.status.is_success() && reply.status != StatusCode::NOT_FOUND {
                return Err(status_error("DELETE session", &reply));
            }
            tracing::debug!(url = %loc.path(), "Redfish session closed");
        }
        Ok(())
    }

    async fn execute(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        authenticated: bool,
        if_match: Option<&str>,
    ) -> Result<Reply, BmcError> {
        if !authenticated {
            return self
                .send_with_retries(method, url, body, Cred::Anonymous, if_match)
                .await;
        }
        // The lock is held only to read (or obtain) the token, not for the request: drivers of
        // the systems one service serves share this transport and talk to them in parallel.
        let mut relogged = false;
        let mut rejected = None;
        loop {
            let (token, fresh) = self.credential(rejected.take()).await?;
            relogged |= fresh;
            let cred = match token.as_deref() {
                Some(t) => Cred::Token(t),
                None => Cred::Basic,
            };
            let reply = self
                .send_with_retries(method.clone(), url, body, cred, if_match)
                .await?;
            if reply.status == StatusCode::UNAUTHORIZED && token.is_some() && !relogged {
                // The session expired or was deleted on the BMC: log in again once.
                tracing::debug!("Redfish session rejected, logging in again");
                rejected = token;
                continue;
            }
            return Ok(reply);
        }
    }

    /// The session token to send (`None`: basic auth) and whether it comes from a login just
    /// now. Logs in when there is no token; `rejected` is a token the BMC just refused, dropped
    /// unless another request already replaced it.
    async fn credential(
        &self,
        rejected: Option<String>,
    ) -> Result<(Option<String>, bool), BmcError> {
        let mut auth = self.auth.lock().await;
        let mut fresh = false;
        if let Auth::Session {
            sessions_url,
            token,
            location,
        } = &mut *auth
        {
            if rejected.is_some() && *token == rejected {
                *token = None;
                *location = None;
            }
            if token.is_none() {
                let outcome = self.login(sessions_url).await;
                match after_login(outcome)? {
                    AuthStep::UseToken(t, l) => {
                        *token = Some(t);
                        *location = l;
                        fresh = true;
                    }
                    AuthStep::DeleteThenBasic(l) => {
                        self.delete_tokenless_session(&l).await;
                        *auth = Auth::Basic;
                    }
                    AuthStep::Basic(why) => {
                        tracing::info!(reason = %why, "Redfish session login unusable, using basic auth");
                        *auth = Auth::Basic;
                    }
                }
            }
        }
        Ok(match &*auth {
            Auth::Session { token, .. } => (token.clone(), fresh),
            Auth::Basic => (None, false),
        })
    }

    /// POST the credentials to the SessionService.
    async fn login(&self, sessions_url: &Url) -> Result<Login, BmcError> {
        let body = serde_json::json!({
            "UserName": self.creds.username,
            "Password": self.creds.password,
        });
        let reply = self
            .send_with_retries(
                Method::POST,
                sessions_url,
                Some(&body),
                Cred::Anonymous,
                None,
            )
            .await?;
        if !reply.status.is_success() {
            return Err(status_error("create session", &reply));
        }
        let token = reply
            .headers
            .get(X_AUTH_TOKEN)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        let location = reply
            .headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| {
                reply.json().ok().and_then(|v| {
                    v.get("@odata.id")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
            })
            .and_then(|l| reply.url.join(&l).ok());
        tracing::debug!(session = ?location.as_ref().map(Url::path), token = token.is_some(), "Redfish session created");
        Ok(Login { token, location })
    }

    /// Delete a session created without a token (it cannot authenticate its
    /// own DELETE), with basic auth; best effort: a BMC that refuses leaves it
    /// to expire, and the driver goes on with basic auth either way.
    async fn delete_tokenless_session(&self, location: &Url) {
        match self
            .send_with_retries(Method::DELETE, location, None, Cred::Basic, None)
            .await
        {
            Ok(r) if r.status.is_success() || r.status == StatusCode::NOT_FOUND => {
                tracing::info!(
                    session = location.path(),
                    "session without token deleted; using basic auth"
                );
            }
            Ok(r) => tracing::warn!(
                session = location.path(),
                status = r.status.as_u16(),
                "could not delete a session created without token; it will expire on the BMC"
            ),
            Err(e) => tracing::warn!(
                session = location.path(),
                error = %e,
                "could not delete a session created without token; it will expire on the BMC"
            ),
        }
    }

    /// Send with bounded retries on connection errors and 5xx answers. A 5xx
    /// that outlives the retries is returned as a reply for the caller to map.
    async fn send_with_retries(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        cred: Cred<'_>,
        if_match: Option<&str>,
    ) -> Result<Reply, BmcError> {
        let mut attempt = 0u32;
        loop {
            let outcome = self
                .send_following_redirects(&method, url, body, cred, if_match)
                .await;
            let retry_reason = match &outcome {
                Ok(reply) if reply.status.is_server_error() => {
                    format!("HTTP {}", reply.status.as_u16())
                }
                Err(SendError::Retryable(e)) => e.to_string(),
                _ => String::new(),
            };
            if retry_reason.is_empty() || attempt >= self.config.retries {
                return match outcome {
                    Ok(reply) => Ok(reply),
                    Err(SendError::Retryable(e) | SendError::Fatal(e)) => Err(e),
                };
            }
            attempt += 1;
            let delay = self.config.backoff(attempt);
            tracing::warn!(
                %method, path = url.path(), attempt, ?delay, reason = %retry_reason,
                "retrying Redfish request"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn send_following_redirects(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        cred: Cred<'_>,
        if_match: Option<&str>,
    ) -> Result<Reply, SendError> {
        let mut method = method.clone();
        let mut body = body;
        let mut current = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            if !same_origin(&current, &self.base) {
                return Err(SendError::Fatal(BmcError::Protocol(format!(
                    "refusing to follow a redirect to another origin ({}://{})",
                    current.scheme(),
                    current.host_str().unwrap_or("?")
                ))));
            }
            let mut req = self
                .client
                .request(method.clone(), current.clone())
                .header(ACCEPT, "application/json")
                .header("OData-Version", "4.0");
            // Credentials are (re-)sent on every hop, redirects included; the
            // origin check above keeps them on the BMC's own origin.
            req = match cred {
                Cred::Anonymous => req,
                Cred::Basic => req.basic_auth(&self.creds.username, Some(&self.creds.password)),
                Cred::Token(t) => req.header(X_AUTH_TOKEN, t),
            };
            if let Some(b) = body {
                req = req.json(b);
            }
            if let Some(tag) = if_match {
                req = req.header(IF_MATCH, tag);
            }
            tracing::trace!(%method, path = current.path(), "Redfish request");
            let resp = req
                .send()
                .await
                .map_err(|e| classify(&e, &method, &current, &self.config))?;
            let status = resp.status();
            if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                let location = resp
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        SendError::Fatal(BmcError::Protocol(format!(
                            "{method} {}: redirect without Location",
                            current.path()
                        )))
                    })?;
                let next = current.join(location).map_err(|e| {
                    SendError::Fatal(BmcError::Protocol(format!("bad redirect Location: {e}")))
                })?;
                tracing::debug!(
                    from = current.path(),
                    to = next.path(),
                    status = status.as_u16(),
                    "following redirect"
                );
                if status == StatusCode::SEE_OTHER
                    || (matches!(status.as_u16(), 301 | 302) && method == Method::POST)
                {
                    method = Method::GET;
                    body = None;
                }
                current = next;
                continue;
            }
            let headers = resp.headers().clone();
            let final_url = resp.url().clone();
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| classify(&e, &method, &current, &self.config))?;
            return Ok(Reply {
                status,
                url: final_url,
                headers,
                body: bytes.to_vec(),
            });
        }
        Err(SendError::Fatal(BmcError::Protocol(format!(
            "{method} {}: more than {MAX_REDIRECTS} redirects",
            url.path()
        ))))
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The error and its causes, joined, without repeating identical texts.
pub(crate) fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

fn is_tls_error(err: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && inner.downcast_ref::<rustls::Error>().is_some()
        {
            return true;
        }
        cur = e.source();
    }
    // The connector may box the rustls error in a way that hides its type:
    // fall back to rustls' own wording.
    let text = chain(err).to_ascii_lowercase();
    [
        "invalid peer certificate",
        "certificate",
        "received fatal alert",
        "peer is incompatible",
        "tls handshake",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

fn classify(err: &reqwest::Error, method: &Method, url: &Url, config: &DriverConfig) -> SendError {
    let what = format!("{method} {}", url.path());
    let host = url.host_str().unwrap_or("?");
    if is_tls_error(err) {
        return SendError::Fatal(BmcError::Protocol(format!(
            "TLS handshake with {host} failed: {}",
            chain(err)
        )));
    }
    if err.is_timeout() {
        return SendError::Fatal(BmcError::Timeout(format!(
            "{what}: no answer from {host} within {:?}",
            config.request_timeout
        )));
    }
    let e = BmcError::Unreachable(format!("{what}: {}", chain(err)));
    // Connection setup failures never reached the BMC: safe to retry for any
    // method. A connection lost mid-request is only retried for reads.
    if err.is_connect() || *method == Method::GET {
        SendError::Retryable(e)
    } else {
        SendError::Fatal(e)
    }
}

/// The Redfish error message in a body (`error.message` plus the
/// `@Message.ExtendedInfo` messages), if any.
pub(crate) fn redfish_error_message(body: &Value) -> Option<String> {
    let err = body.get("error")?;
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = err.get("message").and_then(Value::as_str) {
        parts.push(m.to_string());
    }
    if let Some(infos) = err.get("@Message.ExtendedInfo").and_then(Value::as_array) {
        for info in infos {
            if let Some(m) = info.get("Message").and_then(Value::as_str)
                && !parts.iter().any(|p| p == m)
            {
                parts.push(m.to_string());
            }
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Map a non-success reply to a typed error.
pub(crate) fn status_error(what: &str, reply: &Reply) -> BmcError {
    let code = reply.status.as_u16();
    let detail = reply
        .json()
        .ok()
        .and_then(|v| redfish_error_message(&v))
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    let path = reply.url.path();
    let msg = format!("{what} ({path}): HTTP {code}{detail}");
    match code {
        401 | 403 => BmcError::AuthenticationFailed(msg),
        405 | 501 => BmcError::NotSupported(msg),
        _ => BmcError::Protocol(msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(code).unwrap(),
            url: Url::parse("http://bmc/redfish/v1/Systems/1").unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn maps_status_codes() {
        assert!(matches!(
            status_error("x", &reply(401, "")),
            BmcError::AuthenticationFailed(_)
        ));
        assert!(matches!(
            status_error("x", &reply(403, "")),
            BmcError::AuthenticationFailed(_)
        ));
        assert!(matches!(
            status_error("x", &reply(501, "")),
            BmcError::NotSupported(_)
        ));
        assert!(matches!(
            status_error("x", &reply(404, "")),
            BmcError::Protocol(_)
        ));
        assert!(matches!(
            status_error("x", &reply(500, "")),
            BmcError::Protocol(_)
        ));
    }

    #[test]
    fn extracts_redfish_error_messages() {
        let body = r#"{"error":{"code":"Base.1.0.GeneralError","message":"A general error has occurred.",
            "@Message.ExtendedInfo":[{"MessageId":"Base.1.8.ActionParameterValueNotInList",
            "Message":"The value 'Bogus' for the parameter ResetType is not in the list of acceptable values."}]}}"#;
        let e = status_error("reset", &reply(400, body)).to_string();
        assert!(e.contains("HTTP 400"), "{e}");
        assert!(e.contains("not in the list of acceptable values"), "{e}");
        assert!(e.contains("/redfish/v1/Systems/1"), "{e}");
    }

    #[test]
    fn origin_check() {
        let a = Url::parse("https://bmc:443/x").unwrap();
        let b = Url::parse("https://bmc/y").unwrap();
        let c = Url::parse("https://other/y").unwrap();
        let d = Url::parse("http://bmc/y").unwrap();
        assert!(same_origin(&a, &b));
        assert!(!same_origin(&a, &c));
        assert!(!same_origin(&a, &d));
    }

    #[test]
    fn login_outcomes() {
        let loc = Url::parse("http://bmc/redfish/v1/SessionService/Sessions/7").unwrap();
        assert_eq!(
            after_login(Ok(Login {
                token: Some("t".into()),
                location: Some(loc.clone())
            }))
            .unwrap(),
            AuthStep::UseToken("t".into(), Some(loc.clone()))
        );
        assert_eq!(
            after_login(Ok(Login {
                token: None,
                location: Some(loc.clone())
            }))
            .unwrap(),
            AuthStep::DeleteThenBasic(loc)
        );
        assert!(matches!(
            after_login(Ok(Login {
                token: None,
                location: None
            })),
            Ok(AuthStep::Basic(_))
        ));
        let refused = |code: u16| status_error("create session", &reply(code, ""));
        // No SessionService behind the link, login not allowed, session limit.
        for code in [404, 405, 501, 503] {
            assert!(
                matches!(after_login(Err(refused(code))), Ok(AuthStep::Basic(_))),
                "{code}"
            );
        }
        // Wrong credentials and transport failures stay errors.
        assert!(matches!(
            after_login(Err(refused(401))),
            Err(BmcError::AuthenticationFailed(_))
        ));
        assert!(matches!(
            after_login(Err(BmcError::Unreachable("x".into()))),
            Err(BmcError::Unreachable(_))
        ));
        assert!(matches!(
            after_login(Err(refused(400))),
            Err(BmcError::Protocol(_))
        ));
    }

    #[test]
    fn drivers_with_the_same_options_share_one_client() {
        let cfg = DriverConfig::default();
        let plain = TlsOptions::default();
        let a = shared_client(&plain, &cfg).unwrap();
        let b = shared_client(&plain, &cfg).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let insecure = TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        };
        let c = shared_client(&insecure, &cfg).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        let quick = DriverConfig {
            request_timeout: Duration::from_secs(1),
            ..DriverConfig::default()
        };
        assert!(!Arc::ptr_eq(&a, &shared_client(&plain, &quick).unwrap()));
    }
}
