//! Decide stage (pure): which addresses a Service holds, and the part of its status the
//! controller owns. Everything is derived from the API objects (the pools and what every
//! Service's status holds), so a restarted controller decides the same.

use std::net::IpAddr;

use crds::ConditionStatus;
use crds::service::{conditions::ADDRESS_ALLOCATED, reasons::ALLOCATED};
use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube_kit::conditions::{Desired, merge, owned};
use serde::Serialize;

use super::error::AllocError;
use super::model::{Family, Holder, Pool, Request};
use crate::metrics::PoolSample;

/// At most this many addresses of one pool network are scanned for a free one.
const SCAN_LIMIT: usize = 1 << 16;

/// The addresses `req` gets, one per family in its order: the requested one (when in an
/// eligible pool and not held by a Service it may not share with), else the one it holds,
/// else one shared under its sharing key, else the lowest free one of the eligible pools.
pub fn allocate(
    req: &Request,
    pools: &[Pool],
    holders: &[Holder],
) -> Result<Vec<IpAddr>, AllocError> {
    req.families
        .iter()
        .map(|family| allocate_one(req, *family, pools, holders))
        .collect()
}

fn allocate_one(
    req: &Request,
    family: Family,
    pools: &[Pool],
    holders: &[Holder],
) -> Result<IpAddr, AllocError> {
    let eligible: Vec<&Pool> = pools
        .iter()
        .filter(|p| match &req.pool {
            Some(name) => &p.name == name,
            None => p.auto_assign,
        })
        .filter(|p| p.nets.iter().any(|n| net_family(n) == family))
        .collect();
    if eligible.is_empty() {
        return Err(AllocError::NoPool {
            family,
            pool: req.pool.clone(),
        });
    }
    let in_pool = |ip: &IpAddr| eligible.iter().any(|p| p.contains(ip));
    let blocker = |ip: &IpAddr| {
        holders
            .iter()
            .find(|h| h.addresses.contains(ip) && !req.sharing.compatible(&h.sharing))
    };
    let of_family = |ip: &&IpAddr| Family::of(ip) == family;

    if let Some(ip) = req.requested.iter().find(of_family) {
        if !in_pool(ip) {
            return Err(AllocError::NotInPool { ip: *ip });
        }
        if let Some(h) = blocker(ip) {
            return Err(AllocError::InUse {
                ip: *ip,
                by: h.service.clone(),
            });
        }
        return Ok(*ip);
    }
    if let Some(ip) = req
        .current
        .iter()
        .filter(of_family)
        .find(|ip| in_pool(ip) && blocker(ip).is_none())
    {
        return Ok(*ip);
    }
    let shared = holders
        .iter()
        .filter(|h| req.sharing.compatible(&h.sharing))
        .flat_map(|h| h.addresses.iter())
        .filter(of_family)
        .find(|ip| in_pool(ip) && blocker(ip).is_none());
    if let Some(ip) = shared {
        return Ok(*ip);
    }
    let held: std::collections::BTreeSet<&IpAddr> =
        holders.iter().flat_map(|h| h.addresses.iter()).collect();
    eligible
        .iter()
        .flat_map(|p| p.nets.iter())
        .filter(|n| net_family(n) == family)
        .find_map(|net| addresses(net).find(|ip| !held.contains(ip)))
        .ok_or_else(|| AllocError::Exhausted {
            family,
            pools: eligible
                .iter()
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

fn net_family(net: &IpNet) -> Family {
    Family::of(&net.network())
}

/// Every address of `net`, network and broadcast included (each is routed as a host route),
/// lowest first, at most [`SCAN_LIMIT`].
fn addresses(net: &IpNet) -> impl Iterator<Item = IpAddr> + '_ {
    let first = match net.network() {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    let size = 1u128 << (net.max_prefix_len() - net.prefix_len()).min(127);
    (0..size.min(SCAN_LIMIT as u128)).map(move |i| match net {
        IpNet::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(
            u32::try_from(first + i).unwrap_or(u32::MAX),
        )),
        IpNet::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(first + i)),
    })
}

/// How full every pool is: the distinct addresses held by `holders` and by the Service just
/// decided (`own`), and the pool's size (saturating at `u64::MAX`).
pub fn usage(pools: &[Pool], holders: &[Holder], own: &[IpAddr]) -> Vec<PoolSample> {
    let held: std::collections::BTreeSet<&IpAddr> = holders
        .iter()
        .flat_map(|h| h.addresses.iter())
        .chain(own)
        .collect();
    pools
        .iter()
        .map(|p| PoolSample {
            pool: p.id.clone(),
            used: held.iter().filter(|ip| p.contains(ip)).count() as u64,
            size: p
                .nets
                .iter()
                .map(|n| {
                    1u64.checked_shl(u32::from(n.max_prefix_len() - n.prefix_len()))
                        .unwrap_or(u64::MAX)
                })
                .fold(0u64, u64::saturating_add),
        })
        .collect()
}

/// The addresses of `current` that a Service may keep while its allocation fails (in a pool,
/// not held by a Service it may not share with): a failed change never takes away an address
/// that works.
pub fn still_valid(req: &Request, pools: &[Pool], holders: &[Holder]) -> Vec<IpAddr> {
    req.current
        .iter()
        .filter(|ip| pools.iter().any(|p| p.contains(ip)))
        .filter(|ip| {
            !holders
                .iter()
                .any(|h| h.addresses.contains(ip) && !req.sharing.compatible(&h.sharing))
        })
        .copied()
        .collect()
}

/// `status.loadBalancer.ingress[]`, the fields the controller writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ingress {
    /// The address.
    pub ip: String,
}

