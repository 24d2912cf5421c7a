//! `kubectl groundwork`: read a site at a glance and ask the controller for power changes.
//!
//! The plugin only ever writes intent (`spec.online`, the `groundwork.dev/reboot` annotation)
//! with the field manager `kubectl-groundwork`; the controller does the BMC work, so nothing
//! here bypasses it.

mod public;
mod render;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use crds::{BorderRouter, Rack, Server, UpstreamLink};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, Config};

use crate::public::{Inputs, Public};

#[derive(Parser)]
#[command(
    name = "kubectl-groundwork",
    version,
    about = "Groundwork sites from the terminal: status, rack elevations, power and reboot requests"
)]
struct Cli {
    /// Namespace (site); defaults to the kubeconfig context's namespace.
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// Path to a kubeconfig file; defaults to $KUBECONFIG, then ~/.kube/config, then in-cluster.
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Racks, servers by state, servers, upstream links (with BGP session state) and the public
    /// (LoadBalancer Service) addresses with the servers carrying them, of a site.
    Status,
    /// Elevation of one rack, top U first, with the public addresses each server carries, power
    /// declared against budget and uplinks.
    Rack {
        /// Name of the Rack.
        name: String,
    },
    /// Ask for a server to be powered on or off (patches spec.online; the controller acts).
    Power {
        /// Desired power state.
        state: PowerArg,
        /// Name of the Server.
        server: String,
    },
    /// Ask for one reboot (sets the groundwork.dev/reboot annotation to a fresh request id).
    Reboot {
        /// Name of the Server.
        server: String,
    },
    /// The host agent's log lines of a server (inspection, imaging, cleaning), from the
    /// controller: through the API server's proxy to its Service, or from --controller-url.
    Logs {
        /// Name of the Server.
        server: String,
        /// Namespace of the controller's Service.
        #[arg(long, default_value = "groundwork-system")]
        controller_namespace: String,
        /// Name of the controller's Service (its `metrics` port serves the logs).
        #[arg(long, default_value = "groundwork")]
        controller_service: String,
        /// Ask the controller directly at this http:// URL instead (e.g. the local lab's
        /// `http://127.0.0.1:8080`).
        #[arg(long)]
        controller_url: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum PowerArg {
    On,
    Off,
}

async fn client(kubeconfig: Option<&PathBuf>) -> Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None => Config::infer().await.context("no usable kubeconfig")?,
    };
    Ok(Client::try_from(config)?)
}

