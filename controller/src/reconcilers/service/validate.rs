//! Validate stage (pure): which Services Groundwork serves, what a Service asks for, and the
//! address pools the BorderRouters declare.

use std::net::IpAddr;

use crds::BorderRouterSpec;
use crds::service::{LOAD_BALANCER_CLASS, annotations};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;

use super::error::AllocError;
use super::model::{Family, Pool, Request, Sharing};

/// Whether Groundwork serves this Service: type LoadBalancer with our class, or without a
/// class when `default_class` is on.
pub fn served(svc: &Service, default_class: bool) -> bool {
    let Some(spec) = &svc.spec else { return false };
    spec.type_.as_deref() == Some("LoadBalancer")
        && match spec.load_balancer_class.as_deref() {
            Some(class) => class == LOAD_BALANCER_CLASS,
            None => default_class,
        }
}

/// The addresses a Service's status holds (`status.loadBalancer.ingress[].ip`).
pub fn ingress_addresses(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

fn annotation<'a>(svc: &'a Service, key: &str) -> Option<&'a str> {
    svc.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
        .filter(|v| !v.trim().is_empty())
}

/// A Service's sharing terms.
pub fn sharing(svc: &Service) -> Sharing {
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .map(|p| (p.protocol.clone().unwrap_or_else(|| "TCP".into()), p.port))
        .collect();
    Sharing {
        key: annotation(svc, annotations::SHARING_KEY).map(str::to_string),
        ports,
    }
}

/// What a Service asks for. The requested addresses come from `groundwork.dev/address`, else
/// from the deprecated `spec.loadBalancerIP`.
pub fn request(svc: &Service) -> Result<Request, AllocError> {
    let spec = svc.spec.as_ref();
    let mut families: Vec<Family> = spec
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        })
        .collect();
    if families.is_empty() {
        families.push(Family::V4);
    }
    let raw = annotation(svc, annotations::ADDRESS)
        .or_else(|| spec.and_then(|s| s.load_balancer_ip.as_deref()))
        .unwrap_or_default();
    let invalid = || AllocError::InvalidAddress {
        value: raw.to_string(),
    };
    let mut requested = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ip: IpAddr = part.parse().map_err(|_| invalid())?;
        if requested.iter().any(|r| Family::of(r) == Family::of(&ip)) {
            return Err(invalid());
        }
        requested.push(ip);
    }
    Ok(Request {
        families,
        pool: annotation(svc, annotations::ADDRESS_POOL).map(str::to_string),
        requested,
        current: ingress_addresses(svc),
        sharing: sharing(svc),
    })
}

/// The pools of one BorderRouter. Admission already checked the CIDRs; one that still does
/// not parse is left out (and logged), never guessed at.
pub fn pools(router: &str, spec: &BorderRouterSpec) -> Vec<Pool> {
    spec.service_address_pools
        .iter()
        .map(|p| Pool {
            id: format!("{router}/{}", p.name),
            name: p.name.clone(),
            nets: p
                .cidrs
                .iter()
                .filter_map(|c| match c.parse::<IpNet>() {
                    Ok(net) => Some(net.trunc()),
                    Err(_) => {
                        tracing::warn!(router, pool = %p.name, cidr = %c, "pool CIDR does not parse; left out");
                        None
                    }
                })
                .collect(),
            auto_assign: p.auto_assign,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn svc(value: serde_json::Value) -> Service {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn serves_only_our_class_unless_default() {
        let ours = svc(
            serde_json::json!({"spec": {"type": "LoadBalancer", "loadBalancerClass": LOAD_BALANCER_CLASS}}),
        );
        let other = svc(
            serde_json::json!({"spec": {"type": "LoadBalancer", "loadBalancerClass": "metallb.io/x"}}),
        );
        let none = svc(serde_json::json!({"spec": {"type": "LoadBalancer"}}));
        let cluster_ip = svc(
            serde_json::json!({"spec": {"type": "ClusterIP", "loadBalancerClass": LOAD_BALANCER_CLASS}}),
        );
        assert!(served(&ours, false));
        assert!(!served(&other, true));
        assert!(!served(&none, false) && served(&none, true));
        assert!(!served(&cluster_ip, true));
    }

    #[test]
    fn request_reads_families_annotations_and_status() {
        let s = svc(serde_json::json!({
            "metadata": {"annotations": {
                annotations::ADDRESS: "203.0.113.70, 2001:db8:100:64::5",
                annotations::ADDRESS_POOL: "web",
                annotations::SHARING_KEY: "k"}},
            "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv6", "IPv4"],
                     "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.64"}]}}
        }));
        let r = request(&s).unwrap();
        assert_eq!(r.families, vec![Family::V6, Family::V4]);
        assert_eq!(r.pool.as_deref(), Some("web"));
        assert_eq!(r.requested.len(), 2);
        assert_eq!(r.current, vec!["203.0.113.64".parse::<IpAddr>().unwrap()]);
        assert_eq!(r.sharing.key.as_deref(), Some("k"));
        assert!(r.sharing.ports.contains(&("UDP".to_string(), 53)));
        assert!(r.sharing.ports.contains(&("TCP".to_string(), 80)));
    }

    #[test]
    fn bad_requested_addresses_are_typed_errors() {
        for bad in ["not-an-ip", "203.0.113.1,203.0.113.2"] {
            let s =
                svc(serde_json::json!({"metadata": {"annotations": {annotations::ADDRESS: bad}}}));
            assert_eq!(
                request(&s).unwrap_err(),
                AllocError::InvalidAddress { value: bad.into() }
            );
        }
        let legacy = svc(serde_json::json!({"spec": {"loadBalancerIP": "203.0.113.9"}}));
        assert_eq!(
            request(&legacy).unwrap().requested,
            vec!["203.0.113.9".parse::<IpAddr>().unwrap()]
        );
    }
}
