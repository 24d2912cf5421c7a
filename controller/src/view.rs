//! The read-only rack view served at `/racks`: one HTML page with each Rack's elevation as an
//! inline SVG, its power and conditions, and the UpstreamLinks. Pure: objects in, HTML out.

use std::collections::BTreeMap;
use std::fmt::Write;

use crds::server::PowerState;
use crds::{Rack, Server, UpstreamLink};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;

/// Height of one rack unit in the drawing, in pixels.
const U_PX: u32 = 18;
/// Width of the U-number column left of the rack.
const LABEL_PX: u32 = 34;
/// Width of the rack's mounting space.
const RACK_PX: u32 = 420;
/// Margin around the drawing.
const PAD_PX: u32 = 6;

/// What the page shows.
#[derive(Default)]
pub struct Site<'a> {
    /// Page heading (e.g. the namespace or `all namespaces`).
    pub title: &'a str,
    /// Racks to draw.
    pub racks: &'a [Rack],
    /// Servers (matched to racks by namespace and `spec.rackRef`).
    pub servers: &'a [Server],
    /// UpstreamLinks for the table.
    pub links: &'a [UpstreamLink],
    /// Objects the API returned that could not be read (shown as a note).
    pub unreadable: usize,
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Fill and text colors for a server state (`None`: not reported yet).
fn state_colors(state: Option<&str>) -> (&'static str, &'static str) {
    match state {
        Some("Registering") => ("#b0bec5", "#102027"),
        Some("Inspecting") => ("#81d4fa", "#01579b"),
        Some("Available") => ("#a5d6a7", "#1b5e20"),
        Some("Standby") => ("#80cbc4", "#004d40"),
        Some("Provisioning") => ("#ffcc80", "#e65100"),
        Some("Provisioned") => ("#1565c0", "#ffffff"),
        Some("Deprovisioning") => ("#ce93d8", "#4a148c"),
        Some("Discovered") => ("#fff59d", "#5d4037"),
        Some("Error") => ("#c62828", "#ffffff"),
        _ => ("#eeeeee", "#424242"),
    }
}

fn power_label(power: Option<PowerState>) -> &'static str {
    match power {
        Some(PowerState::On) => "on",
        Some(PowerState::Off) => "off",
        Some(PowerState::Unknown) | None => "unknown",
    }
}

fn power_color(power: Option<PowerState>) -> &'static str {
    match power {
        Some(PowerState::On) => "#43a047",
        Some(PowerState::Off) => "#616161",
        Some(PowerState::Unknown) | None => "#ffffff",
    }
}

/// Something mounted in a rack: a server or a ToR switch.
struct Mounted<'a> {
    name: &'a str,
    bottom: u32,
    height: u32,
    server: Option<&'a Server>,
    model: Option<&'a str>,
}

impl Mounted<'_> {
    fn top(&self) -> u32 {
        crds::rack::top_unit(self.bottom, self.height)
    }

    fn overlaps(&self, other: &Mounted<'_>) -> bool {
        self.bottom <= other.top() && other.bottom <= self.top()
    }
}

