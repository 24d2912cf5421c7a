//! A Redfish service built from recorded documents (tests/fixtures/recorded_bmc.json,
//! written after the DMTF schemas), served by the test itself for what
//! sushy-tools does not have: a SessionService (basic auth is refused here),
//! ActionInfo with a restrictive ResetType list, Once vs Continuous boot
//! overrides, Secure Boot, and manager-hosted virtual media. Requests are
//! validated against the published AllowableValues and logged.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub const SYSTEM: &str = "/redfish/v1/Systems/437XR1138R2";
pub const USER: &str = "operator";
pub const PASSWORD: &str = "rec0rded-pass";

/// One request as seen by the server.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    /// "token", "basic" or "none".
    pub auth: &'static str,
    pub body: Value,
}

#[derive(Default)]
pub struct RecState {
    docs: HashMap<String, Value>,
    sessions: HashMap<String, String>, // token -> session id
    next_session: u32,
    pub log: Vec<Logged>,
}

impl RecState {
    pub fn doc(&self, path: &str) -> Value {
        self.docs[path].clone()
    }
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }
    pub fn expire_sessions(&mut self) {
        self.sessions.clear();
    }
}

pub struct Recorded {
    pub port: u16,
    pub state: Arc<Mutex<RecState>>,
    task: JoinHandle<()>,
}

impl Drop for Recorded {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorded {
    pub async fn start() -> Recorded {
        let all: Value =
            serde_json::from_str(include_str!("../fixtures/recorded_bmc.json")).unwrap();
        let docs = all
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with('/'))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let state = Arc::new(Mutex::new(RecState {
            docs,
            ..RecState::default()
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Recorded { port, state, task }
    }

    pub fn address(&self) -> String {
        format!("redfish+http://127.0.0.1:{}{SYSTEM}", self.port)
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }
}

fn reply(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(if body.is_null() {
            String::new()
        } else {
            body.to_string()
        }))
        .unwrap()
}

fn redfish_error(status: StatusCode, id: &str, msg: &str) -> Response<Body> {
    reply(
        status,
        json!({"error": {"code": "Base.1.0.GeneralError", "message": "A general error has occurred. See ExtendedInfo for more information.",
            "@Message.ExtendedInfo": [{"@odata.type": "#Message.v1_1_1.Message", "MessageId": id, "Message": msg, "Severity": "Warning"}]}}),
    )
}

fn allowed(doc: &Value, prop: &str, value: &Value) -> bool {
    doc.get(format!("{prop}@Redfish.AllowableValues"))
        .and_then(Value::as_array)
        .map(|a| a.contains(value))
        .unwrap_or(true)
}

async fn handle(State(state): State<Arc<Mutex<RecState>>>, req: Request) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, 1 << 20).await.unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let token = parts
        .headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let auth = if token.is_some() {
        "token"
    } else if parts.headers.contains_key("authorization") {
        "basic"
    } else {
        "none"
    };
    let mut st = state.lock().unwrap();
    let mut logged_body = body.clone();
    if let Some(o) = logged_body.as_object_mut()
        && o.contains_key("Password")
    {
        o.insert("Password".into(), json!("<present>"));
    }
    st.log.push(Logged {
        method: method.to_string(),
        path: path.clone(),
        auth,
        body: logged_body,
    });

