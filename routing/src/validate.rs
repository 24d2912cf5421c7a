//! Pure validation of a [`RouterConfig`] before anything is rendered.
//!
//! Every error has a stable CamelCase [`ValidationError::reason`] that the edge
//! daemon can put into a Condition.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{Link, RouterConfig};
use crate::names;

/// One thing wrong with a [`RouterConfig`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// ASN 0 and 23456 (AS_TRANS) cannot be used.
    #[error("{what} ASN {asn} is reserved and cannot be used")]
    InvalidAsn {
        /// `local` or the link name.
        what: String,
        /// The rejected ASN.
        asn: u32,
    },
    /// The router ID is 0.0.0.0.
    #[error("router ID 0.0.0.0 is not allowed")]
    InvalidRouterId,
    /// A prefix string could not be parsed (bad syntax, length beyond /32 or /128).
    #[error("invalid prefix {input:?}: {message}")]
    InvalidPrefix {
        /// The rejected text.
        input: String,
        /// Why.
        message: String,
    },
    /// A prefix has host bits set (203.0.113.5/24).
    #[error("prefix {prefix} has host bits set (did you mean {}?)", prefix.trunc())]
    PrefixNotCanonical {
        /// The rejected prefix.
        prefix: IpNet,
    },
    /// A link name is not a DNS-1123 label.
    #[error(
        "link name {name:?} is not a DNS-1123 label (lowercase letters, digits and '-', at most 63)"
    )]
    InvalidLinkName {
        /// The rejected name.
        name: String,
    },
    /// Two links have the same name (or names that map to the same BIRD name).
    #[error("links {first:?} and {second:?} have the same (sanitized) name")]
    DuplicateLinkName {
        /// One link.
        first: String,
        /// The other.
        second: String,
    },
    /// Two links point at the same neighbor address.
    #[error("links {first:?} and {second:?} both peer with {address}")]
    DuplicatePeerAddress {
        /// The shared address.
        address: IpAddr,
        /// One link.
        first: String,
        /// The other.
        second: String,
    },
    /// A link has neither IPv4 nor IPv6 addresses.
    #[error("link {link:?} has no IPv4 or IPv6 session addresses")]
    NoPeerAddress {
        /// The link.
        link: String,
    },
    /// Hold/keepalive timers BIRD would refuse.
    #[error(
        "link {link:?}: hold time {hold} s / keepalive {keepalive} s invalid (hold 0 or >= 3, keepalive below hold)"
    )]
    InvalidTimers {
        /// The link.
        link: String,
        /// Hold time.
        hold: u16,
        /// Keepalive.
        keepalive: u16,
    },
    /// Multihop TTL of 0.
    #[error("link {link:?}: multihop TTL must be 1-255")]
    InvalidMultihop {
        /// The link.
        link: String,
    },
    /// A password BIRD or the kernel cannot take (quotes, backslashes, control characters, > 80 bytes).
    #[error("link {link:?}: password must be 1-80 printable characters without '\"' or '\\'")]
    InvalidPassword {
        /// The link.
        link: String,
    },
    /// A max-prefix limit of 0.
    #[error("link {link:?}: max-prefix limit must be at least 1")]
    InvalidMaxPrefix {
        /// The link.
        link: String,
    },
    /// An export prefix outside our own prefixes.
    #[error("link {link:?}: export prefix {prefix} is not inside our own prefixes")]
    ExportPrefixNotOwned {
        /// The link.
        link: String,
        /// The prefix.
        prefix: IpNet,
    },
    /// A blackhole outside our own prefixes.
    #[error("blackhole {prefix} is not inside our own prefixes")]
    BlackholeNotOwned {
        /// The prefix.
        prefix: IpNet,
    },
    /// A blackhole that is not a /32 or /128.
    #[error("blackhole {prefix} is not a host route (/32 or /128)")]
    BlackholeNotHostRoute {
        /// The prefix.
        prefix: IpNet,
    },
    /// A blackhole naming a link that does not exist.
    #[error("blackhole {prefix} names unknown link {link:?}")]
    UnknownLink {
        /// The prefix.
        prefix: IpNet,
        /// The unknown link name.
        link: String,
    },
    /// A service route that is not a /32 or /128 inside our own prefixes.
    #[error("service address {prefix} is not a host route inside our own prefixes")]
    ServiceNotOwned {
        /// The prefix.
        prefix: IpNet,
    },
    /// A service route without a next hop, or with one of the other family.
    #[error("service address {prefix} needs next hops of its own family (got {next_hops:?})")]
    InvalidNextHops {
        /// The prefix.
        prefix: IpNet,
        /// The next hops given.
        next_hops: Vec<IpAddr>,
    },
    /// Two service routes for one prefix (shared addresses must be merged first).
    #[error("service address {prefix} appears twice")]
    DuplicateServiceRoute {
        /// The prefix.
        prefix: IpNet,
    },
}

