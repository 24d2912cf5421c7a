//! Deterministic rendering of a [`RouterConfig`] into a BIRD 2 configuration.
//!
//! The same input always yields byte-identical output: every list is sorted
//! and de-duplicated before it is written. Passwords never appear in the main
//! configuration; they go to a separate secrets file (written 0600 by the
//! [`crate::apply::Applier`]) that the main file `include`s on its own line.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};

use ipnet::IpNet;
use sha2::{Digest, Sha256};

use crate::model::{
    AdminState, Blackhole, Community, Family, ImportMode, Link, LinkRole, MaxPrefixAction,
    RouterConfig, ServiceRoute,
};
use crate::names;
use crate::validate::{ValidationErrors, validate};

/// The time format BIRD uses for protocol, route and base timestamps, chosen so
/// that [`crate::status`] can parse them: `2024-05-01T12:00:00.123+0000`.
pub const BIRD_TIME_FORMAT: &str = "%FT%T.%3f%z";

/// Default file name of the secrets file, next to the main configuration.
pub const DEFAULT_SECRETS_FILE: &str = "groundwork-secrets.conf";

/// BFD timers used for every BFD-enabled link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdTimers {
    /// Minimum receive interval in milliseconds.
    pub min_rx_ms: u32,
    /// Minimum transmit interval in milliseconds.
    pub min_tx_ms: u32,
    /// Detection multiplier.
    pub multiplier: u8,
}

impl Default for BfdTimers {
    fn default() -> Self {
        Self {
            min_rx_ms: 100,
            min_tx_ms: 100,
            multiplier: 3,
        }
    }
}

/// Knobs of the renderer that are not part of the routing intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderOptions {
    /// File name (relative to the main configuration's directory) of the
    /// secrets file. It must not contain `"`.
    pub secrets_file: String,
    /// Where BIRD logs: `None` leaves BIRD's default (syslog), `Some(path)` logs to that file.
    pub log_file: Option<String>,
    /// BFD timers.
    pub bfd: BfdTimers,
    /// `connect retry time` in seconds.
    pub connect_retry_s: u16,
    /// `error wait time` bounds in seconds (min, max).
    pub error_wait_s: (u16, u16),
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            secrets_file: DEFAULT_SECRETS_FILE.to_string(),
            log_file: None,
            bfd: BfdTimers::default(),
            connect_retry_s: 5,
            error_wait_s: (5, 60),
        }
    }
}

/// A rendered configuration: the main file (safe to log and hash) and the
/// secrets file (never logged).
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedConfig {
    /// The main BIRD configuration; contains no secrets.
    pub main: String,
    /// The secrets file content (`define` lines with passwords).
    pub secrets: String,
    /// The secrets file name the main configuration includes.
    pub secrets_file: String,
    /// Names of the BGP protocols the configuration defines, sorted.
    pub bgp_protocols: Vec<String>,
}

impl fmt::Debug for RenderedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderedConfig")
            .field("main", &self.main)
            .field("secrets", &"<redacted>")
            .field("secrets_file", &self.secrets_file)
            .field("bgp_protocols", &self.bgp_protocols)
            .finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

impl RenderedConfig {
    /// SHA-256 (hex) of the secrets file alone: safe to log.
    pub fn secrets_hash(&self) -> String {
        hex(&Sha256::digest(self.secrets.as_bytes()))
    }

    /// SHA-256 (hex) over the main configuration and the secrets file's hash:
    /// changes whenever anything BIRD would read changes, without the hash
    /// input ever containing a secret in clear.
    pub fn config_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.main.as_bytes());
        h.update(b"\0secrets:");
        h.update(self.secrets_file.as_bytes());
        h.update(b"\0");
        h.update(self.secrets_hash().as_bytes());
        hex(&h.finalize())
    }
}

/// Validates and renders a configuration with default options.
pub fn render(cfg: &RouterConfig) -> Result<RenderedConfig, ValidationErrors> {
    render_with(cfg, &RenderOptions::default())
}

