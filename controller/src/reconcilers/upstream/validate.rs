//! Validate stage (pure): what CEL cannot check about an UpstreamLink.

use std::net::IpAddr;

use super::read::Facts;
use crate::reconcilers::references::Unresolved;

/// Every problem found: a missing password Secret, or another link on the same router peering
/// with the same address (compared as addresses, so `2001:db8::1` equals `2001:DB8:0::1`).
pub fn validate(router: &str, peers: &[String], facts: &Facts) -> Vec<Unresolved> {
    let mut out = Vec::new();
    if let Some((name, false)) = &facts.password_secret {
        out.push(Unresolved {
            reason: crds::reasons::SECRET_NOT_FOUND,
            message: format!(
                "spec.bgp.passwordSecretRef: Secret {name:?} does not exist in this namespace"
            ),
        });
    }
    let ours: Vec<IpAddr> = peers.iter().filter_map(|p| p.parse().ok()).collect();
    for (sibling, theirs) in &facts.siblings {
        for peer in theirs.iter().filter_map(|p| p.parse::<IpAddr>().ok()) {
            if ours.contains(&peer) {
                out.push(Unresolved {
                    reason: crds::reasons::DUPLICATE_PEER,
                    message: format!(
                        "UpstreamLink {sibling:?} already peers with {peer} on router {router:?}"
                    ),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_peer_on_same_router_is_a_duplicate() {
        let facts = Facts {
            password_secret: None,
            siblings: vec![("isp-b".into(), vec!["2001:DB8:0::1".into()])],
        };
        let p = validate("edge1", &["2001:db8::1".into()], &facts);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].reason, "DuplicatePeer");
        assert!(p[0].message.contains("isp-b"));
    }

    #[test]
    fn missing_password_secret() {
        let facts = Facts {
            password_secret: Some(("md5".into(), false)),
            siblings: vec![],
        };
        assert_eq!(validate("edge1", &[], &facts)[0].reason, "SecretNotFound");
    }
}
