//! Pure mapping of the API objects of one border router onto `routing::RouterConfig`.
//!
//! Anything that cannot be rendered safely is left out and reported as a [`Problem`] on the
//! object it came from, so one bad UpstreamLink or BlackholeRoute never stops the others:
//! links and blackholes are added one at a time, in name order, and each addition must pass
//! `routing::validate` together with everything accepted before it (deterministic).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crds::upstream as api;
use crds::{BlackholeRoute, BorderRouter, UpstreamLink};
use ipnet::IpNet;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use routing::{
    AddressPair, AdminState, Blackhole, Community, ExportPolicy, Failover, ImportMode,
    ImportPolicy, Link, LinkRole, MaxPrefix, MaxPrefixAction, Password, RouterConfig, ServiceRoute,
};

use crate::conditions::reasons;
use crate::expiry;
pub use crate::problem::Problem;
use crate::services::{Selection, ServiceKey, ServiceMapping};

/// Default key of the password inside the referenced Secret.
pub const DEFAULT_PASSWORD_KEY: &str = "password";

/// What became of one UpstreamLink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkMapping {
    /// The link is in the configuration.
    pub included: bool,
    /// Why it (or one of its exports) was left out.
    pub problem: Option<Problem>,
    /// A TCP-MD5 password is configured (for the WrongPasswordSuspected diagnosis).
    pub password_set: bool,
    /// BFD is enabled.
    pub bfd: bool,
    /// A max-prefix limit is configured.
    pub max_prefix: bool,
    /// The families with a session (for status polling).
    pub families: Vec<routing::Family>,
}

/// What became of one BlackholeRoute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlackholeMapping {
    /// In the configuration.
    Included,
    /// Left out, with the reason (`Expired`, `BlackholeNotOwned`, ...).
    Excluded(Problem),
}

/// The configuration of one router and what became of every object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// What BIRD should run.
    pub config: RouterConfig,
    /// Every UpstreamLink of the router, by name.
    pub links: BTreeMap<String, LinkMapping>,
    /// Every BlackholeRoute of the router, by name.
    pub blackholes: BTreeMap<String, BlackholeMapping>,
    /// Every LoadBalancer Service with addresses in the router's pools, by `namespace/name`.
    pub services: BTreeMap<ServiceKey, ServiceMapping>,
}

/// Maps the objects of one router. `links` and `blackholes` must already be those whose
/// `routerRef` names `router`; `secrets` are the namespace's Secrets by name; `services` the
/// router's Service addresses and their next hops ([`crate::services::select`]).
pub fn map(
    router: &BorderRouter,
    links: &[UpstreamLink],
    blackholes: &[BlackholeRoute],
    secrets: &BTreeMap<String, Secret>,
    services: &Selection,
    now: Timestamp,
) -> Result<Mapped, Problem> {
    let mut config = router_base(router)?;
    let mut link_out = BTreeMap::new();

    let mut sorted: Vec<&UpstreamLink> = links.iter().collect();
    sorted.sort_by_key(|l| name_of(&l.metadata));
    for ul in sorted {
        let name = name_of(&ul.metadata);
        let spec = &ul.spec;
        let mut mapping = LinkMapping {
            included: false,
            problem: None,
            password_set: spec.bgp.password_secret_ref.is_some(),
            bfd: spec.bgp.bfd,
            max_prefix: spec.bgp.max_prefix.is_some(),
            families: Vec::new(),
        };
        match link(&name, spec, &config.own_prefixes, secrets) {
            Err(p) => mapping.problem = Some(p),
            Ok((link, export_problem)) => {
                let mut candidate = config.clone();
                candidate.links.push(link.clone());
                match routing::validate(&candidate) {
                    Ok(()) => {
                        mapping.families = link.families();
                        config = candidate;
                        mapping.included = true;
                        mapping.problem = export_problem;
                    }
                    Err(e) => mapping.problem = Some(Problem::new(e.reason(), e.to_string())),
                }
            }
        }
        link_out.insert(name, mapping);
    }

    let mut bh_out = BTreeMap::new();
    let mut sorted: Vec<&BlackholeRoute> = blackholes.iter().collect();
    sorted.sort_by_key(|b| name_of(&b.metadata));
    for bh in sorted {
        let name = name_of(&bh.metadata);
        let outcome = blackhole(bh, &mut config, now);
        bh_out.insert(name, outcome);
    }

    let services = service_routes(services, &mut config);

    Ok(Mapped {
        config,
        links: link_out,
        blackholes: bh_out,
        services,
    })
}

