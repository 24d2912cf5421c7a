//! The reconcile loop: wires read → map → apply → status together.
//!
//! It runs on every watch event and at least every `poll_interval` (BIRD status polling);
//! everything it derives is recomputed from the API objects and BIRD, so a restart resumes
//! where it stopped (flapCount and transition times come back from the objects' status).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crds::{BlackholeRoute, BorderRouter, UpstreamLink};
use jiff::Timestamp;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Client, ResourceExt};
use kube_kit::events::{self, FirstStatus};
use routing::{BirdClient, RenderOptions};
use tokio::sync::Notify;

use crate::apply::{ConfigApplier, ConfigState};
use crate::error::Error;
use crate::map::{self, Mapped, Problem};
use crate::metrics::{LinkSample, Metrics, ServiceLabels};
use crate::read::{Snapshot, Stores};
use crate::services::{self, ServiceMapping};
use crate::status::{
    self, Carrying, LinkInput, LinkStatus, Observation, ServiceInput, ServiceStatus, StatusWriter,
};

/// What the daemon needs to know.
#[derive(Clone, Debug)]
pub struct Options {
    /// The BorderRouter this daemon runs.
    pub router: String,
    /// Its namespace (the site).
    pub namespace: String,
    /// The namespace whose LoadBalancer Services are announced (`None`: every namespace).
    pub service_namespace: Option<String>,
    /// Where the BIRD configuration is written.
    pub config_dir: PathBuf,
    /// BIRD's control socket.
    pub bird_socket: PathBuf,
    /// The `bird` binary used for the syntax check.
    pub bird_binary: PathBuf,
    /// Where BIRD should log (`None`: syslog).
    pub bird_log_file: Option<String>,
    /// How often BIRD is polled.
    pub poll_interval: Duration,
    /// Where the per-link metrics go (served by [`crate::metrics::serve`]).
    pub metrics: Arc<Metrics>,
}

struct Daemon {
    opts: Options,
    client: Client,
    applier: ConfigApplier,
    bird: Option<BirdClient>,
    writer: StatusWriter,
    routers: Api<BorderRouter>,
    links: Api<UpstreamLink>,
    blackholes: Api<BlackholeRoute>,
    recorder: Recorder,
    /// flapCount per link as last counted into the metrics.
    flaps_counted: HashMap<String, u32>,
}

/// Runs until `shutdown` completes.
pub async fn run(
    client: Client,
    opts: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let notify = Arc::new(Notify::new());
    let (stores, tasks) = Stores::start(
        &client,
        &opts.namespace,
        opts.service_namespace.as_deref(),
        &opts.router,
        notify.clone(),
    );
    tokio::pin!(shutdown);
    tokio::select! {
        r = stores.wait_ready() => r?,
        () = &mut shutdown => return Ok(()),
    }
    tracing::info!(router = %opts.router, namespace = %opts.namespace, "caches synced; reconciling");
    let options = RenderOptions {
        log_file: opts.bird_log_file.clone(),
        ..Default::default()
    };
    let mut daemon = Daemon {
        client: client.clone(),
        applier: ConfigApplier::new(&opts.config_dir, &opts.bird_socket, options)
            .with_bird_binary(&opts.bird_binary),
        bird: None,
        writer: StatusWriter::default(),
        routers: Api::namespaced(client.clone(), &opts.namespace),
        links: Api::namespaced(client.clone(), &opts.namespace),
        blackholes: Api::namespaced(client.clone(), &opts.namespace),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: crds::field_managers::EDGE.into(),
                instance: Some(opts.router.clone()),
            },
        ),
        flaps_counted: HashMap::new(),
        opts,
    };
    let mut tick = tokio::time::interval(daemon.opts.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The earliest future `expiresAt`: the daemon wakes up then to withdraw the blackhole
    // (besides the poll tick), so an expiry is acted on without waiting for a tick.
    let mut expiry_wake: Option<tokio::time::Instant> = None;
    loop {
        let expiry = async {
            match expiry_wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {}
            () = notify.notified() => {}
            () = expiry => {}
        }
        let snapshot = stores.snapshot(&daemon.opts.router);
        let now = Timestamp::now();
        expiry_wake = crate::expiry::next_expiry(snapshot.blackholes.iter().map(|b| &b.spec), now)
            .map(|at| {
                let wait = Duration::try_from(at.duration_since(now)).unwrap_or_default();
                // A few ms late, so `is_expired` holds when the daemon wakes up.
                tokio::time::Instant::now() + wait + Duration::from_millis(5)
            });
        if let Err(e) = daemon.reconcile(snapshot).await {
            tracing::warn!(reason = e.reason(), error = %e, "reconcile failed; retrying on the next tick");
        }
    }
    for t in tasks {
        t.abort();
    }
    Ok(())
}

