//! Read stage: the link's password Secret and the other links on the same router.

use crds::UpstreamLink;
use kube::ResourceExt;

use crate::reconcilers::context::Context;

/// Facts about an UpstreamLink's surroundings.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// `Some(exists)` when a password Secret is referenced: (name, exists).
    pub password_secret: Option<(String, bool)>,
    /// Other links on the same router: (name, peer addresses).
    pub siblings: Vec<(String, Vec<String>)>,
}

/// The peer addresses of a link, all families.
pub fn peer_addresses(link: &UpstreamLink) -> Vec<String> {
    [&link.spec.bgp.ipv4, &link.spec.bgp.ipv6]
        .into_iter()
        .flatten()
        .map(|a| a.peer_address.clone())
        .collect()
}

/// Collects the facts from the caches.
pub fn read(ctx: &Context, link: &UpstreamLink) -> Facts {
    let namespace = link.namespace().unwrap_or_default();
    let password_secret = link
        .spec
        .bgp
        .password_secret_ref
        .as_ref()
        .map(|r| (r.name.clone(), ctx.secret_exists(&namespace, &r.name)));
    let mut siblings: Vec<(String, Vec<String>)> = ctx
        .links
        .state()
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter(|l| l.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|l| l.name_any() != link.name_any() && l.spec.router_ref == link.spec.router_ref)
        .map(|l| (l.name_any(), peer_addresses(l)))
        .collect();
    siblings.sort();
    Facts {
        password_secret,
        siblings,
    }
}