/// Adds the Service routes to `config`, one address at a time (in address order), each
/// validated together with everything accepted before it; a Service with a refused address
/// is reported withdrawn with the validation's reason.
fn service_routes(
    selection: &Selection,
    config: &mut RouterConfig,
) -> BTreeMap<ServiceKey, ServiceMapping> {
    let mut refused: BTreeMap<IpNet, Problem> = BTreeMap::new();
    for (prefix, hops) in &selection.routes {
        let mut candidate = config.clone();
        candidate.service_routes.push(ServiceRoute {
            prefix: *prefix,
            next_hops: hops.iter().copied().collect(),
        });
        match routing::validate(&candidate) {
            Ok(()) => *config = candidate,
            Err(e) => {
                refused.insert(*prefix, Problem::new(e.reason(), e.to_string()));
            }
        }
    }
    selection
        .services
        .iter()
        .map(|(key, mapping)| {
            let problem = match mapping {
                ServiceMapping::Routed { prefixes, .. } => {
                    prefixes.iter().find_map(|p| refused.get(p))
                }
                ServiceMapping::Withdrawn(_) => None,
            };
            let mapping = match problem {
                Some(p) => ServiceMapping::Withdrawn(p.clone()),
                None => mapping.clone(),
            };
            (key.clone(), mapping)
        })
        .collect()
}