/// Validates and renders a configuration.
pub fn render_with(
    cfg: &RouterConfig,
    opts: &RenderOptions,
) -> Result<RenderedConfig, ValidationErrors> {
    validate(cfg)?;
    let mut links: Vec<&Link> = cfg.links.iter().collect();
    links.sort_by(|a, b| a.name.cmp(&b.name));

    let mut out = String::new();
    let mut bgp_protocols = Vec::new();
    let o = &mut out;
    line(
        o,
        "# Rendered by groundwork (routing crate). Do not edit: changes are overwritten.",
    );
    line(o, "");
    line(o, &format!("router id {};", cfg.router_id));
    for kind in ["base", "log", "protocol", "route"] {
        line(o, &format!("timeformat {kind} \"{BIRD_TIME_FORMAT}\";"));
    }
    if let Some(log) = &opts.log_file {
        line(o, &format!("log \"{}\" all;", escape(log)));
    }
    line(o, "");
    line(o, "# Passwords (define lines), kept out of this file.");
    line(o, &format!("include \"{}\";", escape(&opts.secrets_file)));
    line(o, "");
    line(o, &format!("define GW_LOCAL_ASN = {};", cfg.local_asn));
    line(o, "");
    line(o, &format!("protocol device {} {{", names::DEVICE_PROTOCOL));
    // Netlink keeps interfaces current; the periodic scan heals a device
    // protocol that was replaced by a reconfiguration (it starts empty).
    line(o, "  scan time 10;");
    line(o, "}");

    render_bfd(o, &links, opts);
    render_statics(o, cfg);
    render_bogons(o, &links);

    for link in &links {
        for family in link.families() {
            bgp_protocols.push(render_link(o, cfg, link, family, opts));
        }
    }
    bgp_protocols.sort();

    let mut secrets = String::new();
    line(
        &mut secrets,
        "# Rendered by groundwork: BGP passwords. Mode 0600, never log.",
    );
    for link in &links {
        if let Some(pw) = &link.password {
            line(
                &mut secrets,
                &format!(
                    "define {} = \"{}\";",
                    names::password_symbol(&link.name),
                    pw.expose()
                ),
            );
        }
    }
    Ok(RenderedConfig {
        main: out,
        secrets,
        secrets_file: opts.secrets_file.clone(),
        bgp_protocols,
    })
}

fn line(out: &mut String, s: &str) {
    out.push_str(s);
    out.push('\n');
}

/// Escapes a string for a BIRD double-quoted literal.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn render_bfd(o: &mut String, links: &[&Link], opts: &RenderOptions) {
    if !links.iter().any(|l| l.bfd) {
        return;
    }
    let t = opts.bfd;
    let timers = format!(
        "min rx interval {} ms; min tx interval {} ms; multiplier {};",
        t.min_rx_ms, t.min_tx_ms, t.multiplier
    );
    line(o, "");
    line(o, &format!("protocol bfd {} {{", names::BFD_PROTOCOL));
    line(o, &format!("  interface \"*\" {{ {timers} }};"));
    line(o, &format!("  multihop {{ {timers} }};"));
    line(o, "}");
}

fn by_family(nets: impl IntoIterator<Item = IpNet>, family: Family) -> Vec<IpNet> {
    let set: BTreeSet<IpNet> = nets
        .into_iter()
        .filter(|n| Family::of(n) == family)
        .collect();
    set.into_iter().collect()
}

fn net_set(nets: &[IpNet]) -> String {
    let items: Vec<String> = nets.iter().map(ToString::to_string).collect();
    format!("[ {} ]", items.join(", "))
}

fn originated(cfg: &RouterConfig) -> impl Iterator<Item = IpNet> + '_ {
    cfg.own_prefixes.iter().copied().chain(
        cfg.links
            .iter()
            .flat_map(|l| l.export.prefixes.iter().copied()),
    )
}

fn render_statics(o: &mut String, cfg: &RouterConfig) {
    for family in [Family::V4, Family::V6] {
        let own = by_family(originated(cfg), family);
        if !own.is_empty() {
            line(o, "");
            line(
                o,
                "# Our own prefixes (and announced more-specifics), originated as unreachable.",
            );
            line(
                o,
                &format!("protocol static {} {{", names::own_static(family)),
            );
            line(o, &format!("  {};", family.channel()));
            for net in &own {
                line(o, &format!("  route {net} unreachable;"));
            }
            line(o, "}");
        }
        let bh = by_family(cfg.blackholes.iter().map(|b| b.prefix), family);
        render_service_routes(o, cfg, family);
        if !bh.is_empty() {
            line(o, "");
            line(o, "# Remotely triggered blackholes (RTBH).");
            line(
                o,
                &format!("protocol static {} {{", names::blackhole_static(family)),
            );
            line(o, &format!("  {};", family.channel()));
            for net in &bh {
                line(o, &format!("  route {net} blackhole;"));
            }
            line(o, "}");
        }
    }
}

