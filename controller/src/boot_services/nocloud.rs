//! NoCloud documents for a Server: the config drive the agent writes at install time and the
//! metadata service serves afterwards carry the same bytes, both built by [`read`].
//! [`documents`] is the pure part.

use crds::Server;
use crds::common::SecretKeyRef;
use crds::rack::NodeNetwork;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use super::shared::Shared;

/// Why a document could not be built (the caller asks again later).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A referenced Secret could not be read.
    #[error("secret {name}: {source}")]
    Read {
        /// Secret name.
        name: String,
        /// Cause.
        source: kube::Error,
    },
    /// The Secret lacks the key.
    #[error("secret {name} has no key {key}")]
    MissingKey {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
    },
}

/// The config drive's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documents {
    /// `meta-data` (YAML).
    pub meta_data: String,
    /// `network-config` (netplan v2 YAML); empty when the OS should configure itself.
    pub network_config: String,
    /// `groundwork-marker`: what adoption compares.
    pub marker: String,
}

/// The node address a Server was granted, with its network.
pub struct NodeAddress<'a> {
    /// The address.
    pub address: &'a str,
    /// The Rack's node network it is from.
    pub network: &'a NodeNetwork,
}

/// `server` as `namespace/name`.
pub fn server_id(server: &Server) -> String {
    format!(
        "{}/{}",
        server.namespace().unwrap_or_default(),
        server.name_any()
    )
}

/// The marker for `server` carrying `checksum` (key=value lines).
pub fn marker(server: &Server, checksum: &str) -> String {
    format!(
        "server-uid={}\nserver={}\nchecksum={checksum}\n",
        server.uid().unwrap_or_default(),
        server_id(server)
    )
}

/// The documents of `server` with its image's `checksum`: its network data Secret, else a
/// netplan for its node address on its Rack's node network.
pub async fn read(
    client: &kube::Client,
    shared: &Shared,
    server: &Server,
    checksum: &str,
    checkin_url: &str,
) -> Result<Documents, SecretError> {
    let namespace = server.namespace().unwrap_or_default();
    let network_data = match &server.spec.network_data {
        Some(r) => Some(
            String::from_utf8_lossy(&secret_value(client, &namespace, r, "networkData").await?)
                .into_owned(),
        ),
        None => None,
    };
    let address = server
        .status
        .as_ref()
        .and_then(|s| s.node_address())
        .map(|a| a.address.as_str());
    let network = server
        .spec
        .rack_ref
        .as_ref()
        .and_then(|r| shared.rack(&namespace, &r.name))
        .and_then(|r| r.spec.networks.node);
    let node = match (address, &network) {
        (Some(address), Some(network)) => Some(NodeAddress { address, network }),
        _ => None,
    };
    Ok(documents(server, checksum, node, network_data, checkin_url))
}

/// The value of `r` (or its `default_key`) in a Secret of `namespace`.
pub async fn secret_value(
    client: &kube::Client,
    namespace: &str,
    r: &SecretKeyRef,
    default_key: &str,
) -> Result<Vec<u8>, SecretError> {
    let key = r.key.clone().unwrap_or_else(|| default_key.to_string());
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(&r.name)
        .await
        .map_err(|source| SecretError::Read {
            name: r.name.clone(),
            source,
        })?;
    secret
        .data
        .and_then(|mut d| d.remove(&key))
        .map(|b| b.0)
        .ok_or(SecretError::MissingKey {
            name: r.name.clone(),
            key,
        })
}

/// Builds the documents. `checkin_url` is where the installed OS reports its first boot.
pub fn documents(
    server: &Server,
    checksum: &str,
    node: Option<NodeAddress<'_>>,
    network_data: Option<String>,
    checkin_url: &str,
) -> Documents {
    let namespace = server.namespace().unwrap_or_default();
    // The provider ID (as Cluster API Machines and Nodes carry it) and the Rack, for templates
    // (e.g. a kubelet's `providerID` and zone label).
    let rack = server
        .spec
        .rack_ref
        .as_ref()
        .map(|r| format!("groundwork-rack: {}\n", r.name))
        .unwrap_or_default();
    let meta_data = format!(
        "instance-id: {}\nlocal-hostname: {}\ngroundwork-server: {}\ngroundwork-checkin-url: {checkin_url}\nprovider-id: {}\n{rack}",
        server.uid().unwrap_or_default(),
        server.name_any(),
        server_id(server),
        crds::provider::provider_id(&namespace, &server.name_any()),
    );
    let generated = || {
        let mac = server.spec.boot_mac_address.as_deref()?;
        let node = node?;
        let prefix = node.network.subnet.split_once('/')?.1;
        let mut doc = format!(
            "version: 2\nethernets:\n  id0:\n    match:\n      macaddress: \"{}\"\n    addresses:\n      - {}/{prefix}\n    routes:\n      - to: default\n        via: {}\n",
            mac.to_ascii_lowercase(),
            node.address,
            node.network.gateway
        );
        if !node.network.dns.is_empty() {
            doc.push_str("    nameservers:\n      addresses:\n");
            for d in &node.network.dns {
                doc.push_str(&format!("        - {d}\n"));
            }
        }
        Some(doc)
    };
    Documents {
        meta_data,
        network_config: network_data.or_else(generated).unwrap_or_default(),
        marker: marker(server, checksum),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::server::ServerSpec;

    fn server() -> Server {
        let mut s = Server::new(
            "a01-u05",
            ServerSpec {
                rack_ref: None,
                rack_unit: None,
                height_u: 1,
                bmc: None,
                boot_mac_address: Some("52:54:00:A0:01:05".into()),
                online: true,
                boot_mode: Default::default(),
                image: None,
                root_device_hints: None,
                user_data: None,
                network_data: None,
                cleaning: Default::default(),
                externally_provisioned: false,
                max_power_watts: None,
                node: None,
                standby: None,
                consumer_ref: None,
            },
        );
        s.metadata.namespace = Some("fra1".into());
        s.metadata.uid = Some("uid-1".into());
        s
    }

    #[test]
    fn documents_name_the_server_and_its_node_address() {
        let net = NodeNetwork {
            subnet: "10.20.0.0/24".into(),
            gateway: "10.20.0.1".into(),
            dns: vec!["10.20.0.2".into()],
            ..Default::default()
        };
        let d = documents(
            &server(),
            "sha256:ab",
            Some(NodeAddress {
                address: "10.20.0.15",
                network: &net,
            }),
            None,
            "http://10.10.0.2:8081/metadata/checkin",
        );
        assert_eq!(
            d.meta_data,
            "instance-id: uid-1\nlocal-hostname: a01-u05\ngroundwork-server: fra1/a01-u05\ngroundwork-checkin-url: http://10.10.0.2:8081/metadata/checkin\nprovider-id: groundwork://fra1/a01-u05\n"
        );
        assert_eq!(
            d.network_config,
            "version: 2\nethernets:\n  id0:\n    match:\n      macaddress: \"52:54:00:a0:01:05\"\n    addresses:\n      - 10.20.0.15/24\n    routes:\n      - to: default\n        via: 10.20.0.1\n    nameservers:\n      addresses:\n        - 10.20.0.2\n"
        );
        assert_eq!(
            d.marker,
            "server-uid=uid-1\nserver=fra1/a01-u05\nchecksum=sha256:ab\n"
        );
        // Given network data wins; without a node address the OS configures itself.
        let given = documents(&server(), "c", None, Some("x".into()), "u");
        assert_eq!(given.network_config, "x");
        assert_eq!(
            documents(&server(), "c", None, None, "u").network_config,
            ""
        );
    }
}