fn name_of(meta: &kube::api::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// The router's identity and own prefixes, validated.
fn router_base(router: &BorderRouter) -> Result<RouterConfig, Problem> {
    let spec = &router.spec;
    let local_asn = u32::try_from(spec.local_asn).map_err(|_| {
        Problem::new(
            "InvalidAsn",
            format!("localASN {} does not fit 32 bits", spec.local_asn),
        )
    })?;
    let router_id: Ipv4Addr = spec.router_id.parse().map_err(|_| {
        Problem::new(
            "InvalidRouterId",
            format!("routerID {:?} is not an IPv4 address", spec.router_id),
        )
    })?;
    let mut own_prefixes = Vec::new();
    for p in &spec.own_prefixes {
        let net = routing::parse_prefix(p).map_err(|e| Problem::new(e.reason(), e.to_string()))?;
        own_prefixes.push(net);
    }
    let config = RouterConfig {
        local_asn,
        router_id,
        own_prefixes,
        links: Vec::new(),
        blackholes: Vec::new(),
        service_routes: Vec::new(),
    };
    routing::validate(&config).map_err(|e| Problem::new(e.reason(), e.to_string()))?;
    Ok(config)
}

fn invalid(name: &str, what: impl std::fmt::Display) -> Problem {
    Problem::new(reasons::INVALID_SPEC, format!("link {name:?}: {what}"))
}

/// One UpstreamLink as a `routing::Link`. Export prefixes outside `own` are dropped and
/// reported in the second value.
fn link(
    name: &str,
    spec: &api::UpstreamLinkSpec,
    own: &[IpNet],
    secrets: &BTreeMap<String, Secret>,
) -> Result<(Link, Option<Problem>), Problem> {
    let bgp = &spec.bgp;
    let peer_asn = u32::try_from(bgp.peer_asn).map_err(|_| {
        invalid(
            name,
            format!("peerASN {} does not fit 32 bits", bgp.peer_asn),
        )
    })?;
    let ipv4 = bgp
        .ipv4
        .as_ref()
        .map(|a| pair::<Ipv4Addr>(name, a))
        .transpose()?;
    let ipv6 = bgp
        .ipv6
        .as_ref()
        .map(|a| pair::<Ipv6Addr>(name, a))
        .transpose()?;
    let hold_time = u16::try_from(bgp.hold_time_seconds)
        .map_err(|_| invalid(name, "holdTimeSeconds above 65535"))?;
    let keepalive = u16::try_from(bgp.keepalive_seconds)
        .map_err(|_| invalid(name, "keepaliveSeconds above 65535"))?;
    let multihop = bgp
        .multihop
        .map(|m| u8::try_from(m).map_err(|_| invalid(name, "multihop above 255")))
        .transpose()?;
    let password = bgp
        .password_secret_ref
        .as_ref()
        .map(|r| password(name, r, secrets))
        .transpose()?;

    let mut import_prefixes = Vec::new();
    for p in &spec.import.prefixes {
        import_prefixes
            .push(routing::parse_prefix(p).map_err(|e| Problem::new(e.reason(), e.to_string()))?);
    }
    let mut exports = Vec::new();
    let mut not_owned = Vec::new();
    for p in &spec.export.prefixes {
        let net = routing::parse_prefix(p).map_err(|e| Problem::new(e.reason(), e.to_string()))?;
        if own.iter().any(|o| o.contains(&net)) {
            exports.push(net);
        } else {
            not_owned.push(net.to_string());
        }
    }
    let export_problem = (!not_owned.is_empty()).then(|| {
        Problem::new(
            "ExportPrefixNotOwned",
            format!(
                "export prefixes {} are not inside the BorderRouter's own prefixes and are not announced; the rest of the link is applied",
                not_owned.join(", ")
            ),
        )
    });
    let mut communities = Vec::new();
    for c in &spec.export.communities {
        communities.push(c.parse::<Community>().map_err(|e| invalid(name, e))?);
    }
    let prepend = spec
        .export
        .prepend
        .map(|p| u8::try_from(p).map_err(|_| invalid(name, "prepend above 255")))
        .transpose()?;

    let link = Link {
        name: name.to_string(),
        role: match spec.role {
            api::LinkRole::Transit => LinkRole::Transit,
            api::LinkRole::Peering => LinkRole::Peering,
            api::LinkRole::RouteServer => LinkRole::RouteServer,
        },
        peer_asn,
        ipv4,
        ipv6,
        hold_time,
        keepalive,
        bfd: bgp.bfd,
        multihop,
        graceful_restart: bgp.graceful_restart,
        password,
        import: ImportPolicy {
            mode: match spec.import.mode {
                api::ImportMode::DefaultOnly => ImportMode::DefaultOnly,
                api::ImportMode::Full => ImportMode::Full,
                api::ImportMode::PrefixList => ImportMode::PrefixList,
                api::ImportMode::None => ImportMode::None,
            },
            prefixes: import_prefixes,
            bogon_filter: spec.import.bogon_filter,
        },
        max_prefix: bgp.max_prefix.as_ref().map(|m| MaxPrefix {
            limit: m.limit,
            action: match m.action {
                api::MaxPrefixAction::Disable => MaxPrefixAction::Disable,
                api::MaxPrefixAction::Restart => MaxPrefixAction::Restart,
                api::MaxPrefixAction::Warn => MaxPrefixAction::Warn,
                api::MaxPrefixAction::Block => MaxPrefixAction::Block,
            },
        }),
        export: ExportPolicy {
            prefixes: exports,
            communities,
            prepend,
            local_preference: spec.export.local_preference,
        },
        failover: match spec.failover {
            api::FailoverRole::Primary => Failover::Primary,
            api::FailoverRole::Backup => Failover::Backup,
        },
        admin_state: match spec.admin_state {
            api::AdminState::Up => AdminState::Up,
            api::AdminState::Down => AdminState::Down,
            api::AdminState::Drain => AdminState::Drain,
        },
    };
    Ok((link, export_problem))
}

fn pair<A>(name: &str, a: &api::SessionAddresses) -> Result<AddressPair<A>, Problem>
where
    A: std::str::FromStr + Into<IpAddr> + Copy,
{
    let parse = |s: &str, what: &str| {
        s.parse::<A>().map_err(|_| {
            invalid(
                name,
                format!("{what} {s:?} is not an address of this family"),
            )
        })
    };
    Ok(AddressPair {
        local: parse(&a.local_address, "localAddress")?,
        peer: parse(&a.peer_address, "peerAddress")?,
    })
}

fn password(
    name: &str,
    r: &crds::SecretKeyRef,
    secrets: &BTreeMap<String, Secret>,
) -> Result<Password, Problem> {
    let key = r.key.as_deref().unwrap_or(DEFAULT_PASSWORD_KEY);
    let secret = secrets.get(&r.name).ok_or_else(|| {
        Problem::new(
            reasons::SECRET_NOT_FOUND,
            format!("link {name:?}: password Secret {:?} not found", r.name),
        )
    })?;
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| {
            Problem::new(
                reasons::SECRET_KEY_MISSING,
                format!("link {name:?}: Secret {:?} has no key {key:?}", r.name),
            )
        })?;
    let text = String::from_utf8(value).map_err(|_| {
        Problem::new(
            "InvalidPassword",
            format!(
                "link {name:?}: the password in Secret {:?} is not UTF-8",
                r.name
            ),
        )
    })?;
    Ok(Password::new(text.trim_end_matches(['\n', '\r'])))
}

