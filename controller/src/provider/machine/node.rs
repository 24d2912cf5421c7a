//! The workload cluster's Node of a provisioned Machine: labelled with its zone (the failure
//! domain: the Rack) and region (the Rack's site), and given its providerID when the kubelet
//! did not set one (found by name then: the hostname the config drive gives it). Once the Node
//! is there, the bootstrap token it joined with is deleted: a join credential does not outlive
//! the join (it would otherwise stay valid until its TTL, and outlive a deleted Cluster).
//! Reached with the Cluster's `<cluster>-kubeconfig` Secret, as Cluster API reaches it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use serde_json::json;
use tracing::info;

use crds::field_managers::PROVIDER;

/// The zone label (the failure domain).
pub const ZONE: &str = "topology.kubernetes.io/zone";
/// The region label (the site).
pub const REGION: &str = "topology.kubernetes.io/region";

/// Why the Node could not be reached or labelled.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The workload cluster's API server refused or failed a request.
    #[error("workload cluster request failed: {0}")]
    Kube(#[from] kube::Error),
    /// The `<cluster>-kubeconfig` Secret is missing or unusable.
    #[error("workload cluster kubeconfig: {0}")]
    Kubeconfig(String),
}

/// What the Node of a Machine should carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// The Node's name when the kubelet set no providerID (the Server's name).
    pub hostname: String,
    /// `groundwork://<namespace>/<server>`.
    pub provider_id: String,
    /// The failure domain.
    pub zone: String,
    /// The site.
    pub region: Option<String>,
    /// The ID of the bootstrap token in the Machine's bootstrap data.
    pub join_token: Option<String>,
}

/// The ID of the bootstrap token a kubeadm join configuration carries (`token: abcdef.
/// 0123456789abcdef`, as `kubeadm join` reads it; the secret half is never kept).
pub fn join_token_id(bootstrap_data: &str) -> Option<String> {
    let token = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    bootstrap_data.lines().find_map(|line| {
        let value = line
            .trim()
            .strip_prefix("token:")?
            .trim()
            .trim_matches(['"', '\'']);
        let (id, secret) = value.split_once('.')?;
        (token(id, 6) && token(secret, 16)).then(|| id.to_string())
    })
}

/// The server-side apply body that brings `node` to `wanted`, or `None` when it already is.
/// A providerID is set only on a Node without one (it is immutable once set).
pub fn patch(node: &Node, wanted: &Wanted) -> Option<serde_json::Value> {
    let labels = node.labels();
    let mut want = BTreeMap::from([(ZONE, wanted.zone.as_str())]);
    if let Some(r) = &wanted.region {
        want.insert(REGION, r.as_str());
    }
    let has_id = node
        .spec
        .as_ref()
        .and_then(|s| s.provider_id.as_ref())
        .is_some();
    let labelled = want
        .iter()
        .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v));
    if labelled && has_id {
        return None;
    }
    let mut body = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node.name_any(), "labels": want}});
    if !has_id {
        body["spec"] = json!({"providerID": wanted.provider_id});
    }
    Some(body)
}

/// The Node of `wanted`: the one with its providerID, else the one named as its host.
pub fn find<'a>(nodes: &'a [Node], wanted: &Wanted) -> Option<&'a Node> {
    let id = |n: &Node| n.spec.as_ref().and_then(|s| s.provider_id.clone());
    nodes
        .iter()
        .find(|n| id(n).as_deref() == Some(wanted.provider_id.as_str()))
        .or_else(|| {
            nodes
                .iter()
                .find(|n| n.name_any() == wanted.hostname && id(n).is_none())
        })
}

/// A client for the workload cluster of `cluster` in `namespace`.
pub async fn workload_client(
    client: &Client,
    namespace: &str,
    cluster: &str,
) -> Result<Client, NodeError> {
    let name = format!("{cluster}-kubeconfig");
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(&name)
        .await?
        .ok_or_else(|| NodeError::Kubeconfig(format!("Secret {name} does not exist")))?;
    let value = secret
        .data
        .and_then(|d| d.get("value").cloned())
        .ok_or_else(|| NodeError::Kubeconfig(format!("Secret {name} has no key value")))?;
    let text = String::from_utf8(value.0)
        .map_err(|e| NodeError::Kubeconfig(format!("Secret {name}: {e}")))?;
    let kubeconfig = Kubeconfig::from_yaml(&text)
        .map_err(|e| NodeError::Kubeconfig(format!("Secret {name}: {e}")))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| NodeError::Kubeconfig(format!("Secret {name}: {e}")))?;
    Client::try_from(config).map_err(|e| NodeError::Kubeconfig(format!("Secret {name}: {e}")))
}

