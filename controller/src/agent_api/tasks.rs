//! What the agent is told to do next, from the Server's open boot attempt.

use crds::Server;
use crds::common::SecretKeyRef;
use crds::server::{BootPurpose, CleaningMode, ImageFormat, ServerState};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use proto::agent_v1::{Clean, PowerOff, Provision, RootDeviceHints, task};

use crate::netboot::Shared;
use crate::netboot::nocloud::{self, NodeAddress};
use crate::server::NODE_NETWORK;

/// Why no task could be built (the agent asks again).
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A referenced Secret could not be read.
    #[error("secret {name}: {source}")]
    Secret {
        /// Secret name.
        name: String,
        /// Cause.
        source: kube::Error,
    },
    /// The Secret lacks the key.
    #[error("secret {name} has no key {key}")]
    SecretKey {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
    },
}

/// The task name in task ids.
pub fn name(kind: &task::Kind) -> &'static str {
    match kind {
        task::Kind::Wait(_) => "wait",
        task::Kind::Provision(_) => "provision",
        task::Kind::Clean(_) => "clean",
        task::Kind::PowerOff(_) => "power-off",
    }
}

/// The next task for `server`'s agent in `attempt`: the attempt's work until its result is
/// recorded, then power-off (the controller boots the disk through the BMC).
pub async fn next(
    client: &kube::Client,
    shared: &Shared,
    server: &Server,
    attempt: &str,
    checkin_url: &str,
) -> Result<task::Kind, TaskError> {
    let off = task::Kind::PowerOff(PowerOff {});
    let Some(status) = server.status.as_ref() else {
        return Ok(off);
    };
    let working = matches!(
        status.state,
        Some(ServerState::Provisioning | ServerState::Deprovisioning)
    );
    let done = status
        .boot_progress
        .as_ref()
        .is_some_and(|p| p.attempt == attempt && p.result.is_some());
    let purpose = status.boot_attempt.as_ref().map(|a| a.purpose);
    if !working || done {
        return Ok(off);
    }
    Ok(match (purpose, server.spec.cleaning) {
        (Some(BootPurpose::Provision), _) => {
            match provision(client, shared, server, checkin_url).await? {
                Some(p) => task::Kind::Provision(p),
                None => off,
            }
        }
        (Some(BootPurpose::Clean), CleaningMode::Metadata) => task::Kind::Clean(Clean {
            mode: proto::agent_v1::clean::Mode::Metadata.into(),
        }),
        (Some(BootPurpose::Clean), CleaningMode::Full) => task::Kind::Clean(Clean {
            mode: proto::agent_v1::clean::Mode::Full.into(),
        }),
        _ => off,
    })
}

async fn secret_value(
    client: &kube::Client,
    namespace: &str,
    r: &SecretKeyRef,
    default_key: &str,
) -> Result<Vec<u8>, TaskError> {
    let key = r.key.clone().unwrap_or_else(|| default_key.to_string());
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(&r.name)
        .await
        .map_err(|source| TaskError::Secret {
            name: r.name.clone(),
            source,
        })?;
    secret
        .data
        .and_then(|mut d| d.remove(&key))
        .map(|b| b.0)
        .ok_or(TaskError::SecretKey {
            name: r.name.clone(),
            key,
        })
}

async fn provision(
    client: &kube::Client,
    shared: &Shared,
    server: &Server,
    checkin_url: &str,
) -> Result<Option<Provision>, TaskError> {
    let Some(image) = server.spec.image.as_ref() else {
        return Ok(None);
    };
    let namespace = server.namespace().unwrap_or_default();
    let user_data = match &server.spec.user_data {
        Some(r) => secret_value(client, &namespace, r, "userData").await?,
        None => Vec::new(),
    };
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
        .and_then(|s| s.addresses.iter().find(|a| a.network == NODE_NETWORK))
        .map(|a| a.address.clone());
    let network = server
        .spec
        .rack_ref
        .as_ref()
        .and_then(|r| shared.rack(&namespace, &r.name))
        .and_then(|r| r.spec.networks.node);
    let node = match (&address, &network) {
        (Some(address), Some(network)) => Some(NodeAddress { address, network }),
        _ => None,
    };
    let docs = nocloud::documents(server, &image.checksum, node, network_data, checkin_url);
    let hints = server.spec.root_device_hints.clone().unwrap_or_default();
    Ok(Some(Provision {
        image_url: image.url.clone(),
        checksum: image.checksum.clone(),
        format: format_name(image.format).into(),
        root_device_hints: Some(RootDeviceHints {
            device_name: hints.device_name.unwrap_or_default(),
            hctl: hints.hctl.unwrap_or_default(),
            model: hints.model.unwrap_or_default(),
            vendor: hints.vendor.unwrap_or_default(),
            serial_number: hints.serial_number.unwrap_or_default(),
            wwn: hints.wwn.unwrap_or_default(),
            min_size_gigabytes: hints.min_size_gigabytes.unwrap_or_default(),
            rotational: hints.rotational,
        }),
        user_data,
        meta_data: docs.meta_data.into_bytes(),
        network_config: docs.network_config.into_bytes(),
        marker: docs.marker,
    }))
}

/// The task's name of an image format: the API's own spelling, which the agent parses.
fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Raw => "raw",
        ImageFormat::RawZstd => "raw+zstd",
        ImageFormat::RawGzip => "raw+gzip",
        ImageFormat::Qcow2 => "qcow2",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_are_the_api_spelling() {
        for format in [
            ImageFormat::Raw,
            ImageFormat::RawZstd,
            ImageFormat::RawGzip,
            ImageFormat::Qcow2,
        ] {
            assert_eq!(
                serde_json::to_value(format).ok(),
                Some(serde_json::Value::from(format_name(format)))
            );
        }
    }
}