/// The service routes of `family` that no blackhole overrides, by prefix.
fn service_routes(cfg: &RouterConfig, family: Family) -> Vec<&ServiceRoute> {
    let mut v: Vec<&ServiceRoute> = cfg
        .service_routes
        .iter()
        .filter(|r| Family::of(&r.prefix) == family)
        .filter(|r| !cfg.blackholes.iter().any(|b| b.prefix == r.prefix))
        .collect();
    v.sort_by_key(|r| r.prefix);
    v
}

/// The Service addresses as multipath static routes toward the nodes, and a kernel protocol
/// that installs exactly those into the router's forwarding table (ECMP). Nothing is written
/// when there are none, so configurations without Services stay as they were.
fn render_service_routes(o: &mut String, cfg: &RouterConfig, family: Family) {
    let routes = service_routes(cfg, family);
    if routes.is_empty() {
        return;
    }
    let proto = names::service_static(family);
    line(o, "");
    line(
        o,
        "# LoadBalancer Service addresses, routed to the nodes that serve them (ECMP).",
    );
    line(o, &format!("protocol static {proto} {{"));
    line(o, &format!("  {};", family.channel()));
    for route in routes {
        let hops: BTreeSet<_> = route.next_hops.iter().collect();
        let vias: Vec<String> = hops.iter().map(|h| format!("via {h}")).collect();
        line(o, &format!("  route {} {};", route.prefix, vias.join(" ")));
    }
    line(o, "}");
    line(o, "");
    line(o, &format!("protocol kernel {} {{", names::kernel(family)));
    line(o, "  merge paths on;");
    line(o, &format!("  {} {{", family.channel()));
    line(o, "    import none;");
    line(o, &format!("    export where proto = \"{proto}\";"));
    line(o, "  };");
    line(o, "}");
}

const BOGONS_V4: &[&str] = &[
    "0.0.0.0/8+",
    "10.0.0.0/8+",
    "100.64.0.0/10+",
    "127.0.0.0/8+",
    "169.254.0.0/16+",
    "172.16.0.0/12+",
    "192.0.0.0/24+",
    "192.0.2.0/24+",
    "192.168.0.0/16+",
    "198.18.0.0/15+",
    "198.51.100.0/24+",
    "203.0.113.0/24+",
    "224.0.0.0/4+",
    "240.0.0.0/4+",
];

const BOGONS_V6: &[&str] = &[
    "::/8+",
    "0100::/64+",
    "2001:2::/48+",
    "2001:10::/28+",
    "2001:db8::/32+",
    "2002::/16+",
    "3ffe::/16+",
    "fc00::/7+",
    "fe80::/10+",
    "fec0::/10+",
    "ff00::/8+",
];

fn render_bogons(o: &mut String, links: &[&Link]) {
    let used = |f: Family| {
        links.iter().any(|l| {
            l.import.bogon_filter
                && matches!(l.import.mode, ImportMode::Full | ImportMode::PrefixList)
                && l.families().contains(&f)
        })
    };
    let asns = "[ 0, 23456, 64496..131071, 4200000000..4294967295 ]";
    for (family, list, min, max) in [
        (Family::V4, BOGONS_V4, 8, 24),
        (Family::V6, BOGONS_V6, 16, 48),
    ] {
        if !used(family) {
            continue;
        }
        line(o, "");
        line(o, &format!("function gw_bogon_{}() {{", family.suffix()));
        line(
            o,
            &format!("  if net ~ [ {} ] then return true;", list.join(", ")),
        );
        line(
            o,
            &format!("  if net.len < {min} || net.len > {max} then return true;"),
        );
        line(o, &format!("  if bgp_path ~ {asns} then return true;"));
        line(o, "  return false;");
        line(o, "}");
    }
}