/// `status.loadBalancer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoadBalancer {
    /// The Service's addresses (an atomic list: owned as a whole by the controller).
    pub ingress: Vec<Ingress>,
}

/// The part of a Service's status the controller owns (server-side apply, its field manager).
/// Empty when the Service is not served: applying it then removes what the controller wrote.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnedStatus {
    /// The addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    /// The `groundwork.dev/AddressAllocated` condition.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl OwnedStatus {
    /// What the controller wrote into `svc`'s status: its condition and, when the condition is
    /// there, the addresses (an ingress written by someone else is not ours).
    pub fn observed(svc: &k8s_openapi::api::core::v1::Service) -> Self {
        let all = svc
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default();
        let conditions = owned(all, &[ADDRESS_ALLOCATED]);
        let addresses = super::validate::ingress_addresses(svc);
        Self {
            load_balancer: (!conditions.is_empty() && !addresses.is_empty())
                .then(|| ingress(&addresses)),
            conditions,
        }
    }

    /// The addresses this status holds.
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.load_balancer
            .iter()
            .flat_map(|lb| lb.ingress.iter())
            .filter_map(|i| i.ip.parse().ok())
            .collect()
    }
}

fn ingress(addresses: &[IpAddr]) -> LoadBalancer {
    LoadBalancer {
        ingress: addresses
            .iter()
            .map(|ip| Ingress { ip: ip.to_string() })
            .collect(),
    }
}

/// The allocation of a served Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Its addresses, or why it has none.
    pub result: Result<Vec<IpAddr>, AllocError>,
    /// On failure, the addresses it keeps meanwhile ([`still_valid`]).
    pub kept: Vec<IpAddr>,
}

/// Allocates for a Service whose request was read (or failed to read).
pub fn outcome(
    request: Result<Request, AllocError>,
    pools: &[Pool],
    holders: &[Holder],
) -> Outcome {
    match request {
        Ok(req) => match allocate(&req, pools, holders) {
            Ok(ips) => Outcome {
                result: Ok(ips),
                kept: Vec::new(),
            },
            Err(e) => Outcome {
                result: Err(e),
                kept: still_valid(&req, pools, holders),
            },
        },
        Err(e) => Outcome {
            result: Err(e),
            kept: Vec::new(),
        },
    }
}