    // Public: service root and login.
    if method == Method::GET && (path == "/redfish/v1/" || path == "/redfish/v1") {
        return reply(StatusCode::OK, st.doc("/redfish/v1/"));
    }
    if method == Method::POST && path == "/redfish/v1/SessionService/Sessions" {
        if body.get("UserName") != Some(&json!(USER))
            || body.get("Password") != Some(&json!(PASSWORD))
        {
            return redfish_error(
                StatusCode::UNAUTHORIZED,
                "Base.1.8.NoValidSession",
                "Invalid credentials.",
            );
        }
        st.next_session += 1;
        let id = st.next_session.to_string();
        let tok = format!("token-{id}-{}", std::process::id());
        st.sessions.insert(tok.clone(), id.clone());
        let loc = format!("/redfish/v1/SessionService/Sessions/{id}");
        return Response::builder()
            .status(StatusCode::CREATED)
            .header("content-type", "application/json")
            .header("X-Auth-Token", tok)
            .header("Location", &loc)
            .body(Body::from(
                json!({"@odata.type": "#Session.v1_6_0.Session", "@odata.id": loc, "Id": id, "Name": "User Session", "UserName": USER}).to_string(),
            ))
            .unwrap();
    }
    // Everything else needs a valid session; basic auth is disabled on this BMC.
    let Some(session_id) = token.as_ref().and_then(|t| st.sessions.get(t)).cloned() else {
        return redfish_error(
            StatusCode::UNAUTHORIZED,
            "Base.1.8.NoValidSession",
            "There is no valid session established with the implementation.",
        );
    };
    if method == Method::DELETE {
        if path == format!("/redfish/v1/SessionService/Sessions/{session_id}") {
            let t = token.unwrap();
            st.sessions.remove(&t);
            return reply(StatusCode::NO_CONTENT, Value::Null);
        }
        return redfish_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Base.1.8.OperationNotAllowed",
            "not allowed",
        );
    }
    if method == Method::GET {
        return match st.docs.get(&path) {
            Some(d) => reply(StatusCode::OK, d.clone()),
            None => redfish_error(
                StatusCode::NOT_FOUND,
                "Base.1.8.ResourceMissingAtURI",
                "not found",
            ),
        };
    }
    let reset = format!("{SYSTEM}/Actions/ComputerSystem.Reset");
    let cd = "/redfish/v1/Managers/BMC/VirtualMedia/CD1".to_string();
    match (method.as_str(), path.as_str()) {
        ("POST", p) if p == reset => {
            let info = st.doc(&format!("{SYSTEM}/ResetActionInfo"));
            let allowed_types = info["Parameters"][0]["AllowableValues"]
                .as_array()
                .unwrap()
                .clone();
            let rt = body.get("ResetType").cloned().unwrap_or(Value::Null);
            if !allowed_types.contains(&rt) {
                return redfish_error(
                    StatusCode::BAD_REQUEST,
                    "Base.1.8.ActionParameterValueNotInList",
                    &format!(
                        "The value {rt} for the parameter ResetType is not in the list of acceptable values."
                    ),
                );
            }
            let sys = st.docs.get_mut(SYSTEM).unwrap();
            let new = match rt.as_str().unwrap() {
                "ForceOff" => "Off",
                _ => "On",
            };
            sys["PowerState"] = json!(new);
            reply(StatusCode::NO_CONTENT, Value::Null)
        }
        ("PATCH", p) if p == SYSTEM => {
            let sys = st.docs.get_mut(SYSTEM).unwrap();
            let Some(boot) = body.get("Boot").and_then(Value::as_object) else {
                return redfish_error(
                    StatusCode::BAD_REQUEST,
                    "Base.1.8.PropertyUnknown",
                    "only Boot may be patched",
                );
            };
            for (k, v) in boot {
                if sys["Boot"].get(k).is_none() || !allowed(&sys["Boot"], k, v) {
                    return redfish_error(
                        StatusCode::BAD_REQUEST,
                        "Base.1.8.PropertyValueNotInList",
                        &format!(
                            "The value {v} for the property {k} is not in the list of acceptable values."
                        ),
                    );
                }
            }
            for (k, v) in boot {
                sys["Boot"][k] = v.clone();
            }
            reply(StatusCode::NO_CONTENT, Value::Null)
        }
        ("PATCH", p) if p == format!("{SYSTEM}/SecureBoot") => {
            let sb = st.docs.get_mut(p).unwrap();
            if let Some(v) = body.get("SecureBootEnable").and_then(Value::as_bool) {
                sb["SecureBootEnable"] = json!(v);
            }
            reply(StatusCode::NO_CONTENT, Value::Null)
        }
        ("POST", p) if p == format!("{cd}/Actions/VirtualMedia.InsertMedia") => {
            let m = st.docs.get_mut(&cd).unwrap();
            if m["Inserted"] == json!(true) {
                return redfish_error(
                    StatusCode::CONFLICT,
                    "Base.1.8.ResourceInUse",
                    "media already inserted",
                );
            }
            m["Image"] = body["Image"].clone();
            m["Inserted"] = json!(true);
            m["ConnectedVia"] = json!("URI");
            reply(StatusCode::NO_CONTENT, Value::Null)
        }
        ("POST", p) if p == format!("{cd}/Actions/VirtualMedia.EjectMedia") => {
            let m = st.docs.get_mut(&cd).unwrap();
            m["Image"] = Value::Null;
            m["Inserted"] = json!(false);
            m["ConnectedVia"] = json!("NotConnected");
            reply(StatusCode::NO_CONTENT, Value::Null)
        }
        _ => redfish_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Base.1.8.OperationNotAllowed",
            "not allowed",
        ),
    }
}
