//! Read stage: the owning Machine and its Cluster (GET), the bootstrap Secret (GET: its
//! `format` key), the site's Servers and Racks (caches), and the selection over them. Watches
//! on Machines, Secrets and Servers bring the GroundworkMachine back when any of them changes.

use std::collections::BTreeMap;

use crds::provider::{
    CAPI_CLUSTER_NAME, CAPI_PAUSED, CAPI_PEER_LABELS, GroundworkMachine, MACHINE_FINALIZER,
    PROVIDER_ID_PREFIX,
};
use crds::{Rack, Server};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::Selector;
use kube::{Resource, ResourceExt};

use super::decide::{Bootstrap, Facts, Owner};
use super::node;
use super::select::{self, Domains, NoFit, Request};
use crate::provider::capi::{self, Cluster, Machine};
use crate::provider::context::Context;

/// What was read, owned (decide borrows it through [`Read::view`]).
pub struct Read {
    /// The GroundworkMachine's namespace (the site).
    pub namespace: String,
    generation: Option<i64>,
    deleting: bool,
    has_finalizer: bool,
    provider_id: Option<String>,
    paused: bool,
    owner: Option<Owner>,
    claimed: Option<Server>,
    selection: Option<Result<Server, NoFit>>,
    bootstrap: Bootstrap,
    domain: Option<String>,
    cluster: Option<String>,
    site: Option<String>,
    join_token: Option<String>,
}

impl Read {
    /// What the workload cluster's Node of the claimed Server should carry, and the Cluster
    /// whose kubeconfig reaches it.
    pub fn node(&self) -> Option<(&str, node::Wanted)> {
        let server = self.claimed.as_ref()?;
        let name = server.name_any();
        Some((
            self.cluster.as_deref()?,
            node::Wanted {
                provider_id: format!("{PROVIDER_ID_PREFIX}{}/{name}", self.namespace),
                hostname: name,
                zone: self.domain.clone()?,
                region: self.site.clone(),
                join_token: self.join_token.clone(),
            },
        ))
    }

    /// The facts decide takes.
    pub fn view(&self) -> Facts<'_> {
        Facts {
            generation: self.generation,
            deleting: self.deleting,
            has_finalizer: self.has_finalizer,
            provider_id: self.provider_id.as_deref(),
            paused: self.paused,
            owner: self.owner.clone(),
            claimed: self.claimed.as_ref(),
            selection: self
                .selection
                .as_ref()
                .map(|r| r.as_ref().map_err(Clone::clone)),
            bootstrap: self.bootstrap.clone(),
            domain: self.domain.clone(),
            namespace: &self.namespace,
        }
    }
}

/// The failure domain of every Rack of `namespace`: its `spec.failureDomain`, else its name.
pub fn domains(racks: &[&Rack]) -> Domains {
    racks
        .iter()
        .map(|r| {
            let name = r.name_any();
            let domain = r
                .spec
                .failure_domain
                .clone()
                .unwrap_or_else(|| name.clone());
            (name, domain)
        })
        .collect::<BTreeMap<_, _>>()
}

/// How many Servers `gm`'s peers (the other GroundworkMachines of its MachineDeployment, else
/// of its MachineSet) have claimed, per failure domain.
fn peers(
    ctx: &Context,
    gm: &GroundworkMachine,
    servers: &[&Server],
    domains: &Domains,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    let Some((label, group)) = CAPI_PEER_LABELS
        .iter()
        .find_map(|l| gm.labels().get(*l).map(|v| (*l, v)))
    else {
        return counts;
    };
    let machines = ctx.machines.state();
    let uids: Vec<String> = machines
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter(|m| m.namespace() == gm.namespace() && m.uid() != gm.uid())
        .filter(|m| m.labels().get(label) == Some(group))
        .filter_map(|m| m.uid())
        .collect();
    for server in servers {
        let claimed = server.spec.consumer_ref.as_ref();
        if claimed.is_some_and(|c| uids.contains(&c.uid))
            && let Some(d) = select::domain_of(server, domains)
        {
            *counts.entry(d.to_string()).or_default() += 1;
        }
    }
    counts
}