impl Daemon {
    /// Writes this router's Announced condition on every LoadBalancer Service that has (or had)
    /// one, and the per-Service metrics.
    async fn services(
        &self,
        snap: &Snapshot,
        mapped: Option<&Mapped>,
        config: Result<&ConfigState, (&'static str, &str)>,
        carrying: &Carrying,
        now: Timestamp,
    ) {
        let type_ = crds::service::conditions::announced(&self.opts.router);
        let manager = crds::service::edge_field_manager(&self.opts.router);
        let mut samples = Vec::new();
        for svc in &snap.services {
            let key = services::key(svc);
            let mapping = mapped.and_then(|m| m.services.get(&key));
            let current = ServiceStatus::observed(svc, &type_);
            let desired = status::service_status(ServiceInput {
                type_: &type_,
                current: &current,
                generation: svc.metadata.generation,
                mapping,
                config,
                carrying,
                now,
            });
            if let Some(mapping) = mapping {
                let hops = match mapping {
                    ServiceMapping::Routed { next_hops, .. } => next_hops.len(),
                    ServiceMapping::Withdrawn(_) => 0,
                };
                let labels = ServiceLabels {
                    namespace: svc.namespace().unwrap_or_default(),
                    service: svc.name_any(),
                };
                samples.push((labels, desired.announced(), hops));
            }
            if desired.announced() != current.announced() {
                tracing::info!(service = %key, announced = desired.announced(), "service announcement changed");
            }
            let api: Api<k8s_openapi::api::core::v1::Service> =
                Api::namespaced(self.client.clone(), &svc.namespace().unwrap_or_default());
            // One Service's failed write never holds up the others (nor the metrics).
            match kube_kit::status::apply_if_changed(
                &api,
                &manager,
                &svc.name_any(),
                Some(&current),
                &desired,
            )
            .await
            {
                Ok(true) => {
                    events::announce(
                        &self.recorder,
                        svc,
                        &current.conditions,
                        &desired.conditions,
                        FirstStatus::Everything,
                    )
                    .await;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(service = %key, error = %e, reason = "StatusWriteFailed", "cannot write the Service's status; retrying on the next tick");
                }
            }
        }
        self.opts.metrics.services(&samples);
    }

    /// The metrics sample of one link (flaps counted once, whatever the status writes do).
    fn sample(
        &mut self,
        name: &str,
        observation: &Observation,
        desired: &LinkStatus,
        current: &LinkStatus,
    ) -> LinkSample {
        let counted = self
            .flaps_counted
            .entry(name.to_string())
            .or_insert(current.flap_count);
        let new_flaps = desired.flap_count.saturating_sub(*counted);
        *counted = (*counted).max(desired.flap_count);
        let (established, state, bfd_up) = match observation {
            Observation::Sessions(sessions) if !sessions.is_empty() => {
                let worst = sessions
                    .iter()
                    .find(|s| !s.is_established())
                    .or_else(|| sessions.first());
                (
                    sessions.iter().all(routing::SessionStatus::is_established),
                    worst.map_or("Unknown", |s| crate::metrics::state_label(s.state)),
                    sessions
                        .iter()
                        .all(|s| s.bfd == Some(routing::status::BfdState::Up)),
                )
            }
            _ => (false, "Unknown", false),
        };
        LinkSample {
            established,
            state: Some(state),
            routes_imported: desired.routes_imported.unwrap_or(0),
            routes_exported: desired.routes_exported.unwrap_or(0),
            new_flaps,
            bfd_up,
            blackholes_announced: 0,
        }
    }

    async fn reconcile(&mut self, snap: Snapshot) -> Result<(), Error> {
        let Some(router) = snap.router.as_ref() else {
            tracing::debug!(router = %self.opts.router, "BorderRouter not found; BIRD left as it is");
            return Ok(());
        };
        let now = Timestamp::now();
        let selection = services::select(&router.spec, &snap.services, &snap.slices, &snap.nodes);
        let mapped: Result<Mapped, Problem> = map::map(
            router,
            &snap.links,
            &snap.blackholes,
            &snap.secrets,
            &selection,
            now,
        );
        let state: Result<ConfigState, Problem> = match &mapped {
            Ok(m) => Ok(self.applier.apply(&m.config).await),
            Err(p) => Err(p.clone()),
        };
        if let Some(attempt) = self.applier.take_attempt() {
            self.opts.metrics.applied(
                &self.opts.namespace,
                &self.opts.router,
                attempt.outcome.as_ref().map(|_| ()).map_err(String::as_str),
                attempt.took,
            );
        }
        let config: Result<&ConfigState, (&'static str, &str)> = match &state {
            Ok(s) => Ok(s),
            Err(p) => Err((p.reason, p.message.as_str())),
        };
        let alive = status::bird_alive(&mut self.bird, &self.opts.bird_socket)
            .await
            .map_err(|e| e.to_string());

        // BorderRouter.
        let desired = status::router_status(
            router.status.as_ref(),
            router.metadata.generation,
            config,
            alive.as_ref().map(|_| ()).map_err(String::as_str),
            now,
        );
        let current = status::RouterStatus::observed(router.status.as_ref());
        if self
            .writer
            .write(&self.routers, &router.name_any(), &desired, &current, true)
            .await?
        {
            events::announce(
                &self.recorder,
                router,
                &current.conditions,
                &desired.conditions,
                FirstStatus::Everything,
            )
            .await;
        }

        // UpstreamLinks.
        let (observations, missing) = match &mapped {
            Ok(m) => status::poll(&mut self.bird, &self.opts.bird_socket, &m.links, true).await,
            Err(_) => Default::default(),
        };
        if missing && matches!(state, Ok(ConfigState::Applied { .. })) {
            tracing::warn!(
                "protocols missing in BIRD (restarted?); applying the configuration again"
            );
            self.applier.invalidate();
        }
        let mut samples: Vec<(String, LinkSample)> = Vec::new();
        let carrying = Carrying::observed(&observations);
        for link in &snap.links {
            let name = link.name_any();
            let mapping = mapped.as_ref().ok().and_then(|m| m.links.get(&name));
            let observation = observations
                .get(&name)
                .cloned()
                .unwrap_or(Observation::NotConfigured);
            let desired = status::link_status(LinkInput {
                current: link.status.as_ref(),
                generation: link.metadata.generation,
                mapping,
                config,
                observation: &observation,
                now,
            });
            let current = LinkStatus::observed(link.status.as_ref());
            samples.push((
                name.clone(),
                self.sample(&name, &observation, &desired, &current),
            ));
            let urgent = desired.signature() != current.signature();
            if desired.session_state != current.session_state {
                tracing::info!(link = %name, from = ?current.session_state, to = ?desired.session_state, "session state changed");
            }
            if self
                .writer
                .write(&self.links, &name, &desired, &current, urgent)
                .await?
            {
                events::announce(
                    &self.recorder,
                    link,
                    &current.conditions,
                    &desired.conditions,
                    FirstStatus::Everything,
                )
                .await;
            }
        }

        // BlackholeRoutes.
        let mut announced: Vec<&[String]> = Vec::new();
        for bh in &snap.blackholes {
            let name = bh.name_any();
            let mapping = mapped.as_ref().ok().and_then(|m| m.blackholes.get(&name));
            let desired = status::blackhole_status(
                bh.status.as_ref(),
                bh.metadata.generation,
                mapping,
                config,
                now,
            );
            let current = status::BlackholeStatus::observed(bh.status.as_ref());
            if desired.announced {
                announced.push(&bh.spec.links);
            }
            if desired.announced != current.announced {
                tracing::info!(blackhole = %name, prefix = %bh.spec.prefix, announced = desired.announced, "blackhole state changed");
            }
            if self
                .writer
                .write(&self.blackholes, &name, &desired, &current, true)
                .await?
            {
                events::announce(
                    &self.recorder,
                    bh,
                    &current.conditions,
                    &desired.conditions,
                    FirstStatus::Everything,
                )
                .await;
            }
        }
        // LoadBalancer Services.
        self.services(&snap, mapped.as_ref().ok(), config, &carrying, now)
            .await;

        for (name, mut sample) in samples {
            sample.blackholes_announced = announced
                .iter()
                .filter(|links| links.is_empty() || links.contains(&name))
                .count() as u64;
            self.opts.metrics.link(&self.opts.namespace, &name, &sample);
        }
        let (links, bhs): (Vec<String>, Vec<String>) = (
            snap.links.iter().map(ResourceExt::name_any).collect(),
            snap.blackholes.iter().map(ResourceExt::name_any).collect(),
        );
        self.opts.metrics.retain_links(&self.opts.namespace, &links);
        self.flaps_counted.retain(|n, _| links.contains(n));
        self.writer.retain(|kind, name| match kind {
            "UpstreamLink" => links.iter().any(|n| n == name),
            "BlackholeRoute" => bhs.iter().any(|n| n == name),
            _ => true,
        });
        Ok(())
    }
}