impl ValidationError {
    /// Stable CamelCase reason, for Conditions and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ValidationError::InvalidAsn { .. } => "InvalidAsn",
            ValidationError::InvalidRouterId => "InvalidRouterId",
            ValidationError::InvalidPrefix { .. } => "InvalidPrefix",
            ValidationError::PrefixNotCanonical { .. } => "PrefixNotCanonical",
            ValidationError::InvalidLinkName { .. } => "InvalidLinkName",
            ValidationError::DuplicateLinkName { .. } => "DuplicateLinkName",
            ValidationError::DuplicatePeerAddress { .. } => "DuplicatePeerAddress",
            ValidationError::NoPeerAddress { .. } => "NoPeerAddress",
            ValidationError::InvalidTimers { .. } => "InvalidTimers",
            ValidationError::InvalidMultihop { .. } => "InvalidMultihop",
            ValidationError::InvalidPassword { .. } => "InvalidPassword",
            ValidationError::InvalidMaxPrefix { .. } => "InvalidMaxPrefix",
            ValidationError::ExportPrefixNotOwned { .. } => "ExportPrefixNotOwned",
            ValidationError::BlackholeNotOwned { .. } => "BlackholeNotOwned",
            ValidationError::BlackholeNotHostRoute { .. } => "BlackholeNotHostRoute",
            ValidationError::UnknownLink { .. } => "UnknownLink",
            ValidationError::ServiceNotOwned { .. } => "ServiceNotOwned",
            ValidationError::InvalidNextHops { .. } => "InvalidNextHops",
            ValidationError::DuplicateServiceRoute { .. } => "DuplicateServiceRoute",
        }
    }
}

/// All problems found in one [`RouterConfig`] (never empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl ValidationErrors {
    /// The reason of the first error (what a single Condition shows).
    pub fn reason(&self) -> &'static str {
        self.0.first().map_or("Invalid", ValidationError::reason)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let msgs: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&msgs.join("; "))
    }
}

impl std::error::Error for ValidationErrors {}

/// Parses a prefix string (`203.0.113.0/24`), rejecting bad syntax, lengths
/// such as /33 and host bits set.
pub fn parse_prefix(input: &str) -> Result<IpNet, ValidationError> {
    let net: IpNet = input.trim().parse().map_err(|e: ipnet::AddrParseError| {
        ValidationError::InvalidPrefix {
            input: input.to_string(),
            message: e.to_string(),
        }
    })?;
    check_canonical(net)?;
    Ok(net)
}

fn check_canonical(net: IpNet) -> Result<(), ValidationError> {
    if net.trunc() != net {
        return Err(ValidationError::PrefixNotCanonical { prefix: net });
    }
    Ok(())
}

fn check_asn(what: &str, asn: u32) -> Result<(), ValidationError> {
    if asn == 0 || asn == 23456 {
        return Err(ValidationError::InvalidAsn {
            what: what.to_string(),
            asn,
        });
    }
    Ok(())
}