/// Reads everything about `gm`.
pub async fn read(ctx: &Context, gm: &GroundworkMachine) -> Result<Read, kube::Error> {
    let namespace = gm.namespace().unwrap_or_default();
    let uid = gm.uid().unwrap_or_default();
    let machine = owner_machine(ctx, gm, &namespace).await?;
    let paused = gm.annotations().contains_key(CAPI_PAUSED)
        || cluster_paused(ctx, gm, machine.as_ref(), &namespace).await?;
    let racks = ctx.racks.state();
    let racks: Vec<&Rack> = racks
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter(|r| r.namespace().as_deref() == Some(namespace.as_str()))
        .collect();
    let domains = domains(&racks);
    let all = ctx.servers.state();
    let servers: Vec<&Server> = all
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter(|s| s.namespace().as_deref() == Some(namespace.as_str()))
        .collect();
    let claimed = servers
        .iter()
        .find(|s| select::claimed_by(s, &uid))
        .map(|s| (*s).clone());
    let owner = machine.as_ref().map(|m| Owner {
        failure_domain: m.spec.failure_domain.clone(),
        data_secret: m.spec.bootstrap.data_secret_name.clone(),
    });
    let selection = match (&claimed, &owner) {
        (None, Some(owner)) if gm.meta().deletion_timestamp.is_none() => {
            let selector: Option<Selector> = match &gm.spec.server_selector {
                Some(s) => match Selector::try_from(s.clone()) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        return Ok(invalid_selector(gm, namespace, paused, owner.clone(), &e));
                    }
                },
                None => None,
            };
            let peers = peers(ctx, gm, &servers, &domains);
            let request = Request {
                uid: &uid,
                failure_domain: owner.failure_domain.as_deref(),
                selector: selector.as_ref(),
                hardware: gm.spec.hardware.as_ref(),
                peers: &peers,
            };
            Some(select::select(&request, &servers, &domains).cloned())
        }
        _ => None,
    };
    let domain = claimed
        .as_ref()
        .and_then(|s| select::domain_of(s, &domains))
        .map(str::to_string);
    let site = claimed
        .as_ref()
        .and_then(|s| s.spec.rack_ref.as_ref())
        .and_then(|r| racks.iter().find(|k| k.name_any() == r.name))
        .map(|r| r.spec.location.site.clone());
    let cluster = cluster_name(gm, machine.as_ref());
    let (bootstrap, join_token) = match owner.as_ref().and_then(|o| o.data_secret.as_deref()) {
        None => (
            Bootstrap::Waiting("waiting for the Machine's bootstrap data Secret".into()),
            None,
        ),
        Some(name) => bootstrap(ctx, &namespace, name).await?,
    };
    Ok(Read {
        generation: gm.metadata.generation,
        deleting: gm.metadata.deletion_timestamp.is_some(),
        has_finalizer: gm.finalizers().iter().any(|f| f == MACHINE_FINALIZER),
        provider_id: gm.spec.provider_id.clone(),
        paused,
        owner,
        claimed,
        selection,
        bootstrap,
        domain,
        cluster,
        site,
        join_token,
        namespace,
    })
}

fn invalid_selector(
    gm: &GroundworkMachine,
    namespace: String,
    paused: bool,
    owner: Owner,
    e: &dyn std::fmt::Display,
) -> Read {
    Read {
        generation: gm.metadata.generation,
        deleting: false,
        has_finalizer: gm.finalizers().iter().any(|f| f == MACHINE_FINALIZER),
        provider_id: gm.spec.provider_id.clone(),
        paused,
        owner: Some(owner),
        claimed: None,
        selection: Some(Err(NoFit {
            message: format!("spec.serverSelector is not a valid selector: {e}"),
        })),
        bootstrap: Bootstrap::Waiting(String::new()),
        domain: None,
        cluster: None,
        site: None,
        join_token: None,
        namespace,
    }
}

/// The Cluster API Machine owning `gm` (its controller owner reference), if set and there.
async fn owner_machine(
    ctx: &Context,
    gm: &GroundworkMachine,
    namespace: &str,
) -> Result<Option<Machine>, kube::Error> {
    let Some(owner) = gm
        .owner_references()
        .iter()
        .find(|o| o.kind == "Machine" && o.api_version.split('/').next() == Some(capi::GROUP))
    else {
        return Ok(None);
    };
    Api::<Machine>::namespaced(ctx.client.clone(), namespace)
        .get_opt(&owner.name)
        .await
}

/// The Cluster of `gm`: its Machine's, else the cluster-name label's.
fn cluster_name(gm: &GroundworkMachine, machine: Option<&Machine>) -> Option<String> {
    machine
        .map(|m| m.spec.cluster_name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| gm.labels().get(CAPI_CLUSTER_NAME).cloned())
}

/// Whether the Cluster of `gm` (its Machine's, else the cluster-name label's) is paused.
async fn cluster_paused(
    ctx: &Context,
    gm: &GroundworkMachine,
    machine: Option<&Machine>,
    namespace: &str,
) -> Result<bool, kube::Error> {
    let Some(name) = cluster_name(gm, machine) else {
        return Ok(false);
    };
    let cluster = Api::<Cluster>::namespaced(ctx.client.clone(), namespace)
        .get_opt(&name)
        .await?;
    Ok(cluster.is_some_and(|c| c.spec.paused == Some(true)))
}

/// The bootstrap data Secret's readiness (its `format`; the data itself stays in the Secret,
/// which the Server's user-data refers to), and the ID of the bootstrap token it joins with.
async fn bootstrap(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<(Bootstrap, Option<String>), kube::Error> {
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), namespace)
        .get_opt(name)
        .await?;
    let Some(secret) = secret else {
        return Ok((
            Bootstrap::Waiting(format!("bootstrap data Secret {name} does not exist yet")),
            None,
        ));
    };
    let data = secret.data.unwrap_or_default();
    if !data.contains_key("value") {
        return Ok((
            Bootstrap::Waiting(format!("bootstrap data Secret {name} has no key value yet")),
            None,
        ));
    }
    let format = data
        .get("format")
        .map(|f| String::from_utf8_lossy(&f.0).into_owned())
        .unwrap_or_else(|| "cloud-config".into());
    let token = data
        .get("value")
        .and_then(|v| node::join_token_id(&String::from_utf8_lossy(&v.0)));
    Ok(if format == "cloud-config" {
        (Bootstrap::Ready(name.to_string()), token)
    } else {
        (
            Bootstrap::Unsupported(format!(
                "bootstrap data Secret {name} has format {format:?}; the NoCloud config drive carries cloud-config only"
            )),
            None,
        )
    })
}
