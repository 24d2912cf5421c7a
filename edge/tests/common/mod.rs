//! What the edge end-to-end tests share: CRDs installed, the daemon run in-process, its
//! metrics scraped over HTTP, conditions looked up.

// Each test binary uses a part of these.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use e2e::eventually;
use edge::metrics::Metrics;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{self, Lab};

/// An API object from its JSON.
pub fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// Installs the current CRDs (server-side apply) and waits until they are served.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds::crds() {
        let name = crd.metadata.name.clone().unwrap();
        api.patch(
            &name,
            &PatchParams::apply("edge-e2e").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
        eventually(
            Duration::from_secs(30),
            &format!("CRD {name} established"),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let c = api.get(&name).await.ok()?;
                    c.status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(())
                }
            },
        )
        .await;
    }
}

/// Serves `metrics` on 127.0.0.1:0 (as `--metrics-addr` does) and returns the bound address.
pub async fn serve_metrics(metrics: Arc<Metrics>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(edge::metrics::serve(
        listener,
        metrics,
        std::future::pending(),
    ));
    addr
}

/// GET /metrics; the response body.
pub async fn scrape(addr: SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "GET /metrics: {out}");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The value of the series `name{labels}` in a scrape.
pub fn series(body: &str, name: &str, labels: &str) -> Option<f64> {
    let key = format!("{name}{{{labels}}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
}

/// Runs the daemon in-process for router `edge1` in `ns`; send on the returned sender to stop it.
pub fn start_daemon(
    client: &Client,
    ns: &str,
    lab: &Lab,
    bird: &support::Bird,
    metrics: Arc<Metrics>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), edge::error::Error>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let opts = edge::run::Options {
        router: "edge1".into(),
        namespace: ns.to_string(),
        service_namespace: Some(ns.to_string()),
        config_dir: bird.dir.join("conf"),
        bird_socket: bird.socket.clone(),
        bird_binary: support::binary("bird"),
        bird_log_file: Some(lab.dir.join("bird-daemon.log").display().to_string()),
        poll_interval: Duration::from_millis(500),
        metrics,
    };
    let task = tokio::spawn(edge::run::run(client.clone(), opts, async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

pub async fn stop_daemon(
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), edge::error::Error>>,
) {
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("daemon did not stop")
        .unwrap()
        .unwrap();
}

pub type Conditions = [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition];

pub fn condition<'a>(
    conds: &'a Conditions,
    t: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conds.iter().find(|c| c.type_ == t)
}

/// Waits until an Event with `reason` regarding the object named `name` exists in `ns`.
pub async fn event_seen(client: &Client, ns: &str, reason: &str, name: &str) {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    eventually(
        Duration::from_secs(10),
        &format!("Event {reason} on {name}"),
        || {
            let events = events.clone();
            async move {
                let list = events.list(&Default::default()).await.ok()?;
                list.items
                    .iter()
                    .any(|e| {
                        e.reason.as_deref() == Some(reason)
                            && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    })
                    .then_some(())
            }
        },
    )
    .await;
}
