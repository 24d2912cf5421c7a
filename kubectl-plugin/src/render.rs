//! Pure rendering of Groundwork objects for the terminal, and the patches the plugin sends.
//! Nothing here talks to the API server, so all of it is unit-tested.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crds::{Rack, Server, UpstreamLink};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use serde_json::{Value, json};

use crate::public::{Public, Route};

/// Shown for a value the API does not (yet) report.
const NONE: &str = "-";

/// The merge patch that asks for a server to be powered on or off (`spec.online`).
pub fn power_patch(online: bool) -> Value {
    json!({"spec": {"online": online}})
}

/// The merge patch that requests one reboot (`groundwork.dev/reboot` = a fresh request id).
pub fn reboot_patch(request_id: &str) -> Value {
    json!({"metadata": {"annotations": {crds::annotations::REBOOT: request_id}}})
}

/// A reboot request id that differs from every earlier one: `kubectl-<unix nanoseconds>`.
pub fn reboot_request_id(now: std::time::SystemTime) -> String {
    let nanos = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("kubectl-{nanos}")
}

fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The `Ready` condition's status, or `-` when absent.
fn ready(conditions: Option<&[Condition]>) -> String {
    conditions
        .and_then(|c| condition(c, crds::condition_types::READY))
        .map_or_else(|| NONE.to_string(), |c| c.status.clone())
}

/// The server's lifecycle state as the controller reported it.
pub fn server_state(server: &Server) -> &'static str {
    server
        .status
        .as_ref()
        .and_then(|s| s.state)
        .map_or(NONE, |s| s.as_str())
}

/// Observed power and the desired power, e.g. `On (want off)`.
pub fn server_power(server: &Server) -> String {
    let observed = server
        .status
        .as_ref()
        .and_then(|s| s.power_state)
        .map_or_else(|| NONE.to_string(), |p| format!("{p:?}"));
    let want = if server.spec.online { "on" } else { "off" };
    format!("{observed} (want {want})")
}

fn server_rack(server: &Server) -> Option<&str> {
    server.spec.rack_ref.as_ref().map(|r| r.name.as_str())
}

/// Lays rows out in left-aligned columns separated by two spaces.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `site status`: racks, servers by state, servers, upstream links and the public addresses
/// (which servers carry each) of one namespace.
pub fn render_status(
    namespace: &str,
    racks: &[Rack],
    servers: &[Server],
    links: &[UpstreamLink],
    public: &Public,
) -> String {
    let mut out = format!("Site (namespace) {namespace}\n\nRACKS\n");
    if racks.is_empty() {
        out.push_str("(none)\n");
    } else {
        let rows: Vec<Vec<String>> = racks
            .iter()
            .map(|rack| {
                let members: Vec<&Server> = servers
                    .iter()
                    .filter(|s| server_rack(s) == Some(rack.name_any().as_str()))
                    .collect();
                let used_u: u32 = members
                    .iter()
                    .filter(|s| s.spec.rack_unit.is_some())
                    .map(|s| s.spec.height_u)
                    .sum();
                let declared: u64 = members
                    .iter()
                    .filter_map(|s| s.spec.max_power_watts)
                    .map(u64::from)
                    .sum();
                vec![
                    rack.name_any(),
                    rack.spec.location.summary(),
                    format!("{}/{}U", used_u, rack.spec.height_u),
                    members.len().to_string(),
                    power_summary(declared, rack.spec.power.budget_watts),
                    ready(rack.status.as_ref().map(|s| s.conditions.as_slice())),
                ]
            })
            .collect();
        out.push_str(&table(
            &["NAME", "LOCATION", "USED", "SERVERS", "POWER-W", "READY"],
            &rows,
        ));
    }

    out.push_str("\nSERVERS BY STATE\n");
    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    for server in servers {
        *by_state.entry(server_state(server)).or_default() += 1;
    }
    if by_state.is_empty() {
        out.push_str("(none)\n");
    } else {
        let line: Vec<String> = by_state
            .iter()
            .map(|(state, n)| {
                let state = if *state == NONE {
                    "(unreported)"
                } else {
                    state
                };
                format!("{state}={n}")
            })
            .collect();
        out.push_str(&line.join("  "));
        out.push('\n');
    }

    out.push_str("\nSERVERS\n");
    if servers.is_empty() {
        out.push_str("(none)\n");
    } else {
        let rows: Vec<Vec<String>> = servers
            .iter()
            .map(|s| {
                vec![
                    s.name_any(),
                    server_rack(s).unwrap_or(NONE).to_string(),
                    s.spec
                        .rack_unit
                        .map_or_else(|| NONE.to_string(), |u| format!("U{u}")),
                    server_state(s).to_string(),
                    server_power(s),
                    ready(s.status.as_ref().map(|st| st.conditions.as_slice())),
                ]
            })
            .collect();
        out.push_str(&table(
            &["NAME", "RACK", "U", "STATE", "POWER", "READY"],
            &rows,
        ));
    }

    out.push_str("\nUPSTREAM LINKS\n");
    if links.is_empty() {
        out.push_str("(none)\n");
    } else {
        out.push_str(&links_table(links));
    }

    out.push_str("\nPUBLIC ADDRESSES\n");
    out.push_str(&public_table(public));
    out
}