async fn run(cli: Cli) -> Result<String> {
    let client = client(cli.kubeconfig.as_ref()).await?;
    let ns = cli
        .namespace
        .unwrap_or_else(|| client.default_namespace().to_string());
    let racks: Api<Rack> = Api::namespaced(client.clone(), &ns);
    let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
    let links: Api<UpstreamLink> = Api::namespaced(client.clone(), &ns);
    let lp = ListParams::default();
    let pp = PatchParams::apply(crds::field_managers::KUBECTL);
    match cli.command {
        Command::Status => {
            let racks = racks.list(&lp).await.context("listing racks")?.items;
            let servers = servers.list(&lp).await.context("listing servers")?.items;
            let links = links
                .list(&lp)
                .await
                .context("listing upstreamlinks")?
                .items;
            let public = public(&client, &ns, &servers).await;
            Ok(render::render_status(
                &ns, &racks, &servers, &links, &public,
            ))
        }
        Command::Rack { name } => {
            let rack = racks
                .get(&name)
                .await
                .with_context(|| format!("rack {name} in namespace {ns}"))?;
            let servers = servers.list(&lp).await.context("listing servers")?.items;
            let links = links
                .list(&lp)
                .await
                .context("listing upstreamlinks")?
                .items;
            let public = public(&client, &ns, &servers).await;
            Ok(render::render_rack(&rack, &servers, &links, &public))
        }
        Command::Power { state, server } => {
            let online = matches!(state, PowerArg::On);
            servers
                .patch(
                    &server,
                    &PatchParams {
                        field_manager: pp.field_manager,
                        ..Default::default()
                    },
                    &Patch::Merge(render::power_patch(online)),
                )
                .await
                .with_context(|| format!("server {server} in namespace {ns}"))?;
            Ok(format!(
                "server/{server}: spec.online={online}; the controller will power it {}\n",
                if online { "on" } else { "off" }
            ))
        }
        Command::Logs {
            server,
            controller_namespace,
            controller_service,
            controller_url,
        } => {
            let path = format!("/servers/{ns}/{server}/logs");
            match controller_url {
                Some(url) => http_get(&url, &path).await,
                None => {
                    let proxied = format!(
                        "/api/v1/namespaces/{controller_namespace}/services/{controller_service}:metrics/proxy{path}"
                    );
                    let request = http::Request::get(&proxied)
                        .body(Vec::new())
                        .context("building the proxy request")?;
                    client
                        .request_text(request)
                        .await
                        .with_context(|| format!("agent logs of {ns}/{server} through {proxied}"))
                }
            }
        }
        Command::Reboot { server } => {
            let id = render::reboot_request_id(std::time::SystemTime::now());
            servers
                .patch(
                    &server,
                    &PatchParams {
                        field_manager: pp.field_manager,
                        ..Default::default()
                    },
                    &Patch::Merge(render::reboot_patch(&id)),
                )
                .await
                .with_context(|| format!("server {server} in namespace {ns}"))?;
            Ok(format!(
                "server/{server}: reboot requested ({}={id}); the controller reboots it once\n",
                crds::annotations::REBOOT
            ))
        }
    }
}

/// Reading one kind for the public addresses failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot list {what}: {reason}")]
struct ReadError {
    /// The kind and scope, e.g. `services in all namespaces`.
    what: String,
    /// The API server's message (e.g. RBAC's `services is forbidden: ...`), or the client's.
    reason: String,
}

/// Lists every `K` of `api`, saying which (`what`) on failure.
async fn list_all<K>(api: Api<K>, what: &str) -> Result<Vec<K>, ReadError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(|e| ReadError {
            what: what.to_string(),
            reason: match e {
                kube::Error::Api(status) => status.message,
                other => other.to_string(),
            },
        })
}

/// The site's BorderRouters and, when it has any, every Service, EndpointSlice and Node.
async fn public_inputs(client: &Client, ns: &str) -> Result<Inputs, ReadError> {
    let routers = list_all(
        Api::<BorderRouter>::namespaced(client.clone(), ns),
        &format!("borderrouters in namespace {ns}"),
    )
    .await?;
    if routers.is_empty() {
        return Ok(Inputs::default());
    }
    Ok(Inputs {
        routers,
        services: list_all(
            Api::<Service>::all(client.clone()),
            "services in all namespaces",
        )
        .await?,
        slices: list_all(
            Api::<EndpointSlice>::all(client.clone()),
            "endpointslices in all namespaces",
        )
        .await?,
        nodes: list_all(Api::<Node>::all(client.clone()), "nodes").await?,
    })
}

/// The public addresses of the site, or — when reading what they derive from fails (RBAC,
/// for instance) — why not, so the rest of the view is still shown.
async fn public(client: &Client, ns: &str, servers: &[Server]) -> Public {
    match public_inputs(client, ns).await {
        Ok(inputs) => Public::Shown(public::addresses(ns, servers, &inputs)),
        Err(e) => Public::Unavailable(e.to_string()),
    }
}

/// A plain HTTP/1.0 GET of `path` at an `http://host:port` base URL; the body on 200.
async fn http_get(base: &str, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base
        .strip_prefix("http://")
        .context("--controller-url must start with http://")?
        .trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .with_context(|| format!("connecting to {host}"))?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await?;
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .context("malformed HTTP reply")?;
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    anyhow::ensure!(
        status == "200",
        "{host}{path}: HTTP {status}: {}",
        body.trim()
    );
    Ok(body.to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(out) => {
            print!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