/// The controller's desired status: `None` (not served) clears what it wrote; otherwise the
/// allocation's addresses (or, on failure, the ones still valid) and the condition.
pub fn status(
    outcome: Option<&Outcome>,
    current: &OwnedStatus,
    generation: Option<i64>,
    now: &Time,
) -> OwnedStatus {
    let Some(Outcome { result, kept }) = outcome else {
        return OwnedStatus::default();
    };
    let (addresses, condition) = match result {
        Ok(ips) => {
            let list: Vec<String> = ips.iter().map(ToString::to_string).collect();
            (
                ips.clone(),
                Desired::new(
                    ADDRESS_ALLOCATED,
                    ConditionStatus::True,
                    ALLOCATED,
                    format!("allocated {}", list.join(", ")),
                ),
            )
        }
        Err(e) => (
            kept.clone(),
            Desired::new(
                ADDRESS_ALLOCATED,
                ConditionStatus::False,
                e.reason(),
                e.to_string(),
            ),
        ),
    };
    OwnedStatus {
        load_balancer: (!addresses.is_empty()).then(|| ingress(&addresses)),
        conditions: merge(&current.conditions, &[condition], generation, now),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::model::Sharing;
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn pool(name: &str, cidrs: &[&str], auto_assign: bool) -> Pool {
        Pool {
            id: format!("edge1/{name}"),
            name: name.into(),
            nets: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
            auto_assign,
        }
    }

    fn holder(name: &str, ips: &[&str], key: Option<&str>, port: i32) -> Holder {
        Holder {
            service: format!("app/{name}"),
            addresses: ips.iter().map(|s| ip(s)).collect(),
            sharing: Sharing {
                key: key.map(str::to_string),
                ports: [("TCP".to_string(), port)].into(),
            },
        }
    }

    fn req() -> Request {
        Request {
            families: vec![Family::V4],
            pool: None,
            requested: vec![],
            current: vec![],
            sharing: Sharing {
                key: None,
                ports: [("TCP".to_string(), 80)].into(),
            },
        }
    }

    fn pools() -> Vec<Pool> {
        vec![
            pool("web", &["203.0.113.64/31", "2001:db8:100:64::/127"], true),
            pool("manual", &["203.0.113.80/30"], false),
        ]
    }

    #[test]
    fn lowest_free_address_then_exhausted() {
        let r = req();
        assert_eq!(allocate(&r, &pools(), &[]), Ok(vec![ip("203.0.113.64")]));
        let one = [holder("a", &["203.0.113.64"], None, 80)];
        assert_eq!(allocate(&r, &pools(), &one), Ok(vec![ip("203.0.113.65")]));
        let two = [
            holder("a", &["203.0.113.64"], None, 80),
            holder("b", &["203.0.113.65"], None, 80),
        ];
        let err = allocate(&r, &pools(), &two).unwrap_err();
        assert_eq!(err.reason(), "PoolExhausted");
        assert!(err.to_string().contains("edge1/web"), "{err}");
    }

    #[test]
    fn current_address_is_kept_whatever_is_lower() {
        let mut r = req();
        r.current = vec![ip("203.0.113.65")];
        assert_eq!(allocate(&r, &pools(), &[]), Ok(vec![ip("203.0.113.65")]));
        // ... unless another Service holds it without sharing (then a free one).
        let other = [holder("a", &["203.0.113.65"], None, 443)];
        assert_eq!(allocate(&r, &pools(), &other), Ok(vec![ip("203.0.113.64")]));
    }

    #[test]
    fn requested_address_honoured_if_free_and_in_a_pool() {
        let mut r = req();
        r.requested = vec![ip("203.0.113.81")];
        r.pool = Some("manual".into());
        assert_eq!(allocate(&r, &pools(), &[]), Ok(vec![ip("203.0.113.81")]));
        r.pool = None;
        assert_eq!(
            allocate(&r, &pools(), &[]),
            Err(AllocError::NotInPool {
                ip: ip("203.0.113.81")
            }),
            "a pool without autoAssign serves only Services naming it"
        );
        r.requested = vec![ip("203.0.113.64")];
        let err = allocate(&r, &pools(), &[holder("a", &["203.0.113.64"], None, 443)]);
        assert_eq!(
            err,
            Err(AllocError::InUse {
                ip: ip("203.0.113.64"),
                by: "app/a".into()
            })
        );
    }

    #[test]
    fn sharing_key_shares_an_address_when_ports_differ() {
        let mut r = req();
        r.sharing.key = Some("k".into());
        let partner = [holder("a", &["203.0.113.65"], Some("k"), 443)];
        assert_eq!(
            allocate(&r, &pools(), &partner),
            Ok(vec![ip("203.0.113.65")])
        );
        let clash = [holder("a", &["203.0.113.65"], Some("k"), 80)];
        assert_eq!(allocate(&r, &pools(), &clash), Ok(vec![ip("203.0.113.64")]));
    }

    #[test]
    fn dual_stack_and_missing_pools() {
        let mut r = req();
        r.families = vec![Family::V6, Family::V4];
        assert_eq!(
            allocate(&r, &pools(), &[]),
            Ok(vec![ip("2001:db8:100:64::"), ip("203.0.113.64")])
        );
        r.pool = Some("manual".into());
        assert_eq!(
            allocate(&r, &pools(), &[]).unwrap_err().reason(),
            "NoPool",
            "the manual pool has no IPv6"
        );
        assert_eq!(allocate(&req(), &[], &[]).unwrap_err().reason(), "NoPool");
    }

    #[test]
    fn usage_counts_distinct_held_addresses_per_pool() {
        let holders = [
            holder("a", &["203.0.113.64"], Some("k"), 80),
            holder("b", &["203.0.113.64"], Some("k"), 443),
        ];
        let mut big = pool("v6", &["2001:db8:100::/48"], true);
        big.id = "edge1/v6".into();
        let u = usage(&[pools()[0].clone(), big], &holders, &[ip("203.0.113.65")]);
        assert_eq!(
            u,
            vec![
                PoolSample {
                    pool: "edge1/web".into(),
                    used: 2,
                    size: 4
                },
                PoolSample {
                    pool: "edge1/v6".into(),
                    used: 0,
                    size: u64::MAX
                },
            ]
        );
    }

    #[test]
    fn status_keeps_working_addresses_on_failure_and_clears_when_not_served() {
        let now = Time("2026-01-01T00:00:00Z".parse().unwrap());
        let ok = Outcome {
            result: Ok(vec![ip("203.0.113.64")]),
            kept: vec![],
        };
        let first = status(Some(&ok), &OwnedStatus::default(), Some(1), &now);
        assert_eq!(first.addresses(), vec![ip("203.0.113.64")]);
        assert_eq!(first.conditions[0].status, "True");
        let later = Time("2026-01-01T01:00:00Z".parse().unwrap());
        assert_eq!(
            status(Some(&ok), &first, Some(1), &later),
            first,
            "steady: no write"
        );
        let mut r = req();
        r.requested = vec![ip("203.0.113.65")];
        r.current = vec![ip("203.0.113.64")];
        let failed = outcome(
            Ok(r),
            &pools(),
            &[holder("a", &["203.0.113.65"], None, 443)],
        );
        assert_eq!(failed.kept, vec![ip("203.0.113.64")]);
        let kept = status(Some(&failed), &first, Some(2), &later);
        assert_eq!(kept.addresses(), vec![ip("203.0.113.64")]);
        assert_eq!(kept.conditions[0].reason, "AddressInUse");
        assert_eq!(kept.conditions[0].last_transition_time, later);
        assert_eq!(status(None, &kept, Some(2), &later), OwnedStatus::default());
    }
}