/// Every routed Service address with the servers carrying it and what its router reports
/// (the links it is announced on), then the Services of the pools that are not routed.
fn public_table(public: &Public) -> String {
    let addresses = match public {
        Public::Unavailable(why) => return format!("not shown: {why}\n"),
        Public::Shown(a) if a.routes.is_empty() && a.withdrawn.is_empty() => {
            return "(none)\n".into();
        }
        Public::Shown(a) => a,
    };
    let rows: Vec<Vec<String>> = addresses
        .routes
        .iter()
        .map(|r| {
            vec![
                r.prefix.addr().to_string(),
                r.service.clone(),
                r.router.clone(),
                r.carriers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                r.announced.as_ref().map_or_else(
                    || NONE.to_string(),
                    |c| format!("{} {}: {}", c.status, c.reason, c.message),
                ),
            ]
        })
        .collect();
    let mut out = if rows.is_empty() {
        String::new()
    } else {
        table(
            &["ADDRESS", "SERVICE", "ROUTER", "SERVERS", "ANNOUNCED"],
            &rows,
        )
    };
    for w in &addresses.withdrawn {
        let _ = writeln!(
            out,
            "{} (router {}): not routed, {}: {}",
            w.service, w.router, w.problem.reason, w.problem.message
        );
    }
    out
}