/// Labels (and if need be identifies) the Node of `wanted` in the workload cluster. `Ok(false)`
/// while the Node has not registered yet.
pub async fn sync(workload: &Client, wanted: &Wanted) -> Result<bool, NodeError> {
    let api: Api<Node> = Api::all(workload.clone());
    let nodes = api.list(&ListParams::default()).await?.items;
    let Some(node) = find(&nodes, wanted) else {
        return Ok(false);
    };
    if let Some(body) = patch(node, wanted) {
        api.patch(
            &node.name_any(),
            &PatchParams::apply(PROVIDER),
            &Patch::Apply(body),
        )
        .await?;
        info!(node = %node.name_any(), zone = %wanted.zone, region = ?wanted.region, "Node labelled");
    }
    if let Some(id) = &wanted.join_token {
        let secrets: Api<Secret> = Api::namespaced(workload.clone(), "kube-system");
        if secrets
            .get_metadata_opt(&format!("bootstrap-token-{id}"))
            .await?
            .is_some()
        {
            secrets
                .delete(&format!("bootstrap-token-{id}"), &DeleteParams::default())
                .await?;
            info!(node = %node.name_any(), token = %id, "joined: bootstrap token deleted");
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeSpec;

    fn node(name: &str, provider_id: Option<&str>, zone: Option<&str>) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        if let Some(z) = zone {
            n.metadata.labels = Some(BTreeMap::from([
                (ZONE.into(), z.into()),
                (REGION.into(), "fra1".into()),
            ]));
        }
        n.spec = Some(NodeSpec {
            provider_id: provider_id.map(Into::into),
            ..Default::default()
        });
        n
    }

    fn wanted() -> Wanted {
        Wanted {
            hostname: "a01-u05".into(),
            provider_id: "groundwork://fra1/a01-u05".into(),
            zone: "a01".into(),
            region: Some("fra1".into()),
            join_token: None,
        }
    }

    #[test]
    fn labels_and_identifies_only_what_is_missing() {
        let bare = node("a01-u05", None, None);
        let body = patch(&bare, &wanted()).unwrap();
        assert_eq!(body["metadata"]["labels"][ZONE], "a01");
        assert_eq!(body["metadata"]["labels"][REGION], "fra1");
        assert_eq!(body["spec"]["providerID"], "groundwork://fra1/a01-u05");
        // The kubelet set the providerID: labels only, the ID is never rewritten.
        let kubelet = node("a01-u05", Some("groundwork://fra1/a01-u05"), None);
        assert!(patch(&kubelet, &wanted()).unwrap().get("spec").is_none());
        let done = node("a01-u05", Some("groundwork://fra1/a01-u05"), Some("a01"));
        assert_eq!(patch(&done, &wanted()), None);
    }

    #[test]
    fn reads_the_join_token_id_never_anything_else() {
        // As CABPK writes it (bootstrap/kubeadm/pkg/cloudinit: the join configuration in
        // write_files, content as text).
        let data = "## template: jinja\n#cloud-config\nwrite_files:\n- path: /run/kubeadm/kubeadm-join-config.yaml\n  content: |\n    discovery:\n      bootstrapToken:\n        apiServerEndpoint: 10.83.0.1:6443\n        token: tdumr1.0123456789abcdef\n";
        assert_eq!(join_token_id(data).as_deref(), Some("tdumr1"));
        let fixture = include_str!("../../../../hack/node-os/testdata/cabpk-join.yaml");
        assert_eq!(join_token_id(fixture).as_deref(), Some("abcdef"));
        assert_eq!(join_token_id("token: short.0123456789abcdef"), None);
        assert_eq!(join_token_id("token: ABCDEF.0123456789abcdef"), None);
        assert_eq!(join_token_id("tokens: abcdef.0123456789abcdef\n"), None);
    }

    #[test]
    fn finds_by_provider_id_then_by_name_without_one() {
        let other = node("a01-u05", Some("groundwork://fra1/a01-u07"), None);
        let mine = node("renamed", Some("groundwork://fra1/a01-u05"), None);
        assert_eq!(
            find(&[other.clone(), mine], &wanted()).unwrap().name_any(),
            "renamed"
        );
        // A same-named Node that belongs to another machine is not ours.
        assert!(find(std::slice::from_ref(&other), &wanted()).is_none());
        let unnamed = node("a01-u05", None, None);
        assert_eq!(find(&[unnamed], &wanted()).unwrap().name_any(), "a01-u05");
    }
}
