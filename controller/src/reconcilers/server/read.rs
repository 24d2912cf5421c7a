//! Read stage: the Server and what its references point at, from the caches.

use crds::Server;
use crds::server::RackRef;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::reconcilers::context::Context;

/// Facts about the Server's references.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// `Some(found)` when the spec names a Rack.
    pub rack_found: Option<bool>,
    /// Each referenced Secret: (field, name, exists).
    pub secrets: Vec<(&'static str, String, bool)>,
}

/// The Secrets a Server references, by field.
pub fn secret_refs(server: &Server) -> Vec<(&'static str, String)> {
    let spec = &server.spec;
    let mut refs = Vec::new();
    if let Some(bmc) = &spec.bmc {
        refs.push((
            "bmc.credentialsSecretRef",
            bmc.credentials_secret_ref.name.clone(),
        ));
        if let Some(ca) = &bmc.ca_bundle_secret_ref {
            refs.push(("bmc.caBundleSecretRef", ca.name.clone()));
        }
    }
    if let Some(r) = &spec.user_data {
        refs.push(("userData", r.name.clone()));
    }
    if let Some(r) = &spec.network_data {
        refs.push(("networkData", r.name.clone()));
    }
    refs
}

/// Looks the references up in the caches.
pub fn read(ctx: &Context, server: &Server) -> Facts {
    let namespace = server.namespace().unwrap_or_default();
    let rack_found = server.spec.rack_ref.as_ref().map(|RackRef { name }| {
        ctx.racks
            .get(&ObjectRef::new(name).within(&namespace))
            .is_some()
    });
    let secrets = secret_refs(server)
        .into_iter()
        .map(|(field, name)| {
            let exists = ctx.secret_exists(&namespace, &name);
            (field, name, exists)
        })
        .collect();
    Facts {
        rack_found,
        secrets,
    }
}
