//! Prometheus metrics of the edge daemon, per UpstreamLink (labels `namespace`, `link`) and
//! per BorderRouter for the configuration applies (one apply covers every link of a router).
//! Served on `/metrics` by [`serve`].

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use routing::status::BgpState;

/// Every BGP state a link can be reported in (`bgp_state` has one series per state;
/// `Unknown`: BIRD unreachable or the link not configured).
pub const BGP_STATES: &[&str] = &[
    "Idle",
    "Connect",
    "Active",
    "OpenSent",
    "OpenConfirm",
    "Established",
    "Down",
    "Unknown",
];

/// The label of a BGP state.
pub fn state_label(s: BgpState) -> &'static str {
    match s {
        BgpState::Idle => "Idle",
        BgpState::Connect => "Connect",
        BgpState::Active => "Active",
        BgpState::OpenSent => "OpenSent",
        BgpState::OpenConfirm => "OpenConfirm",
        BgpState::Established => "Established",
        BgpState::Down => "Down",
    }
}

/// Labels of one link.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct LinkLabels {
    /// The site.
    pub namespace: String,
    /// The UpstreamLink's name.
    pub link: String,
}

/// Labels of a LoadBalancer Service this router announces (or withdrew).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ServiceLabels {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub service: String,
}

/// Labels of one link in one BGP state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// The site.
    pub namespace: String,
    /// The UpstreamLink's name.
    pub link: String,
    /// The BGP state.
    pub state: &'static str,
}

/// Labels of one router.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouterLabels {
    /// The site.
    pub namespace: String,
    /// The BorderRouter's name.
    pub router: String,
}

/// Labels of one apply outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApplyLabels {
    /// The site.
    pub namespace: String,
    /// The BorderRouter's name.
    pub router: String,
    /// `ok` or `error`.
    pub outcome: &'static str,
    /// Empty for `ok`; the stable error reason otherwise.
    pub reason: String,
}

/// What one reconcile saw of one link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkSample {
    /// Every family's session is Established.
    pub established: bool,
    /// The BGP state (the worst family's), `None` when not configured or unknown.
    pub state: Option<&'static str>,
    /// Routes imported (all families).
    pub routes_imported: u64,
    /// Routes exported (all families).
    pub routes_exported: u64,
    /// Flaps seen by this process since the previous sample.
    pub new_flaps: u32,
    /// BFD runs and is up.
    pub bfd_up: bool,
    /// BlackholeRoutes announced on this link.
    pub blackholes_announced: u64,
}

/// Every metric the edge daemon exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    established: Family<LinkLabels, Gauge>,
    bgp_state: Family<StateLabels, Gauge>,
    imported: Family<LinkLabels, Gauge>,
    exported: Family<LinkLabels, Gauge>,
    flaps: Family<LinkLabels, Counter>,
    bfd_up: Family<LinkLabels, Gauge>,
    blackholes: Family<LinkLabels, Gauge>,
    applies: Family<ApplyLabels, Counter>,
    apply_seconds: Family<RouterLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    known: Mutex<BTreeSet<LinkLabels>>,
    service_announced: Family<ServiceLabels, Gauge>,
    service_next_hops: Family<ServiceLabels, Gauge>,
    known_services: Mutex<BTreeSet<ServiceLabels>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("groundwork_edge");
        let m = Self {
            established: Family::default(),
            bgp_state: Family::default(),
            imported: Family::default(),
            exported: Family::default(),
            flaps: Family::default(),
            bfd_up: Family::default(),
            blackholes: Family::default(),
            applies: Family::default(),
            apply_seconds: Family::default(),
            known: Mutex::new(BTreeSet::new()),
            service_announced: Family::default(),
            service_next_hops: Family::default(),
            known_services: Mutex::new(BTreeSet::new()),
            registry: Registry::default(),
        };
        registry.register(
            "service_announced",
            "1 when the LoadBalancer Service's addresses are announced on at least one link",
            m.service_announced.clone(),
        );
        registry.register(
            "service_next_hops",
            "Nodes the Service's addresses are routed to (0: withdrawn)",
            m.service_next_hops.clone(),
        );
        registry.register(
            "link_session_established",
            "1 when every BGP session of the link is Established",
            m.established.clone(),
        );
        registry.register(
            "link_bgp_state",
            "1 for the link's current BGP state, 0 for the others",
            m.bgp_state.clone(),
        );
        registry.register(
            "link_routes_imported",
            "Routes imported from the peer",
            m.imported.clone(),
        );
        registry.register(
            "link_routes_exported",
            "Routes exported to the peer",
            m.exported.clone(),
        );
        registry.register(
            "link_flaps",
            "Session flaps (Established lost) seen by this process",
            m.flaps.clone(),
        );
        registry.register(
            "link_bfd_up",
            "1 when BFD runs for the link and is up",
            m.bfd_up.clone(),
        );
        registry.register(
            "link_blackholes_announced",
            "BlackholeRoutes announced on the link",
            m.blackholes.clone(),
        );
        registry.register(
            "config_applies",
            "Configuration applies to BIRD, by outcome and error reason",
            m.applies.clone(),
        );
        registry.register(
            "config_apply_last_duration_seconds",
            "Duration of the last configuration apply",
            m.apply_seconds.clone(),
        );
        Self { registry, ..m }
    }
}