/// The whole page.
pub fn render(site: &Site<'_>) -> String {
    let mut racks: Vec<&Rack> = site.racks.iter().collect();
    racks.sort_by_key(|r| (r.namespace(), r.name_any()));
    let mut by_rack: BTreeMap<(String, String), Vec<&Server>> = BTreeMap::new();
    let mut unracked: Vec<&Server> = Vec::new();
    for s in site.servers {
        let ns = s.namespace().unwrap_or_default();
        match &s.spec.rack_ref {
            Some(r)
                if racks.iter().any(|rk| {
                    rk.namespace().unwrap_or_default() == ns && rk.name_any() == r.name
                }) =>
            {
                by_rack.entry((ns, r.name.clone())).or_default().push(s);
            }
            _ => unracked.push(s),
        }
    }

    let mut html = String::new();
    let title = escape(site.title);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Groundwork racks: {title}</title><style>{STYLE}</style></head><body>\
         <h1>Groundwork racks <small>{title}</small></h1>"
    );
    html.push_str(LEGEND);
    if site.unreadable > 0 {
        let _ = write!(
            html,
            "<p class=\"warn\">{} object(s) could not be read and are not shown (see the <code>InvalidObject</code> events).</p>",
            site.unreadable
        );
    }
    if racks.is_empty() {
        html.push_str("<p>No racks.</p>");
    }
    html.push_str("<div class=\"racks\">");
    for rack in &racks {
        let key = (rack.namespace().unwrap_or_default(), rack.name_any());
        let servers = by_rack.get(&key).map(Vec::as_slice).unwrap_or_default();
        render_rack(&mut html, rack, servers);
    }
    html.push_str("</div>");
    if !unracked.is_empty() {
        html.push_str("<h2>Servers not in a listed rack</h2><ul>");
        for s in unracked {
            let rack = s
                .spec
                .rack_ref
                .as_ref()
                .map_or("(none)", |r| r.name.as_str());
            let _ = write!(
                html,
                "<li>{}/{}: rackRef {}</li>",
                escape(&s.namespace().unwrap_or_default()),
                escape(&s.name_any()),
                escape(rack)
            );
        }
        html.push_str("</ul>");
    }
    render_links(&mut html, site.links);
    html.push_str("</body></html>\n");
    html
}

