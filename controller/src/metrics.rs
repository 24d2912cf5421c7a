//! Prometheus metrics: reconciles, durations, errors by kind and reason, status writes.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels naming a kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Rack, Server or UpstreamLink.
    pub kind: &'static str,
}

/// Labels naming a kind and an error reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Rack, Server or UpstreamLink.
    pub kind: &'static str,
    /// The error's metric label.
    pub reason: &'static str,
}

/// Labels naming a provisioning phase.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// `Provisioning` (all of it), `PowerOnToDHCP`, `RamdiskBoot`, `Image`, `DiskBootToCheckIn`.
    pub phase: String,
}

/// Labels naming a provisioning failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// The condition reason, e.g. `ChecksumMismatch`.
    pub reason: &'static str,
}

/// Labels naming a LoadBalancer address pool.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// `router/pool`.
    pub pool: String,
}

/// How full one LoadBalancer address pool is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSample {
    /// `router/pool`.
    pub pool: String,
    /// Addresses held by Services.
    pub used: u64,
    /// Addresses in the pool (saturating).
    pub size: u64,
}

/// Every metric the controller exports.
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: Family<KindLabels, Histogram>,
    status_writes: Family<KindLabels, Counter>,
    invalid_objects: Family<KindLabels, Gauge>,
    phases: Family<PhaseLabels, Histogram>,
    provisioning_failures: Family<FailureLabels, Counter>,
    pool_used: Family<PoolLabels, Gauge>,
    pool_size: Family<PoolLabels, Gauge>,
    known_pools: Mutex<BTreeSet<String>>,
    /// The boot services' metrics (DHCP, TFTP, HTTP boot).
    pub boot: boot::metrics::Metrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("groundwork");
        let reconciles = Family::<KindLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let durations = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let status_writes = Family::<KindLabels, Counter>::default();
        let invalid_objects = Family::<KindLabels, Gauge>::default();
        let phases = Family::<PhaseLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.5, 2.0, 14))
        });
        let provisioning_failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "provisioning_phase_seconds",
            "Duration of each provisioning phase of servers that reached Provisioned",
            phases.clone(),
        );
        registry.register(
            "provisioning_failures",
            "Provisioning or cleaning attempts that ended in Error, by reason",
            provisioning_failures.clone(),
        );
        registry.register("reconciles", "Reconciliations run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciliations that failed, by reason",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation",
            durations.clone(),
        );
        registry.register(
            "status_writes",
            "Status patches sent (none when nothing changed)",
            status_writes.clone(),
        );
        registry.register(
            "invalid_objects",
            "Stored objects that cannot be read with the current types",
            invalid_objects.clone(),
        );
        let pool_used = Family::<PoolLabels, Gauge>::default();
        let pool_size = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "service_pool_addresses_used",
            "LoadBalancer addresses of the pool held by Services",
            pool_used.clone(),
        );
        registry.register(
            "service_pool_addresses",
            "Addresses in the LoadBalancer address pool",
            pool_size.clone(),
        );
        let boot = boot::metrics::Metrics::default();
        boot.register(&mut registry);
        Self {
            registry,
            reconciles,
            errors,
            durations,
            status_writes,
            invalid_objects,
            phases,
            provisioning_failures,
            pool_used,
            pool_size,
            known_pools: Mutex::default(),
            boot,
        }
    }
}

impl Metrics {
    /// Sets the LoadBalancer pools' usage to `samples` and drops the series of pools no longer
    /// among them.
    pub fn pools(&self, samples: &[PoolSample]) {
        let Ok(mut known) = self.known_pools.lock() else {
            return;
        };
        let now: BTreeSet<String> = samples.iter().map(|s| s.pool.clone()).collect();
        for gone in known.difference(&now) {
            let labels = PoolLabels { pool: gone.clone() };
            self.pool_used.remove(&labels);
            self.pool_size.remove(&labels);
        }
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        for s in samples {
            let labels = PoolLabels {
                pool: s.pool.clone(),
            };
            self.pool_used.get_or_create(&labels).set(clamp(s.used));
            self.pool_size.get_or_create(&labels).set(clamp(s.size));
        }
        *known = now;
    }

    /// Records one reconciliation of `kind` that took `elapsed`.
    pub fn reconciled(&self, kind: &'static str, elapsed: Duration) {
        self.reconciles.get_or_create(&KindLabels { kind }).inc();
        self.durations
            .get_or_create(&KindLabels { kind })
            .observe(elapsed.as_secs_f64());
    }

    /// Records a failed reconciliation.
    pub fn failed(&self, kind: &'static str, reason: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels { kind, reason })
            .inc();
    }

    /// Records a status patch.
    pub fn status_written(&self, kind: &'static str) {
        self.status_writes.get_or_create(&KindLabels { kind }).inc();
    }

    /// Records a finished provisioning phase.
    pub fn phase(&self, phase: &str, seconds: f64) {
        self.phases
            .get_or_create(&PhaseLabels {
                phase: phase.to_string(),
            })
            .observe(seconds);
    }

    /// Records a provisioning or cleaning failure.
    pub fn provisioning_failed(&self, reason: &'static str) {
        self.provisioning_failures
            .get_or_create(&FailureLabels { reason })
            .inc();
    }

    /// Sets how many stored objects of `kind` cannot be read.
    pub fn set_invalid(&self, kind: &'static str, count: usize) {
        self.invalid_objects
            .get_or_create(&KindLabels { kind })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
}

impl Metrics {
    /// The registry in the Prometheus text format (what `/metrics` serves).
    pub fn registry_text(&self) -> String {
        let mut body = String::new();
        match prometheus_client::encoding::text::encode(&mut body, &self.registry) {
            Ok(()) => body,
            Err(e) => format!("# encoding failed: {e}"),
        }
    }
}