/// The public addresses one server carries, by Service: `203.0.113.64, 2001:db8::1 (app/web)`.
fn carried(routes: &[&Route]) -> String {
    let mut by_service: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in routes {
        by_service
            .entry(r.service.as_str())
            .or_default()
            .push(r.prefix.addr().to_string());
    }
    by_service
        .iter()
        .map(|(service, addrs)| format!("{} ({service})", addrs.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

fn links_table(links: &[UpstreamLink]) -> String {
    let rows: Vec<Vec<String>> = links
        .iter()
        .map(|l| {
            let status = l.status.as_ref();
            vec![
                l.name_any(),
                l.spec.provider.clone(),
                format!("{:?}", l.spec.role),
                l.spec.router_ref.clone(),
                format!("{:?}", l.spec.admin_state),
                status
                    .and_then(|s| s.session_state.clone())
                    .unwrap_or_else(|| NONE.to_string()),
                status
                    .and_then(|s| s.established_since.as_ref())
                    .map_or_else(|| NONE.to_string(), |t| t.0.to_string()),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "PROVIDER", "ROLE", "ROUTER", "ADMIN", "SESSION", "SINCE",
        ],
        &rows,
    )
}

fn power_summary(declared: u64, budget: u32) -> String {
    if budget == 0 {
        format!("{declared}/-")
    } else {
        format!("{declared}/{budget}")
    }
}

/// `rack NAME`: the elevation, one line per U from the top down, then power and uplinks.
/// Positions come from the Servers' spec (`rackRef`, `rackUnit`, `heightU`), so the picture is
/// right even before the controller has reported; state and power come from their status.
/// A server that is a next hop of public addresses says which (`public: ADDRESS (SERVICE)`).
pub fn render_rack(
    rack: &Rack,
    servers: &[Server],
    links: &[UpstreamLink],
    public: &Public,
) -> String {
    let name = rack.name_any();
    let members: Vec<&Server> = servers
        .iter()
        .filter(|s| server_rack(s) == Some(name.as_str()))
        .collect();
    let height = rack.spec.height_u;
    let mut out = format!(
        "Rack {name} (namespace {}): {height}U, location {}, ready {}\n",
        rack.namespace().unwrap_or_default(),
        rack.spec.location.summary(),
        ready(rack.status.as_ref().map(|s| s.conditions.as_slice())),
    );
    if let Public::Unavailable(why) = public {
        let _ = writeln!(out, "Public addresses not shown: {why}");
    }
    let digits = height.max(1).to_string().len();
    for u in (1..=height).rev() {
        let mut cells: Vec<String> = members
            .iter()
            .filter_map(|s| {
                let bottom = s.spec.rack_unit?;
                let top = crds::rack::top_unit(bottom, s.spec.height_u);
                if u == top {
                    let mut cell = format!(
                        "{}  {}  power {}",
                        s.name_any(),
                        server_state(s),
                        server_power(s)
                    );
                    if let Public::Shown(addresses) = public {
                        let routes = addresses.of_server(&s.name_any());
                        if !routes.is_empty() {
                            let _ = write!(cell, "  public: {}", carried(&routes));
                        }
                    }
                    Some(cell)
                } else if (bottom..top).contains(&u) {
                    Some(format!("^ {}", s.name_any()))
                } else {
                    None
                }
            })
            .collect();
        cells.extend(
            rack.spec
                .tor_switches
                .iter()
                .filter(|t| t.rack_unit == Some(u))
                .map(|t| format!("[switch] {}", t.name)),
        );
        let cell = match cells.len() {
            0 => String::new(),
            1 => cells.remove(0),
            _ => format!("CONFLICT: {}", cells.join(" | ")),
        };
        let line = format!("U{u:0digits$} | {cell}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let unplaced: Vec<String> = members
        .iter()
        .filter(|s| {
            s.spec
                .rack_unit
                .is_none_or(|b| crds::rack::top_unit(b, s.spec.height_u) > height)
        })
        .map(|s| s.name_any())
        .collect();
    if !unplaced.is_empty() {
        let _ = writeln!(
            out,
            "Not placed (no rackUnit, or above U{height}): {}",
            unplaced.join(", ")
        );
    }

    let declared: u64 = members
        .iter()
        .filter_map(|s| s.spec.max_power_watts)
        .map(u64::from)
        .sum();
    let budget = rack.spec.power.budget_watts;
    if budget == 0 {
        let _ = writeln!(
            out,
            "\nPower: {declared} W declared (sum of maxPowerWatts), no budget declared"
        );
    } else {
        let pct = declared * 100 / u64::from(budget);
        let over = if declared > u64::from(budget) {
            "  OVER BUDGET"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "\nPower: {declared} W declared of {budget} W budget ({pct}%){over}"
        );
    }
    for feed in &rack.spec.power.feeds {
        let _ = writeln!(
            out,
            "  feed {}{}{}",
            feed.name,
            feed.circuit
                .as_ref()
                .map(|c| format!(" circuit {c}"))
                .unwrap_or_default(),
            feed.max_watts
                .map(|w| format!(" max {w} W"))
                .unwrap_or_default()
        );
    }

    out.push_str("\nUplinks (top-of-rack switches):\n");
    if rack.spec.tor_switches.is_empty() {
        out.push_str("  (none declared)\n");
    }
    for tor in &rack.spec.tor_switches {
        let _ = writeln!(
            out,
            "  {}{}{}{}",
            tor.name,
            tor.model
                .as_ref()
                .map(|m| format!(" model {m}"))
                .unwrap_or_default(),
            tor.management_address
                .as_ref()
                .map(|a| format!(" mgmt {a}"))
                .unwrap_or_default(),
            tor.rack_unit
                .map(|u| format!(" at U{u}"))
                .unwrap_or_default(),
        );
    }
    out.push_str("\nSite upstream links:\n");
    if links.is_empty() {
        out.push_str("  (none)\n");
    } else {
        for line in links_table(links).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::public::{Addresses, Carrier, Withdrawn};
    use serde_json::json;

    fn rack() -> Rack {
        serde_json::from_value(json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "Rack",
            "metadata": {"name": "r1", "namespace": "site"},
            "spec": {
                "location": {"site": "fra1", "room": "hall-1"},
                "heightU": 6,
                "power": {"budgetWatts": 1000, "feeds": [{"name": "A", "maxWatts": 500}]},
                "torSwitches": [{"name": "tor-a", "rackUnit": 6, "managementAddress": "10.0.0.1"}],
                "networks": {"provisioning": {"subnet": "10.1.0.0/24"}}
            },
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled",
                "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap()
    }

    fn server(name: &str, unit: Option<u32>, height: u32, watts: u32, status: Value) -> Server {
        let mut spec = json!({"rackRef": {"name": "r1"}, "heightU": height, "online": true,
            "maxPowerWatts": watts});
        if let Some(u) = unit {
            spec["rackUnit"] = json!(u);
        }
        serde_json::from_value(json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "Server",
            "metadata": {"name": name, "namespace": "site"},
            "spec": spec, "status": status
        }))
        .unwrap()
    }

    fn link() -> UpstreamLink {
        serde_json::from_value(json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "UpstreamLink",
            "metadata": {"name": "isp-a", "namespace": "site"},
            "spec": {"provider": "ISP A", "routerRef": "edge-1",
                "bgp": {"peerASN": 64500, "peerAddress": "192.0.2.1"}},
            "status": {"sessionState": "Established", "establishedSince": "2026-01-01T00:00:00Z"}
        }))
        .unwrap_or_else(|e| panic!("link fixture: {e}"))
    }

    /// No public addresses.
    fn none() -> Public {
        Public::Shown(Addresses::default())
    }

    fn announced(message: &str) -> Condition {
        serde_json::from_value(json!({"type": "edge1.border.groundwork.dev/Announced",
            "status": "True", "reason": "Announced", "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z"}))
        .unwrap()
    }

    /// `a` carries 203.0.113.64 and 2001:db8::1 of app/web and, with `b`, 203.0.113.66 of
    /// app/api; app/idle is not routed.
    fn public() -> Public {
        let route = |prefix: &str, service: &str, carriers: &[&str], ann: Option<&str>| Route {
            prefix: prefix.parse().unwrap(),
            service: service.into(),
            router: "edge1".into(),
            carriers: carriers
                .iter()
                .map(|c| match c.strip_prefix("node/") {
                    Some(n) => Carrier::Node(n.into()),
                    None => Carrier::Server(c.to_string()),
                })
                .collect(),
            announced: ann.map(announced),
        };
        Public::Shown(Addresses {
            routes: vec![
                route(
                    "203.0.113.64/32",
                    "app/web",
                    &["a"],
                    Some("203.0.113.64/32 announced on isp-a via 10.20.0.11"),
                ),
                route("203.0.113.66/32", "app/api", &["a", "b", "node/k9"], None),
                route("2001:db8::1/128", "app/web", &["a"], None),
            ],
            withdrawn: vec![Withdrawn {
                service: "app/idle".into(),
                router: "edge1".into(),
                problem: edge::problem::Problem::new("NoNextHop", "no ready endpoint"),
            }],
        })
    }

    #[test]
    fn elevation_names_the_public_addresses_each_server_carries() {
        let servers = vec![
            server("a", Some(1), 2, 300, json!({"state": "Provisioned"})),
            server("b", Some(4), 1, 200, json!({})),
            server("c", Some(5), 1, 200, json!({})),
        ];
        let out = render_rack(&rack(), &servers, &[], &public());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            &lines[1..7],
            &[
                "U6 | [switch] tor-a",
                "U5 | c  -  power - (want on)",
                "U4 | b  -  power - (want on)  public: 203.0.113.66 (app/api)",
                "U3 |",
                "U2 | a  Provisioned  power - (want on)  public: 203.0.113.66 (app/api); \
                 203.0.113.64, 2001:db8::1 (app/web)",
                "U1 | ^ a",
            ],
            "{out}"
        );
    }

    #[test]
    fn elevation_without_public_addresses_says_why_once() {
        let servers = vec![server("a", Some(1), 1, 300, json!({}))];
        let why = "cannot list services in all namespaces: services is forbidden";
        let out = render_rack(&rack(), &servers, &[], &Public::Unavailable(why.into()));
        assert_eq!(
            out.lines().nth(1),
            Some(format!("Public addresses not shown: {why}").as_str()),
            "{out}"
        );
        assert!(out.contains("U1 | a  -  power - (want on)\n"), "{out}");
        assert_eq!(out.matches("public").count(), 0, "{out}");
    }

    #[test]
    fn status_lists_public_addresses_with_servers_and_announcement() {
        let out = render_status("site", &[], &[], &[], &public());
        let section = out.split("PUBLIC ADDRESSES\n").nth(1).unwrap();
        assert_eq!(
            section,
            "ADDRESS       SERVICE  ROUTER  SERVERS        ANNOUNCED\n\
             203.0.113.64  app/web  edge1   a              True Announced: 203.0.113.64/32 announced on isp-a via 10.20.0.11\n\
             203.0.113.66  app/api  edge1   a, b, node/k9  -\n\
             2001:db8::1   app/web  edge1   a              -\n\
             app/idle (router edge1): not routed, NoNextHop: no ready endpoint\n"
        );
        let out = render_status("site", &[], &[], &[], &Public::Unavailable("denied".into()));
        assert!(
            out.ends_with("PUBLIC ADDRESSES\nnot shown: denied\n"),
            "{out}"
        );
    }

    #[test]
    fn elevation_puts_each_server_at_its_units_top_down() {
        let servers = vec![
            server(
                "a",
                Some(1),
                2,
                300,
                json!({"state": "Provisioned", "powerState": "On"}),
            ),
            server("b", Some(4), 1, 200, json!({})),
        ];
        let out = render_rack(&rack(), &servers, &[], &none());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            &lines[1..7],
            &[
                "U6 | [switch] tor-a",
                "U5 |",
                "U4 | b  -  power - (want on)",
                "U3 |",
                "U2 | a  Provisioned  power On (want on)",
                "U1 | ^ a",
            ]
        );
        assert!(out.contains("Power: 500 W declared of 1000 W budget (50%)\n"));
        assert!(out.contains("  feed A max 500 W\n"));
        assert!(out.contains("  tor-a mgmt 10.0.0.1 at U6\n"));
        assert!(
            out.starts_with("Rack r1 (namespace site): 6U, location fra1/hall-1, ready True\n")
        );
    }

    #[test]
    fn elevation_flags_overlaps_unplaced_and_over_budget() {
        let servers = vec![
            server("a", Some(2), 1, 800, json!({})),
            server("b", Some(2), 1, 800, json!({})),
            server("c", None, 1, 0, json!({})),
            server("d", Some(6), 2, 0, json!({})),
        ];
        let out = render_rack(&rack(), &servers, &[], &none());
        assert!(out.contains("U2 | CONFLICT: a  -  power - (want on) | b  -  power - (want on)\n"));
        assert!(out.contains("Not placed (no rackUnit, or above U6): c, d\n"));
        assert!(out.contains("(160%)  OVER BUDGET\n"));
    }

    #[test]
    fn status_counts_servers_by_state_and_shows_sessions() {
        let servers = vec![
            server("a", Some(1), 2, 300, json!({"state": "Available"})),
            server("b", Some(3), 1, 200, json!({"state": "Available"})),
            server("c", Some(4), 1, 0, json!({"state": "Error"})),
            server("d", None, 1, 0, json!({})),
        ];
        let out = render_status("site", &[rack()], &servers, &[link()], &none());
        assert!(
            out.contains("(unreported)=1  Available=2  Error=1\n"),
            "{out}"
        );
        assert!(
            out.contains("r1    fra1/hall-1  4/6U  4        500/1000  True\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "isp-a  ISP A     Transit  edge-1  Up     Established  2026-01-01T00:00:00Z"
            ),
            "{out}"
        );
        assert!(
            out.contains("d     r1    -   -          - (want on)  -\n"),
            "{out}"
        );
    }

    #[test]
    fn empty_site_says_none() {
        let out = render_status("site", &[], &[], &[], &none());
        assert_eq!(out.matches("(none)").count(), 5);
    }

    #[test]
    fn patches_touch_only_intent_fields() {
        assert_eq!(power_patch(false), json!({"spec": {"online": false}}));
        assert_eq!(
            reboot_patch("x1"),
            json!({"metadata": {"annotations": {"groundwork.dev/reboot": "x1"}}})
        );
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(42);
        assert_eq!(reboot_request_id(t), "kubectl-42");
    }
}