fn render_rack(html: &mut String, rack: &Rack, servers: &[&Server]) {
    let ns = rack.namespace().unwrap_or_default();
    let name = rack.name_any();
    let height = rack.spec.height_u.max(1);
    let mut mounted: Vec<Mounted<'_>> = Vec::new();
    let mut unplaced: Vec<&Server> = Vec::new();
    for s in servers {
        match s.spec.rack_unit {
            Some(u) => mounted.push(Mounted {
                name: s.metadata.name.as_deref().unwrap_or_default(),
                bottom: u,
                height: s.spec.height_u.max(1),
                server: Some(s),
                model: None,
            }),
            None => unplaced.push(s),
        }
    }
    for sw in &rack.spec.tor_switches {
        if let Some(u) = sw.rack_unit {
            mounted.push(Mounted {
                name: &sw.name,
                bottom: u,
                height: 1,
                server: None,
                model: sw.model.as_deref(),
            });
        }
    }
    mounted.sort_by(|a, b| a.bottom.cmp(&b.bottom).then(a.name.cmp(b.name)));
    let overlapping: Vec<bool> = mounted
        .iter()
        .enumerate()
        .map(|(i, m)| {
            mounted
                .iter()
                .enumerate()
                .any(|(j, o)| i != j && m.overlaps(o))
        })
        .collect();

    let width = PAD_PX * 2 + LABEL_PX + RACK_PX;
    let svg_height = PAD_PX * 2 + height * U_PX;
    let x0 = PAD_PX + LABEL_PX;
    let y_of_top = |top_u: u32| PAD_PX + height.saturating_sub(top_u) * U_PX;
    let _ = write!(
        html,
        "<section class=\"rack\" data-rack=\"{ens}/{ename}\"><h2>{ename} <small>{ens}</small></h2>",
        ens = escape(&ns),
        ename = escape(&name)
    );
    if let Some(summary) = rack
        .status
        .as_ref()
        .and_then(|s| s.location_summary.as_deref())
    {
        let _ = write!(html, "<p class=\"loc\">{}</p>", escape(summary));
    }
    let _ = write!(
        html,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{svg_height}\" \
         viewBox=\"0 0 {width} {svg_height}\" role=\"img\" aria-label=\"elevation of rack {}\">\
         <rect x=\"{x0}\" y=\"{PAD_PX}\" width=\"{RACK_PX}\" height=\"{}\" class=\"frame\"/>",
        escape(&name),
        height * U_PX
    );
    // One row per U, top to bottom.
    for u in (1..=height).rev() {
        let y = y_of_top(u);
        let _ = write!(
            html,
            "<rect data-row=\"{u}\" x=\"{x0}\" y=\"{y}\" width=\"{RACK_PX}\" height=\"{U_PX}\" class=\"slot\"/>\
             <text x=\"{}\" y=\"{}\" class=\"unum\">{u}</text>",
            x0 - 4,
            y + U_PX - 5
        );
    }
    for (m, overlap) in mounted.iter().zip(&overlapping) {
        // Clip what sticks out of the rack to its frame; flag it.
        let outside = m.top() > height;
        let top_u = m.top().min(height);
        if m.bottom > height {
            continue;
        }
        let y = y_of_top(top_u);
        let h = (top_u - m.bottom + 1) * U_PX;
        let flagged = *overlap || outside;
        let mut note = String::new();
        if *overlap {
            note.push_str(" ⚠ overlap");
        }
        if outside {
            note.push_str(" ⚠ taller than rack");
        }
        match m.server {
            Some(s) => {
                let status = s.status.as_ref();
                let state = status.and_then(|st| st.state).map(|st| st.as_str());
                let power = status.and_then(|st| st.power_state);
                let (fill, ink) = state_colors(state);
                let state_text = state.unwrap_or("(no status)");
                let _ = write!(
                    html,
                    "<rect data-server=\"{en}\" data-u=\"{b}\" data-height=\"{hu}\" data-state=\"{es}\" \
                     data-power=\"{p}\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{hh}\" rx=\"2\" \
                     fill=\"{fill}\" class=\"server{cls}\"><title>{en}: U{b}–U{t}, {es}, power {p}{note}</title></rect>\
                     <circle cx=\"{cx}\" cy=\"{cy}\" r=\"4\" fill=\"{pc}\" class=\"power\"/>\
                     <text x=\"{tx}\" y=\"{ty}\" fill=\"{ink}\" class=\"label\">{en} · {es} · power {p}{note}</text>",
                    en = escape(m.name),
                    b = m.bottom,
                    t = m.top(),
                    hu = m.height,
                    es = escape(state_text),
                    p = power_label(power),
                    x = x0 + 2,
                    y = y + 1,
                    w = RACK_PX - 4,
                    hh = h - 2,
                    cls = if flagged { " flagged" } else { "" },
                    cx = x0 + 12,
                    cy = y + U_PX / 2,
                    pc = power_color(power),
                    tx = x0 + 22,
                    ty = y + U_PX - 5,
                );
            }
            None => {
                let model = m
                    .model
                    .map(|m| format!(" ({})", escape(m)))
                    .unwrap_or_default();
                let _ = write!(
                    html,
                    "<rect data-switch=\"{en}\" data-u=\"{b}\" x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{hh}\" \
                     rx=\"2\" class=\"switch{cls}\"><title>ToR switch {en}: U{b}{note}</title></rect>\
                     <text x=\"{tx}\" y=\"{ty}\" class=\"label swlabel\">⇄ {en}{model}{note}</text>",
                    en = escape(m.name),
                    b = m.bottom,
                    x = x0 + 2,
                    y = y + 1,
                    w = RACK_PX - 4,
                    hh = h - 2,
                    cls = if flagged { " flagged" } else { "" },
                    tx = x0 + 22,
                    ty = y + U_PX - 5,
                );
            }
        }
    }
    html.push_str("</svg>");

    let beyond: Vec<&Mounted<'_>> = mounted.iter().filter(|m| m.bottom > height).collect();
    if !beyond.is_empty() || !unplaced.is_empty() {
        html.push_str("<ul class=\"warn\">");
        for m in beyond {
            let _ = write!(
                html,
                "<li>{} at U{} is above the rack's {height} U</li>",
                escape(m.name),
                m.bottom
            );
        }
        for s in unplaced {
            let _ = write!(html, "<li>{} has no rackUnit</li>", escape(&s.name_any()));
        }
        html.push_str("</ul>");
    }

    let status = rack.status.as_ref();
    let budget = rack.spec.power.budget_watts;
    match status.and_then(|s| s.power.as_ref()) {
        Some(p) => {
            let over = p.declared_watts > p.budget_watts;
            let _ = write!(
                html,
                "<p class=\"power{}\">Power: <b>{}</b> W declared of <b>{}</b> W budget</p>",
                if over { " over" } else { "" },
                p.declared_watts,
                p.budget_watts
            );
        }
        None => {
            let _ = write!(
                html,
                "<p class=\"power\">Power: not reported yet; budget <b>{budget}</b> W</p>"
            );
        }
    }
    if let Some(s) = status {
        let _ = write!(
            html,
            "<p>{} server(s), {} of {height} U used</p>",
            s.server_count, s.used_u
        );
    }
    render_conditions(
        html,
        status.map(|s| s.conditions.as_slice()).unwrap_or_default(),
    );
    html.push_str("</section>");
}

