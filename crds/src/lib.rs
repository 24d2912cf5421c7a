//! The Groundwork API: `groundwork.dev/v1alpha1`.
//!
//! One namespace is one site. [`Rack`], [`Server`] and [`UpstreamLink`] declare the site; the
//! controller only ever writes their `status`. This crate holds types and pure helpers only: no
//! I/O, no imports from the rest of the workspace.
//!
//! [`provider`] holds the Cluster API infrastructure provider's kinds, in their own group
//! (`infrastructure.groundwork.dev`; the module says why).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    ValidationRule,
};

pub mod border;
pub mod common;
pub mod provider;
pub mod rack;
pub mod server;
pub mod service;
pub mod upstream;

pub use border::{
    BlackholeRoute, BlackholeRouteSpec, BlackholeRouteStatus, BorderRouter, BorderRouterSpec,
    BorderRouterStatus, ServiceAddressPool,
};
pub use common::{
    ConditionStatus, SecretKeyRef, annotations, condition_types, field_managers, reasons,
};
pub use provider::{GroundworkCluster, GroundworkMachine, GroundworkMachineTemplate};
pub use rack::{Rack, RackSpec, RackStatus};
pub use server::{Server, ServerSpec, ServerState, ServerStatus};
pub use upstream::{UpstreamLink, UpstreamLinkSpec, UpstreamLinkStatus};

/// The API group of every Groundwork kind.
pub const GROUP: &str = "groundwork.dev";
/// Finalizer on a Server that holds a node address or an image: it is cleaned (per
/// `spec.cleaning`) and its address released before it goes.
pub const SERVER_FINALIZER: &str = "groundwork.dev/release";
/// The API version served today.
pub const VERSION: &str = "v1alpha1";

/// Every CustomResourceDefinition of the API, in a stable order (the generator writes them).
pub fn crds() -> Vec<CustomResourceDefinition> {
    use kube::CustomResourceExt;
    let mut crds = vec![
        Rack::crd(),
        Server::crd(),
        UpstreamLink::crd(),
        BorderRouter::crd(),
        BlackholeRoute::crd(),
        GroundworkCluster::crd(),
        GroundworkMachine::crd(),
        GroundworkMachineTemplate::crd(),
    ];
    for crd in &mut crds {
        let hostname = crd.spec.names.kind == "Server";
        if crd.spec.group == provider::GROUP {
            let (key, value) = provider::CONTRACT_LABEL;
            crd.metadata
                .labels
                .get_or_insert_default()
                .insert(key.into(), value.into());
        }
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                kubernetes_formats(schema);
                if hostname {
                    name_rule(schema, server::NAME_RULE, server::NAME_MESSAGE);
                }
            }
        }
    }
    crds
}

/// Declares `metadata.name` in a root schema with a CEL rule (kube-derive leaves metadata out).
/// The API server checks it at creation, naming `metadata.name`; objects created before the rule
/// keep working, since an unchanged value is not checked again (validation ratcheting).
fn name_rule(root: &mut JSONSchemaProps, rule: &str, message: &str) {
    let name = JSONSchemaProps {
        type_: Some("string".into()),
        x_kubernetes_validations: Some(vec![ValidationRule {
            rule: rule.into(),
            message: Some(message.into()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let metadata = JSONSchemaProps {
        type_: Some("object".into()),
        properties: Some([("name".to_string(), name)].into()),
        ..Default::default()
    };
    root.properties
        .get_or_insert_default()
        .insert("metadata".into(), metadata);
}

/// schemars emits `uint32`/`uint64` formats the API server does not know (it warns on every
/// apply); Kubernetes spells integers `int32`/`int64`, and schemars already adds `minimum: 0`.
fn kubernetes_formats(schema: &mut JSONSchemaProps) {
    if let Some(format) = schema.format.as_mut() {
        match format.as_str() {
            "uint32" | "uint16" | "uint8" => *format = "int32".into(),
            "uint64" | "uint" => *format = "int64".into(),
            _ => {}
        }
    }
    let children = schema
        .properties
        .iter_mut()
        .flat_map(|p| p.values_mut())
        .chain(schema.items.iter_mut().filter_map(|i| match i {
            JSONSchemaPropsOrArray::Schema(s) => Some(s.as_mut()),
            JSONSchemaPropsOrArray::Schemas(_) => None,
        }))
        .chain(
            schema
                .additional_properties
                .iter_mut()
                .filter_map(|a| match a {
                    JSONSchemaPropsOrBool::Schema(s) => Some(s.as_mut()),
                    JSONSchemaPropsOrBool::Bool(_) => None,
                }),
        );
    for child in children {
        kubernetes_formats(child);
    }
}
