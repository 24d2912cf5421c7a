//! Read stage: the pools of every BorderRouter in the cache and the addresses every other
//! Service holds (its status, or a grant this process wrote that the cache has not shown yet).

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

use super::model::{Holder, Pool};
use super::validate;
use crate::reconcilers::context::{Context, ServiceGrants};

/// The inputs of one allocation.
pub struct Facts {
    /// Every pool of every BorderRouter, ordered by router and pool name.
    pub pools: Vec<Pool>,
    /// Every other Service holding addresses. A grant counts only while its Service exists,
    /// so a deleted Service's addresses are free at once.
    pub holders: Vec<Holder>,
}

/// Reads the facts for `svc`.
pub fn read(ctx: &Context, svc: &Service, grants: &ServiceGrants) -> Facts {
    let mut routers: Vec<_> = ctx
        .routers
        .state()
        .iter()
        .filter_map(|r| r.0.as_ref().ok().cloned())
        .collect();
    routers.sort_by_key(|r| (r.namespace(), r.name_any()));
    let pools = routers
        .iter()
        .flat_map(|r| validate::pools(&r.name_any(), &r.spec))
        .collect();
    let own_uid = svc.uid();
    let holders = ctx
        .services
        .state()
        .iter()
        .filter(|s| s.uid() != own_uid)
        .filter_map(|s| {
            let addresses = s
                .uid()
                .and_then(|uid| grants.get(&uid).cloned())
                .unwrap_or_else(|| validate::ingress_addresses(s));
            (!addresses.is_empty()).then(|| Holder {
                service: format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any()),
                addresses,
                sharing: validate::sharing(s),
            })
        })
        .collect();
    Facts { pools, holders }
}