fn render_conditions(html: &mut String, conditions: &[Condition]) {
    if conditions.is_empty() {
        html.push_str("<p class=\"muted\">No conditions reported yet.</p>");
        return;
    }
    html.push_str(
        "<table class=\"conditions\"><tr><th>Condition</th><th>Status</th><th>Reason</th><th>Message</th></tr>",
    );
    for c in conditions {
        let _ = write!(
            html,
            "<tr class=\"cond-{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            condition_health(c),
            escape(&c.type_),
            escape(&c.status),
            escape(&c.reason),
            escape(&c.message)
        );
    }
    html.push_str("</table>");
}

/// `good`, `bad` or `unknown`: `Reconciling` and `Stalled` are healthy when False (kstatus).
fn condition_health(c: &Condition) -> &'static str {
    let negative = matches!(c.type_.as_str(), "Reconciling" | "Stalled");
    match (c.status.as_str(), negative) {
        ("True", false) | ("False", true) => "good",
        ("True", true) | ("False", false) => "bad",
        _ => "unknown",
    }
}

fn render_links(html: &mut String, links: &[UpstreamLink]) {
    html.push_str("<h2>Upstream links</h2>");
    if links.is_empty() {
        html.push_str("<p class=\"muted\">No UpstreamLinks.</p>");
        return;
    }
    let mut links: Vec<&UpstreamLink> = links.iter().collect();
    links.sort_by_key(|l| (l.namespace(), l.name_any()));
    html.push_str(
        "<table class=\"links\"><tr><th>Namespace</th><th>Name</th><th>Provider</th><th>Peer ASN</th>\
         <th>Session</th><th>Routes in</th><th>Routes out</th></tr>",
    );
    let count = |n: Option<u64>| n.map_or_else(|| "—".to_string(), |n| n.to_string());
    for l in links {
        let st = l.status.as_ref();
        let session = st
            .and_then(|s| s.session_state.as_deref())
            .unwrap_or("unknown");
        let _ = write!(
            html,
            "<tr data-link=\"{name}\"><td>{}</td><td>{name}</td><td>{}</td><td>AS{}</td>\
             <td class=\"session-{session}\">{session}</td><td>{}</td><td>{}</td></tr>",
            escape(&l.namespace().unwrap_or_default()),
            escape(&l.spec.provider),
            l.spec.bgp.peer_asn,
            count(st.and_then(|s| s.routes_imported)),
            count(st.and_then(|s| s.routes_exported)),
            name = escape(&l.name_any()),
            session = escape(session),
        );
    }
    html.push_str("</table>");
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:16px;color:#212121}\
h1 small,h2 small{color:#757575;font-weight:normal;font-size:60%}\
.racks{display:flex;flex-wrap:wrap;gap:24px}.rack{border:1px solid #ddd;padding:8px 12px;border-radius:6px}\
.frame{fill:#263238}.slot{fill:#37474f;stroke:#263238;stroke-width:1}\
.unum{font-size:10px;fill:#616161;text-anchor:end;font-family:monospace}\
.label{font-size:11px;font-family:monospace;pointer-events:none}\
.server{stroke:#000;stroke-opacity:.4}.switch{fill:#455a64;stroke:#b0bec5}.swlabel{fill:#eceff1}\
.flagged{stroke:#ff1744;stroke-width:3;stroke-dasharray:6 3;stroke-opacity:1}\
.power.over,.warn{color:#c62828}.muted{color:#757575}.power circle{stroke:#000}\
circle.power{stroke:#000;stroke-width:1}\
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}\
.cond-bad td:nth-child(2){color:#c62828;font-weight:bold}.cond-good td:nth-child(2){color:#2e7d32}\
.session-Established{color:#2e7d32;font-weight:bold}\
.legend span{display:inline-block;padding:1px 6px;margin-right:4px;border-radius:3px;font-size:12px}";

const LEGEND: &str = "<p class=\"legend\">\
<span style=\"background:#b0bec5\">Registering</span>\
<span style=\"background:#81d4fa\">Inspecting</span>\
<span style=\"background:#a5d6a7\">Available</span>\
<span style=\"background:#ffcc80\">Provisioning</span>\
<span style=\"background:#1565c0;color:#fff\">Provisioned</span>\
<span style=\"background:#ce93d8\">Deprovisioning</span>\
<span style=\"background:#fff59d\">Discovered</span>\
<span style=\"background:#c62828;color:#fff\">Error</span>\
<span style=\"background:#eeeeee\">no status</span>\
<span style=\"outline:2px dashed #ff1744\">overlap</span></p>";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    fn rack(name: &str, height: u32) -> Rack {
        serde_json::from_value(json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "Rack",
            "metadata": {"name": name, "namespace": "site"},
            "spec": {
                "location": {"site": "site"}, "heightU": height,
                "power": {"budgetWatts": 1000},
                "torSwitches": [{"name": "tor1", "rackUnit": height}],
                "networks": {"provisioning": {"subnet": "10.0.0.0/24"}}
            },
            "status": {
                "power": {"declaredWatts": 1200, "budgetWatts": 1000},
                "conditions": [{"type": "PowerWithinBudget", "status": "False", "reason": "OverBudget",
                    "message": "1200 W > 1000 W <budget>", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
            }
        }))
        .unwrap()
    }

    fn server(name: &str, rack: &str, u: Option<u32>, height: u32, state: Option<&str>) -> Server {
        let mut v = json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "Server",
            "metadata": {"name": name, "namespace": "site"},
            "spec": {"rackRef": {"name": rack}, "heightU": height}
        });
        if let Some(u) = u {
            v["spec"]["rackUnit"] = u.into();
        }
        if let Some(s) = state {
            v["status"] = json!({"state": s, "powerState": "On"});
        }
        serde_json::from_value(v).unwrap()
    }

    fn link() -> UpstreamLink {
        serde_json::from_value(json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "UpstreamLink",
            "metadata": {"name": "isp-a", "namespace": "site"},
            "spec": {"role": "Transit", "provider": "ISP <A>", "routerRef": "edge1",
                "bgp": {"peerASN": 64500, "addresses": [{"localAddress": "192.0.2.1", "peerAddress": "192.0.2.2"}]}},
            "status": {"sessionState": "Established", "routesImported": 3, "routesExported": 1}
        }))
        .unwrap()
    }

    /// (name, data-u) of every element carrying `data-server`.
    fn placed(html: &str) -> Vec<(String, u32)> {
        html.split("data-server=\"")
            .skip(1)
            .map(|rest| {
                let name = rest.split('"').next().unwrap().to_string();
                let u = rest
                    .split("data-u=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap();
                (name, u.parse().unwrap())
            })
            .collect()
    }

    fn attr_of(html: &str, server: &str, attr: &str) -> String {
        let start = html.find(&format!("data-server=\"{server}\"")).unwrap();
        let tag = &html[start..start + html[start..].find('>').unwrap()];
        tag.split(&format!(" {attr}=\""))
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string()
    }

    #[test]
    fn draws_each_server_at_its_u_spanning_its_height() {
        let racks = [rack("a01", 12)];
        let servers = [
            server("u1", "a01", Some(1), 1, Some("Available")),
            server("u2", "a01", Some(2), 2, Some("Provisioned")),
            server("u10", "a01", Some(10), 1, None),
        ];
        let html = render(&Site {
            title: "site",
            racks: &racks,
            servers: &servers,
            ..Site::default()
        });
        assert_eq!(
            placed(&html),
            vec![("u1".into(), 1), ("u2".into(), 2), ("u10".into(), 10)]
        );
        // y grows downwards: U12 is row 0, so U1 sits at the bottom, U2–U3 is two rows tall.
        assert_eq!(
            attr_of(&html, "u1", "y"),
            (PAD_PX + 11 * U_PX + 1).to_string()
        );
        assert_eq!(
            attr_of(&html, "u2", "y"),
            (PAD_PX + 9 * U_PX + 1).to_string()
        );
        assert_eq!(attr_of(&html, "u2", "height"), (2 * U_PX - 2).to_string());
        assert_eq!(
            attr_of(&html, "u10", "y"),
            (PAD_PX + 2 * U_PX + 1).to_string()
        );
        assert_eq!(attr_of(&html, "u1", "fill"), "#a5d6a7");
        assert_eq!(attr_of(&html, "u2", "fill"), "#1565c0");
        assert_eq!(attr_of(&html, "u2", "data-power"), "on");
        assert_eq!(attr_of(&html, "u10", "data-state"), "(no status)");
        assert_eq!(html.matches("data-row=").count(), 12);
        assert!(html.contains("data-switch=\"tor1\" data-u=\"12\""));
        assert!(!html.contains(" flagged\""));
    }

    #[test]
    fn flags_overlaps_and_servers_outside_the_rack() {
        let racks = [rack("a01", 4)];
        let servers = [
            server("a", "a01", Some(1), 2, Some("Available")),
            server("b", "a01", Some(2), 1, Some("Error")),
            server("tall", "a01", Some(3), 3, None),
            server("high", "a01", Some(9), 1, None),
            server("loose", "a01", None, 1, None),
            server("elsewhere", "zz", Some(1), 1, None),
        ];
        let html = render(&Site {
            title: "site",
            racks: &racks,
            servers: &servers,
            ..Site::default()
        });
        assert_eq!(attr_of(&html, "a", "class"), "server flagged");
        assert_eq!(attr_of(&html, "b", "class"), "server flagged");
        // tall (U3–U5) sticks out of a 4 U rack and overlaps the switch at U4.
        assert_eq!(attr_of(&html, "tall", "class"), "server flagged");
        assert!(html.contains("class=\"switch flagged\""));
        assert!(html.contains("taller than rack"));
        assert!(html.contains("high at U9 is above the rack"));
        assert!(html.contains("loose has no rackUnit"));
        assert!(html.contains("elsewhere: rackRef zz"));
        assert_eq!(placed(&html).len(), 3);
    }

    #[test]
    fn shows_power_conditions_and_links_escaped() {
        let racks = [rack("a01", 4)];
        let links = [link()];
        let html = render(&Site {
            title: "<all>",
            racks: &racks,
            links: &links,
            ..Site::default()
        });
        assert!(html.contains("<b>1200</b> W declared of <b>1000</b> W budget"));
        assert!(html.contains("class=\"power over\""));
        assert!(html.contains(
            "<tr class=\"cond-bad\"><td>PowerWithinBudget</td><td>False</td><td>OverBudget</td>"
        ));
        assert!(html.contains("1200 W &gt; 1000 W &lt;budget&gt;"));
        assert!(html.contains("&lt;all&gt;"));
        assert!(!html.contains("<all>"));
        assert!(html.contains(
            "<td>ISP &lt;A&gt;</td><td>AS64500</td><td class=\"session-Established\">Established</td><td>3</td><td>1</td>"
        ));
    }

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(escape("a&b<c>\"d'"), "a&amp;b&lt;c&gt;&quot;d&#39;");
    }
}