/// Whether `name` is a DNS-1123 label.
pub fn is_dns1123_label(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn owned_by(own: &[IpNet], net: &IpNet) -> bool {
    own.iter().any(|o| o.contains(net))
}

/// Validates a whole configuration, returning every problem found.
pub fn validate(cfg: &RouterConfig) -> Result<(), ValidationErrors> {
    let mut errs = Vec::new();
    if let Err(e) = check_asn("local", cfg.local_asn) {
        errs.push(e);
    }
    if cfg.router_id.is_unspecified() {
        errs.push(ValidationError::InvalidRouterId);
    }
    for p in &cfg.own_prefixes {
        if let Err(e) = check_canonical(*p) {
            errs.push(e);
        }
    }

    let mut names: BTreeMap<String, &str> = BTreeMap::new();
    let mut peers: BTreeMap<IpAddr, &str> = BTreeMap::new();
    for link in &cfg.links {
        validate_link(cfg, link, &mut errs);
        if let Some(first) = names.insert(names::sanitize(&link.name), &link.name) {
            errs.push(ValidationError::DuplicateLinkName {
                first: first.to_string(),
                second: link.name.clone(),
            });
        }
        let addrs = link
            .ipv4
            .map(|a| IpAddr::V4(a.peer))
            .into_iter()
            .chain(link.ipv6.map(|a| IpAddr::V6(a.peer)));
        for address in addrs {
            if let Some(first) = peers.insert(address, &link.name) {
                errs.push(ValidationError::DuplicatePeerAddress {
                    address,
                    first: first.to_string(),
                    second: link.name.clone(),
                });
            }
        }
    }

    let link_names: BTreeSet<&str> = cfg.links.iter().map(|l| l.name.as_str()).collect();
    for bh in &cfg.blackholes {
        if bh.prefix.prefix_len() != bh.prefix.max_prefix_len() {
            errs.push(ValidationError::BlackholeNotHostRoute { prefix: bh.prefix });
        } else if !owned_by(&cfg.own_prefixes, &bh.prefix) {
            errs.push(ValidationError::BlackholeNotOwned { prefix: bh.prefix });
        }
        for l in &bh.links {
            if !link_names.contains(l.as_str()) {
                errs.push(ValidationError::UnknownLink {
                    prefix: bh.prefix,
                    link: l.clone(),
                });
            }
        }
    }

    validate_service_routes(cfg, &mut errs);

    if errs.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errs))
    }
}

fn validate_service_routes(cfg: &RouterConfig, errs: &mut Vec<ValidationError>) {
    let mut seen = BTreeSet::new();
    for route in &cfg.service_routes {
        let prefix = route.prefix;
        if prefix.prefix_len() != prefix.max_prefix_len() || !owned_by(&cfg.own_prefixes, &prefix) {
            errs.push(ValidationError::ServiceNotOwned { prefix });
        }
        let family_ok = |hop: &IpAddr| hop.is_ipv4() == matches!(prefix, IpNet::V4(_));
        if route.next_hops.is_empty() || !route.next_hops.iter().all(family_ok) {
            errs.push(ValidationError::InvalidNextHops {
                prefix,
                next_hops: route.next_hops.clone(),
            });
        }
        if !seen.insert(prefix) {
            errs.push(ValidationError::DuplicateServiceRoute { prefix });
        }
    }
}

