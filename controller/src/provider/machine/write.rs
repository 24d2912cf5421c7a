//! Apply stage: the one write decide asked for, server-side applied under the field manager
//! `groundwork-provider`. Each body states everything the provider wants on that object: what
//! it leaves out, server-side apply removes. A claim is never forced (a consumerRef someone
//! else owns is the error); the intent of a claimed Server is (a pool Server's manifest should
//! leave image, user-data, power and cleaning to the provider, or GitOps will fight it).

use crds::field_managers::PROVIDER;
use crds::provider::{GroundworkMachine, MACHINE_FINALIZER};
use crds::server::Server;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::info;

use super::Error;
use super::decide::{Intent, Write};
use crate::provider::context::Context;

/// The key of the bootstrap data in Cluster API's Secret.
const BOOTSTRAP_KEY: &str = "value";

/// Performs `write`; returns whether something was written.
pub async fn write(
    ctx: &Context,
    gm: &GroundworkMachine,
    namespace: &str,
    write: &Write,
) -> Result<bool, Error> {
    let params = PatchParams::apply(PROVIDER);
    match write {
        Write::Nothing => return Ok(false),
        Write::Machine {
            finalizer,
            provider_id,
        } => {
            let body = machine_body(&gm.name_any(), *finalizer, provider_id.as_deref());
            Api::<GroundworkMachine>::namespaced(ctx.client.clone(), namespace)
                .patch(&gm.name_any(), &params, &Patch::Apply(&body))
                .await?;
        }
        Write::Server {
            name,
            intent,
            precondition,
        } => {
            let body = server_body(gm, name, intent, precondition.as_deref());
            let api = Api::<Server>::namespaced(ctx.client.clone(), namespace);
            // A claim never forces: a consumerRef someone else set is theirs. Once the Server
            // is ours, its intent is too: the image, user-data, power and cleaning a Server's
            // creator may have stated (often just the defaults) are taken over.
            let params = match intent {
                Intent::Claim => params,
                _ => params.force(),
            };
            match api.patch(name, &params, &Patch::Apply(&body)).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 && precondition.is_some() => {
                    return Err(Error::ClaimLost(name.clone()));
                }
                Err(e) => return Err(e.into()),
            }
            info!(kind = super::KIND, %namespace, name = %gm.name_any(), server = %name, ?intent, "server intent applied");
        }
    }
    Ok(true)
}

/// The provider's part of a GroundworkMachine: its finalizer and `spec.providerID`.
pub fn machine_body(name: &str, finalizer: bool, provider_id: Option<&str>) -> Value {
    let mut body = json!({
        "apiVersion": GroundworkMachine::api_version(&()),
        "kind": GroundworkMachine::kind(&()),
        "metadata": {"name": name},
    });
    if finalizer {
        body["metadata"]["finalizers"] = json!([MACHINE_FINALIZER]);
    }
    if let Some(id) = provider_id {
        body["spec"] = json!({"providerID": id});
    }
    body
}

/// The provider's intent on Server `name` for `gm`. A claim carries the resourceVersion the
/// selection saw: the API server refuses it (409) if anyone changed the Server since, so of
/// two Machines racing for one Server exactly one wins.
pub fn server_body(
    gm: &GroundworkMachine,
    name: &str,
    intent: &Intent,
    precondition: Option<&str>,
) -> Value {
    let mut body = json!({
        "apiVersion": Server::api_version(&()),
        "kind": Server::kind(&()),
        "metadata": {"name": name},
    });
    if let Some(rv) = precondition {
        body["metadata"]["resourceVersion"] = json!(rv);
    }
    let consumer = json!({
        "apiVersion": GroundworkMachine::api_version(&()),
        "kind": GroundworkMachine::kind(&()),
        "name": gm.name_any(),
        "uid": gm.uid().unwrap_or_default(),
    });
    let spec = &gm.spec;
    body["spec"] = match intent {
        Intent::Free => return body,
        Intent::Claim => json!({"consumerRef": consumer}),
        Intent::Release => json!({"consumerRef": consumer, "cleaning": spec.cleaning}),
        Intent::Provision(secret) => {
            let mut s = json!({
                "consumerRef": consumer,
                "image": spec.image,
                "userData": {"name": secret, "key": BOOTSTRAP_KEY},
                "cleaning": spec.cleaning,
                "online": true,
            });
            if let Some(hints) = &spec.root_device_hints {
                s["rootDeviceHints"] = json!(hints);
            }
            s
        }
    };
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::provider::GroundworkMachineSpec;

    fn gm() -> GroundworkMachine {
        let mut gm = GroundworkMachine::new("w-1", GroundworkMachineSpec::default());
        gm.metadata.uid = Some("u-1".into());
        gm
    }

    #[test]
    fn a_claim_carries_the_precondition_and_only_the_consumer() {
        let body = server_body(&gm(), "a01-u05", &Intent::Claim, Some("42"));
        assert_eq!(body["metadata"]["resourceVersion"], "42");
        assert_eq!(body["spec"]["consumerRef"]["uid"], "u-1");
        assert_eq!(body["spec"].as_object().map(|o| o.len()), Some(1));
    }

    #[test]
    fn provisioning_states_everything_and_freeing_nothing() {
        let body = server_body(
            &gm(),
            "a01-u05",
            &Intent::Provision("w-1-boot".into()),
            None,
        );
        assert_eq!(
            body["spec"]["userData"],
            json!({"name": "w-1-boot", "key": "value"})
        );
        assert_eq!(body["spec"]["online"], true);
        assert!(body["metadata"].get("resourceVersion").is_none());
        let release = server_body(&gm(), "a01-u05", &Intent::Release, None);
        assert!(release["spec"].get("image").is_none());
        assert_eq!(release["spec"]["cleaning"], "Metadata");
        assert!(
            server_body(&gm(), "a01-u05", &Intent::Free, None)
                .get("spec")
                .is_none()
        );
    }

    #[test]
    fn the_machine_body_keeps_the_provider_id_when_the_finalizer_goes() {
        let body = machine_body("w-1", false, Some("groundwork://fra1/a01-u05"));
        assert!(body["metadata"].get("finalizers").is_none());
        assert_eq!(body["spec"]["providerID"], "groundwork://fra1/a01-u05");
    }
}