fn community_stmt(c: &Community) -> String {
    match c {
        Community::Standard(a, b) => format!("bgp_community.add(({a},{b}));"),
        Community::Large(a, b, c) => format!("bgp_large_community.add(({a},{b},{c}));"),
    }
}

fn sorted_communities(cs: impl IntoIterator<Item = Community>) -> Vec<Community> {
    let set: BTreeSet<Community> = cs.into_iter().collect();
    set.into_iter().collect()
}

fn blackholes_for<'a>(cfg: &'a RouterConfig, link: &Link, family: Family) -> Vec<&'a Blackhole> {
    let mut v: Vec<&Blackhole> = cfg
        .blackholes
        .iter()
        .filter(|b| Family::of(&b.prefix) == family)
        .filter(|b| b.links.is_empty() || b.links.contains(&link.name))
        .collect();
    v.sort_by_key(|b| b.prefix);
    v.dedup_by_key(|b| b.prefix);
    v
}

fn render_link(
    out: &mut String,
    cfg: &RouterConfig,
    link: &Link,
    family: Family,
    opts: &RenderOptions,
) -> String {
    let proto = names::protocol(&link.name, family);
    let import_filter = format!("{proto}_import");
    let export_filter = format!("{proto}_export");
    let drain = link.admin_state == AdminState::Drain;

    // Import filter (none at all for ImportMode::None: the channel says `import none`).
    if link.import.mode != ImportMode::None {
        render_import_filter(out, cfg, link, family, &import_filter);
    }

    // Export filter.
    let body = &mut String::new();
    for bh in blackholes_for(cfg, link, family) {
        line(
            body,
            &format!(
                "  if source = RTS_STATIC && proto = \"{}\" && net = {} then {{",
                names::blackhole_static(family),
                bh.prefix
            ),
        );
        let cs = sorted_communities(
            [Community::BLACKHOLE, Community::NO_EXPORT]
                .into_iter()
                .chain(bh.extra_communities.iter().copied()),
        );
        for c in &cs {
            line(body, &format!("    {}", community_stmt(c)));
        }
        line(body, "    accept;");
        line(body, "  }");
    }
    if !service_routes(cfg, family).is_empty() {
        line(
            body,
            &format!(
                "  if source = RTS_STATIC && proto = \"{}\" then {{",
                names::service_static(family)
            ),
        );
        export_attributes(body, link, drain);
    }
    let exports = by_family(link.export.prefixes.iter().copied(), family);
    if !exports.is_empty() {
        line(
            body,
            &format!(
                "  if source = RTS_STATIC && proto = \"{}\" && net ~ {} then {{",
                names::own_static(family),
                net_set(&exports)
            ),
        );
        export_attributes(body, link, drain);
    }
    line(body, "  reject;");
    emit_filter(out, &export_filter, body);

    // The session.
    let (local, peer) = match family {
        Family::V4 => link.ipv4.map(|a| (a.local.to_string(), a.peer.to_string())),
        Family::V6 => link.ipv6.map(|a| (a.local.to_string(), a.peer.to_string())),
    }
    .unwrap_or_default();
    line(out, "");
    line(out, &format!("protocol bgp {proto} {{"));
    let role = match link.role {
        LinkRole::Transit => ("transit", "customer"),
        LinkRole::Peering => ("peering", "peer"),
        LinkRole::RouteServer => ("route server", "rs_client"),
    };
    line(
        out,
        &format!("  description \"{} ({})\";", escape(&link.name), role.0),
    );
    if link.admin_state == AdminState::Down {
        line(out, "  disabled;");
    }
    line(out, &format!("  local {local} as {};", cfg.local_asn));
    line(out, &format!("  neighbor {peer} as {};", link.peer_asn));
    line(out, &format!("  local role {};", role.1));
    match link.multihop {
        Some(ttl) => line(out, &format!("  multihop {ttl};")),
        None => line(out, "  direct;"),
    }
    line(out, &format!("  hold time {};", link.hold_time));
    line(out, &format!("  keepalive time {};", link.keepalive));
    line(out, "  connect delay time 1;");
    line(
        out,
        &format!("  connect retry time {};", opts.connect_retry_s),
    );
    line(
        out,
        &format!(
            "  error wait time {}, {};",
            opts.error_wait_s.0, opts.error_wait_s.1
        ),
    );
    line(
        out,
        &format!(
            "  graceful restart {};",
            if link.graceful_restart { "on" } else { "off" }
        ),
    );
    if link.bfd {
        line(out, "  bfd on;");
    }
    if link.password.is_some() {
        line(
            out,
            &format!("  password {};", names::password_symbol(&link.name)),
        );
    }
    line(out, &format!("  {} {{", family.channel()));
    if link.import.mode == ImportMode::None {
        line(out, "    import none;");
    } else {
        line(out, &format!("    import filter {import_filter};"));
    }
    line(out, &format!("    export filter {export_filter};"));
    if let Some(mp) = link.max_prefix {
        let action = match mp.action {
            MaxPrefixAction::Disable => "disable",
            MaxPrefixAction::Restart => "restart",
            MaxPrefixAction::Warn => "warn",
            MaxPrefixAction::Block => "block",
        };
        line(
            out,
            &format!("    import limit {} action {action};", mp.limit),
        );
    }
    line(out, "  };");
    line(out, "}");
    proto
}