fn validate_link(cfg: &RouterConfig, link: &Link, errs: &mut Vec<ValidationError>) {
    let name = || link.name.clone();
    if !is_dns1123_label(&link.name) {
        errs.push(ValidationError::InvalidLinkName { name: name() });
    }
    if let Err(e) = check_asn(&link.name, link.peer_asn) {
        errs.push(e);
    }
    if link.ipv4.is_none() && link.ipv6.is_none() {
        errs.push(ValidationError::NoPeerAddress { link: name() });
    }
    let (hold, keepalive) = (link.hold_time, link.keepalive);
    let hold_ok = hold == 0 || hold >= 3;
    let keepalive_ok = if hold == 0 {
        true
    } else {
        keepalive >= 1 && keepalive < hold
    };
    if !hold_ok || !keepalive_ok {
        errs.push(ValidationError::InvalidTimers {
            link: name(),
            hold,
            keepalive,
        });
    }
    if link.multihop == Some(0) {
        errs.push(ValidationError::InvalidMultihop { link: name() });
    }
    if let Some(pw) = &link.password {
        let s = pw.expose();
        let ok = !s.is_empty()
            && s.len() <= 80
            && s.chars().all(|c| c.is_ascii_graphic() || c == ' ')
            && !s.contains(['"', '\\']);
        if !ok {
            errs.push(ValidationError::InvalidPassword { link: name() });
        }
    }
    if link.max_prefix.is_some_and(|m| m.limit == 0) {
        errs.push(ValidationError::InvalidMaxPrefix { link: name() });
    }
    for p in link.import.prefixes.iter().chain(&link.export.prefixes) {
        if let Err(e) = check_canonical(*p) {
            errs.push(e);
        }
    }
    for p in &link.export.prefixes {
        if !owned_by(&cfg.own_prefixes, p) {
            errs.push(ValidationError::ExportPrefixNotOwned {
                link: name(),
                prefix: *p,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use std::net::Ipv4Addr;

    fn link(name: &str, peer: [u8; 4]) -> Link {
        Link {
            name: name.into(),
            role: LinkRole::Transit,
            peer_asn: 64500,
            ipv4: Some(AddressPair {
                local: Ipv4Addr::new(192, 0, 2, 1),
                peer: peer.into(),
            }),
            ipv6: None,
            hold_time: 3,
            keepalive: 1,
            bfd: false,
            multihop: None,
            graceful_restart: false,
            password: None,
            import: ImportPolicy::default(),
            max_prefix: None,
            export: ExportPolicy {
                prefixes: vec!["203.0.113.0/24".parse().unwrap()],
                ..Default::default()
            },
            failover: Failover::Primary,
            admin_state: AdminState::Up,
        }
    }

    fn cfg() -> RouterConfig {
        RouterConfig {
            local_asn: 65000,
            router_id: Ipv4Addr::new(192, 0, 2, 1),
            own_prefixes: vec!["203.0.113.0/24".parse().unwrap()],
            links: vec![link("isp1", [192, 0, 2, 2])],
            blackholes: vec![],
            service_routes: vec![],
        }
    }

    fn reasons(c: &RouterConfig) -> Vec<&'static str> {
        match validate(c) {
            Ok(()) => vec![],
            Err(e) => e.0.iter().map(ValidationError::reason).collect(),
        }
    }

    #[test]
    fn valid_config_passes() {
        assert_eq!(reasons(&cfg()), Vec::<&str>::new());
    }

    #[test]
    fn rejects_reserved_asns() {
        for asn in [0, 23456] {
            let mut c = cfg();
            c.local_asn = asn;
            assert_eq!(reasons(&c), vec!["InvalidAsn"]);
            let mut c = cfg();
            c.links[0].peer_asn = asn;
            assert_eq!(reasons(&c), vec!["InvalidAsn"]);
        }
    }

    #[test]
    fn rejects_export_outside_own_prefixes() {
        let mut c = cfg();
        c.links[0]
            .export
            .prefixes
            .push("198.51.100.0/24".parse().unwrap());
        assert_eq!(reasons(&c), vec!["ExportPrefixNotOwned"]);
        // A more specific of an own prefix is fine.
        let mut c = cfg();
        c.links[0].export.prefixes = vec!["203.0.113.128/25".parse().unwrap()];
        assert!(validate(&c).is_ok());
    }

    #[test]
    fn rejects_bad_service_routes() {
        let route = |prefix: &str, hops: &[&str]| ServiceRoute {
            prefix: prefix.parse().unwrap(),
            next_hops: hops.iter().map(|h| h.parse().unwrap()).collect(),
        };
        let mut c = cfg();
        c.service_routes = vec![
            route("203.0.113.64/32", &["10.20.0.11", "10.20.0.12"]),
            route("203.0.113.65/32", &[]),
            route("203.0.113.66/32", &["2001:db8::1"]),
            route("198.51.100.1/32", &["10.20.0.11"]),
            route("203.0.113.64/28", &["10.20.0.11"]),
            route("203.0.113.64/32", &["10.20.0.13"]),
        ];
        assert_eq!(
            reasons(&c),
            vec![
                "InvalidNextHops",
                "InvalidNextHops",
                "ServiceNotOwned",
                "ServiceNotOwned",
                "DuplicateServiceRoute"
            ]
        );
        c.service_routes.truncate(1);
        assert!(validate(&c).is_ok());
    }

    #[test]
    fn rejects_bad_blackholes() {
        let mut c = cfg();
        c.blackholes.push(Blackhole {
            prefix: "198.51.100.7/32".parse().unwrap(),
            links: vec![],
            extra_communities: vec![],
        });
        c.blackholes.push(Blackhole {
            prefix: "203.0.113.0/25".parse().unwrap(),
            links: vec!["nope".into()],
            extra_communities: vec![],
        });
        assert_eq!(
            reasons(&c),
            vec!["BlackholeNotOwned", "BlackholeNotHostRoute", "UnknownLink"]
        );
    }

    #[test]
    fn rejects_duplicate_peer_and_name() {
        let mut c = cfg();
        c.links.push(link("isp2", [192, 0, 2, 2]));
        assert_eq!(reasons(&c), vec!["DuplicatePeerAddress"]);
        let mut c = cfg();
        c.links.push(link("isp1", [192, 0, 2, 6]));
        assert_eq!(reasons(&c), vec!["DuplicateLinkName"]);
    }

    #[test]
    fn parses_prefixes_strictly() {
        assert_eq!(
            parse_prefix("203.0.113.0/33").unwrap_err().reason(),
            "InvalidPrefix"
        );
        assert_eq!(
            parse_prefix("2001:db8::/129").unwrap_err().reason(),
            "InvalidPrefix"
        );
        assert_eq!(
            parse_prefix("nonsense").unwrap_err().reason(),
            "InvalidPrefix"
        );
        assert_eq!(
            parse_prefix("203.0.113.5/24").unwrap_err().reason(),
            "PrefixNotCanonical"
        );
        assert_eq!(
            parse_prefix("203.0.113.0/24").unwrap().to_string(),
            "203.0.113.0/24"
        );
    }

    #[test]
    fn rejects_bad_link_fields() {
        let mut c = cfg();
        c.links[0].name = "ISP_1".into();
        c.links[0].hold_time = 2;
        c.links[0].multihop = Some(0);
        c.links[0].password = Some(Password::new("a\"b"));
        c.links[0].max_prefix = Some(MaxPrefix {
            limit: 0,
            action: MaxPrefixAction::Disable,
        });
        assert_eq!(
            reasons(&c),
            vec![
                "InvalidLinkName",
                "InvalidTimers",
                "InvalidMultihop",
                "InvalidPassword",
                "InvalidMaxPrefix"
            ]
        );
        let mut c = cfg();
        c.links[0].ipv4 = None;
        assert_eq!(reasons(&c), vec!["NoPeerAddress"]);
    }

    #[test]
    fn password_debug_is_redacted() {
        let mut l = link("isp1", [192, 0, 2, 2]);
        l.password = Some(Password::new("hunter2"));
        assert!(!format!("{l:?}").contains("hunter2"));
    }
}