impl Metrics {
    /// A new set of metrics, shared by the daemon and the HTTP server.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Records one sample of a link.
    pub fn link(&self, namespace: &str, link: &str, s: &LinkSample) {
        let l = LinkLabels {
            namespace: namespace.to_string(),
            link: link.to_string(),
        };
        if let Ok(mut known) = self.known.lock() {
            known.insert(l.clone());
        }
        self.established
            .get_or_create(&l)
            .set(i64::from(s.established));
        for state in BGP_STATES {
            let labels = StateLabels {
                namespace: l.namespace.clone(),
                link: l.link.clone(),
                state,
            };
            self.bgp_state
                .get_or_create(&labels)
                .set(i64::from(s.state == Some(*state)));
        }
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.imported
            .get_or_create(&l)
            .set(clamp(s.routes_imported));
        self.exported
            .get_or_create(&l)
            .set(clamp(s.routes_exported));
        self.flaps.get_or_create(&l).inc_by(u64::from(s.new_flaps));
        self.bfd_up.get_or_create(&l).set(i64::from(s.bfd_up));
        self.blackholes
            .get_or_create(&l)
            .set(clamp(s.blackholes_announced));
    }

    /// Drops the series of links of `namespace` not in `alive`.
    pub fn retain_links(&self, namespace: &str, alive: &[String]) {
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        let gone: Vec<LinkLabels> = known
            .iter()
            .filter(|l| l.namespace == namespace && !alive.contains(&l.link))
            .cloned()
            .collect();
        for l in gone {
            self.established.remove(&l);
            self.imported.remove(&l);
            self.exported.remove(&l);
            self.flaps.remove(&l);
            self.bfd_up.remove(&l);
            self.blackholes.remove(&l);
            for state in BGP_STATES {
                self.bgp_state.remove(&StateLabels {
                    namespace: l.namespace.clone(),
                    link: l.link.clone(),
                    state,
                });
            }
            known.remove(&l);
        }
    }

    /// Sets the series of the router's LoadBalancer Services to `samples` (announced, next
    /// hops) and drops the series of Services no longer among them.
    pub fn services(&self, samples: &[(ServiceLabels, bool, usize)]) {
        let Ok(mut known) = self.known_services.lock() else {
            return;
        };
        let now: BTreeSet<ServiceLabels> = samples.iter().map(|(l, ..)| l.clone()).collect();
        for gone in known.difference(&now) {
            self.service_announced.remove(gone);
            self.service_next_hops.remove(gone);
        }
        for (labels, announced, hops) in samples {
            self.service_announced
                .get_or_create(labels)
                .set(i64::from(*announced));
            self.service_next_hops
                .get_or_create(labels)
                .set(i64::try_from(*hops).unwrap_or(i64::MAX));
        }
        *known = now;
    }

    /// Records one configuration apply (`Err(reason)` when it failed).
    pub fn applied(
        &self,
        namespace: &str,
        router: &str,
        outcome: Result<(), &str>,
        took: Duration,
    ) {
        let (outcome, reason) = match outcome {
            Ok(()) => ("ok", String::new()),
            Err(r) => ("error", r.to_string()),
        };
        self.applies
            .get_or_create(&ApplyLabels {
                namespace: namespace.to_string(),
                router: router.to_string(),
                outcome,
                reason,
            })
            .inc();
        self.apply_seconds
            .get_or_create(&RouterLabels {
                namespace: namespace.to_string(),
                router: router.to_string(),
            })
            .set(took.as_secs_f64());
    }

    /// The registry in the Prometheus text format (what `/metrics` serves).
    pub fn text(&self) -> String {
        let mut body = String::new();
        match prometheus_client::encoding::text::encode(&mut body, &self.registry) {
            Ok(()) => body,
            Err(e) => format!("# encoding failed: {e}\n"),
        }
    }
}

/// Serves `/metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.text(),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn link_series_are_set_and_removed() {
        let m = Metrics::default();
        m.link(
            "site",
            "isp1",
            &LinkSample {
                established: true,
                state: Some("Established"),
                routes_exported: 2,
                new_flaps: 1,
                blackholes_announced: 1,
                ..Default::default()
            },
        );
        m.applied(
            "site",
            "edge1",
            Err("SyntaxError"),
            Duration::from_millis(5),
        );
        let t = m.text();
        assert!(t.contains(
            "groundwork_edge_link_session_established{namespace=\"site\",link=\"isp1\"} 1"
        ));
        assert!(t.contains(
            "groundwork_edge_link_bgp_state{namespace=\"site\",link=\"isp1\",state=\"Established\"} 1"
        ));
        assert!(t.contains(
            "groundwork_edge_link_bgp_state{namespace=\"site\",link=\"isp1\",state=\"Idle\"} 0"
        ));
        assert!(t.contains("groundwork_edge_link_flaps_total{namespace=\"site\",link=\"isp1\"} 1"));
        assert!(t.contains(
            "groundwork_edge_config_applies_total{namespace=\"site\",router=\"edge1\",outcome=\"error\",reason=\"SyntaxError\"} 1"
        ));
        m.retain_links("site", &[]);
        assert!(!m.text().contains("isp1"));
    }
}