/// The body of an export clause: the link's communities (plus GRACEFUL_SHUTDOWN while
/// draining), its prepends, accept.
fn export_attributes(body: &mut String, link: &Link, drain: bool) {
    let extra = drain.then_some(Community::GRACEFUL_SHUTDOWN);
    let cs = sorted_communities(link.export.communities.iter().copied().chain(extra));
    for c in &cs {
        line(body, &format!("    {}", community_stmt(c)));
    }
    for _ in 0..link.effective_prepend() {
        line(body, "    bgp_path.prepend(GW_LOCAL_ASN);");
    }
    line(body, "    accept;");
    line(body, "  }");
}

fn render_import_filter(
    o: &mut String,
    cfg: &RouterConfig,
    link: &Link,
    family: Family,
    import_filter: &str,
) {
    let drain = link.admin_state == AdminState::Drain;
    let out = o;
    let o = &mut String::new();
    let own = by_family(cfg.own_prefixes.iter().copied(), family);
    if !own.is_empty() {
        let plus: Vec<String> = own.iter().map(|n| format!("{n}+")).collect();
        line(
            o,
            &format!("  if net ~ [ {} ] then reject;", plus.join(", ")),
        );
    }
    match link.import.mode {
        ImportMode::DefaultOnly => {
            let default = match family {
                Family::V4 => "0.0.0.0/0",
                Family::V6 => "::/0",
            };
            line(o, &format!("  if net != {default} then reject;"));
        }
        ImportMode::Full => {
            if link.import.bogon_filter {
                line(
                    o,
                    &format!("  if gw_bogon_{}() then reject;", family.suffix()),
                );
            }
        }
        ImportMode::PrefixList => {
            if link.import.bogon_filter {
                line(
                    o,
                    &format!("  if gw_bogon_{}() then reject;", family.suffix()),
                );
            }
            let list = by_family(link.import.prefixes.iter().copied(), family);
            if list.is_empty() {
                line(o, "  reject;");
            } else {
                line(
                    o,
                    &format!("  if ! (net ~ {}) then reject;", net_set(&list)),
                );
            }
        }
        ImportMode::None => line(o, "  reject;"),
    }
    let local_pref = if drain {
        0
    } else {
        link.effective_local_pref()
    };
    line(o, &format!("  bgp_local_pref = {local_pref};"));
    line(o, "  if (65535,0) ~ bgp_community then bgp_local_pref = 0;");
    line(o, "  accept;");
    emit_filter(out, import_filter, o);
}

/// Writes a filter whose first statement assigns a revision number derived
/// from the body. BIRD 2.0.12 does not notice a change that only touches a
/// prefix set when it compares filters on `configure`, so without this an
/// added export prefix would stay filtered with the old set. The revision
/// makes every textual change a change BIRD sees.
fn emit_filter(out: &mut String, name: &str, body: &str) {
    let digest = Sha256::digest(body.as_bytes());
    let rev = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) & 0x7fff_ffff;
    line(out, "");
    line(out, &format!("filter {name}"));
    line(out, "int gw_rev;");
    line(out, "{");
    line(out, &format!("  gw_rev = {rev};"));
    out.push_str(body);
    line(out, "}");
}