/// Adds one blackhole to `config` when it is live and valid there.
fn blackhole(bh: &BlackholeRoute, config: &mut RouterConfig, now: Timestamp) -> BlackholeMapping {
    let spec = &bh.spec;
    if expiry::is_expired(spec, now) {
        return BlackholeMapping::Excluded(Problem::new(
            reasons::EXPIRED,
            "expiresAt has passed; the blackhole is withdrawn (delete the object when done)",
        ));
    }
    let prefix = match routing::parse_prefix(&spec.prefix) {
        Ok(p) => p,
        Err(e) => return BlackholeMapping::Excluded(Problem::new(e.reason(), e.to_string())),
    };
    let mut links = spec.links.clone();
    links.sort();
    links.dedup();
    let mut candidate = config.clone();
    if let Some(existing) = candidate.blackholes.iter_mut().find(|b| b.prefix == prefix) {
        // Two requests for one prefix: announce on the union of their links.
        if existing.links.is_empty() || links.is_empty() {
            existing.links.clear();
        } else {
            existing.links.extend(links);
            existing.links.sort();
            existing.links.dedup();
        }
    } else {
        candidate.blackholes.push(Blackhole {
            prefix,
            links,
            extra_communities: Vec::new(),
        });
    }
    match routing::validate(&candidate) {
        Ok(()) => {
            *config = candidate;
            BlackholeMapping::Included
        }
        Err(e) => BlackholeMapping::Excluded(Problem::new(e.reason(), e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use k8s_openapi::ByteString;

    fn router() -> BorderRouter {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "BorderRouter",
            "metadata": {"name": "edge1", "namespace": "site"},
            "spec": {"localASN": 65000, "routerID": "192.0.2.1", "ownPrefixes": ["203.0.113.0/24"]}
        }))
        .unwrap()
    }

    fn link(name: &str, peer: &str, exports: &[&str]) -> UpstreamLink {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "UpstreamLink",
            "metadata": {"name": name, "namespace": "site"},
            "spec": {"provider": "isp", "routerRef": "edge1",
                     "bgp": {"peerASN": 64500, "ipv4": {"localAddress": "192.0.2.1", "peerAddress": peer},
                             "passwordSecretRef": {"name": "isp-md5"}},
                     "export": {"prefixes": exports}}
        }))
        .unwrap()
    }

    fn bh(name: &str, prefix: &str, expires: Option<&str>) -> BlackholeRoute {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "BlackholeRoute",
            "metadata": {"name": name, "namespace": "site"},
            "spec": {"prefix": prefix, "routerRef": "edge1", "expiresAt": expires, "reason": "ddos"}
        }))
        .unwrap()
    }

    fn secrets() -> BTreeMap<String, Secret> {
        let mut s = Secret::default();
        s.metadata.name = Some("isp-md5".into());
        s.data = Some([("password".to_string(), ByteString(b"s3cret\n".to_vec()))].into());
        [("isp-md5".to_string(), s)].into()
    }

    fn now() -> Timestamp {
        "2026-06-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn maps_a_link_with_password_and_exports() {
        let m = map(
            &router(),
            &[link("isp1", "192.0.2.2", &["203.0.113.0/24"])],
            &[],
            &secrets(),
            &Selection::default(),
            now(),
        )
        .unwrap();
        assert_eq!(m.config.local_asn, 65000);
        let l = &m.config.links[0];
        assert_eq!(l.name, "isp1");
        assert_eq!(l.password.as_ref().unwrap().expose(), "s3cret");
        assert_eq!(
            l.export.prefixes,
            vec!["203.0.113.0/24".parse::<IpNet>().unwrap()]
        );
        assert!(m.links["isp1"].included && m.links["isp1"].problem.is_none());
        assert!(
            !format!("{m:?}").contains("s3cret"),
            "password leaked into Debug"
        );
    }

    #[test]
    fn export_outside_own_prefixes_is_dropped_with_reason() {
        let m = map(
            &router(),
            &[link(
                "isp1",
                "192.0.2.2",
                &["203.0.113.0/24", "198.51.100.0/24"],
            )],
            &[],
            &secrets(),
            &Selection::default(),
            now(),
        )
        .unwrap();
        assert_eq!(m.config.links[0].export.prefixes.len(), 1);
        let p = m.links["isp1"].problem.as_ref().unwrap();
        assert_eq!(p.reason, "ExportPrefixNotOwned");
        assert!(p.message.contains("198.51.100.0/24"));
    }

    #[test]
    fn missing_secret_excludes_only_that_link() {
        let m = map(
            &router(),
            &[
                link("isp1", "192.0.2.2", &[]),
                link("isp2", "192.0.2.6", &[]),
            ],
            &[],
            &BTreeMap::new(),
            &Selection::default(),
            now(),
        )
        .unwrap();
        assert!(m.config.links.is_empty());
        assert_eq!(
            m.links["isp1"].problem.as_ref().unwrap().reason,
            "SecretNotFound"
        );
        let mut s = secrets();
        s.get_mut("isp-md5").unwrap().data = Some(BTreeMap::new());
        let m = map(
            &router(),
            &[link("isp1", "192.0.2.2", &[])],
            &[],
            &s,
            &Selection::default(),
            now(),
        )
        .unwrap();
        assert_eq!(
            m.links["isp1"].problem.as_ref().unwrap().reason,
            "SecretKeyMissing"
        );
    }

    #[test]
    fn duplicate_peer_keeps_the_first_by_name() {
        let m = map(
            &router(),
            &[
                link("isp2", "192.0.2.2", &[]),
                link("isp1", "192.0.2.2", &[]),
            ],
            &[],
            &secrets(),
            &Selection::default(),
            now(),
        )
        .unwrap();
        assert_eq!(m.config.links.len(), 1);
        assert_eq!(m.config.links[0].name, "isp1");
        assert_eq!(
            m.links["isp2"].problem.as_ref().unwrap().reason,
            "DuplicatePeerAddress"
        );
    }

    #[test]
    fn blackholes_expired_and_not_owned_are_left_out() {
        let bhs = [
            bh("a", "203.0.113.66/32", Some("2026-06-01T13:00:00Z")),
            bh("b", "203.0.113.67/32", Some("2026-06-01T11:00:00Z")),
            bh("c", "198.51.100.1/32", None),
        ];
        let m = map(
            &router(),
            &[link("isp1", "192.0.2.2", &[])],
            &bhs,
            &secrets(),
            &Selection::default(),
            now(),
        )
        .unwrap();
        assert_eq!(m.config.blackholes.len(), 1);
        assert_eq!(m.blackholes["a"], BlackholeMapping::Included);
        let reason = |n: &str| match &m.blackholes[n] {
            BlackholeMapping::Excluded(p) => p.reason,
            BlackholeMapping::Included => "Included",
        };
        assert_eq!(reason("b"), "Expired");
        assert_eq!(reason("c"), "BlackholeNotOwned");
    }

    #[test]
    fn service_routes_are_added_or_reported_withdrawn() {
        let mut selection = Selection::default();
        let hops: std::collections::BTreeSet<IpAddr> = ["10.20.0.11".parse().unwrap()].into();
        for (key, prefix) in [
            ("app/ok", "203.0.113.64/32"),
            ("app/out", "198.51.100.9/32"),
        ] {
            let prefix: IpNet = prefix.parse().unwrap();
            selection.routes.insert(prefix, hops.clone());
            selection.services.insert(
                key.into(),
                ServiceMapping::Routed {
                    prefixes: vec![prefix],
                    next_hops: hops.iter().copied().collect(),
                },
            );
        }
        let m = map(&router(), &[], &[], &secrets(), &selection, now()).unwrap();
        assert_eq!(m.config.service_routes.len(), 1);
        assert_eq!(m.services["app/ok"], selection.services["app/ok"]);
        match &m.services["app/out"] {
            ServiceMapping::Withdrawn(p) => assert_eq!(p.reason, "ServiceNotOwned"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_router_is_an_error() {
        let mut r = router();
        r.spec.own_prefixes = vec!["203.0.113.5/24".into()];
        assert_eq!(
            map(&r, &[], &[], &secrets(), &Selection::default(), now())
                .unwrap_err()
                .reason,
            "PrefixNotCanonical"
        );
    }

    #[test]
    fn deterministic_regardless_of_input_order() {
        let a = [
            link("isp1", "192.0.2.2", &[]),
            link("isp2", "192.0.2.6", &[]),
        ];
        let b = [a[1].clone(), a[0].clone()];
        assert_eq!(
            map(&router(), &a, &[], &secrets(), &Selection::default(), now()).unwrap(),
            map(&router(), &b, &[], &secrets(), &Selection::default(), now()).unwrap()
        );
    }
}
