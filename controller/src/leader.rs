//! Leader election on a `coordination.k8s.io/v1` Lease: one replica reconciles and writes.
//!
//! The holder renews every third of the lease duration; a replica takes over when the lease
//! has not been renewed for a whole duration. Writes use the Lease's resourceVersion, so two
//! replicas racing for an expired lease cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tracing::{info, warn};

/// Why an election step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("lease request failed: {0}")]
    Kube(#[from] kube::Error),
}

/// One replica's view of the election.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

/// Whether a lease held by `holder` and last renewed at `renewed` can be taken by `me` at `now`.
pub fn can_take(
    holder: Option<&str>,
    renewed: Option<jiff::Timestamp>,
    duration: Duration,
    me: &str,
    now: jiff::Timestamp,
) -> bool {
    match (holder, renewed) {
        (None, _) | (Some(""), _) | (_, None) => true,
        (Some(h), _) if h == me => true,
        (Some(_), Some(at)) => {
            let expires = at.checked_add(
                jiff::SignedDuration::try_from(duration).unwrap_or(jiff::SignedDuration::MAX),
            );
            expires.map_or(true, |e| e <= now)
        }
    }
}

impl Elector {
    /// An elector for the Lease `name` in `namespace`.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            duration,
        }
    }

    /// Renewal interval.
    pub fn renew_every(&self) -> Duration {
        self.duration / 3
    }

    /// Tries once to acquire or renew the lease; true when this replica holds it afterwards.
    pub async fn try_acquire(&self) -> Result<bool, Error> {
        let now = jiff::Timestamp::now();
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e.into()),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone();
        let renewed = spec.renew_time.as_ref().map(|t| t.0);
        if !can_take(
            holder.as_deref(),
            renewed,
            self.duration,
            &self.identity,
            now,
        ) {
            return Ok(false);
        }
        if holder.as_deref() != Some(self.identity.as_str()) {
            info!(previous = ?holder, identity = %self.identity, "taking over the leader lease");
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.acquire_time = Some(MicroTime(now));
            spec.holder_identity = Some(self.identity.clone());
        }
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(seconds);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => warn!(error = %e, "leader election"),
            }
            tokio::time::sleep(self.renew_every()).await;
        }
    }

    /// Renews until a renewal fails for longer than the lease duration; returns then (the
    /// caller must stop writing).
    pub async fn hold(&self) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.renew_every()).await;
            match self.try_acquire().await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) => warn!(error = %e, "lease renewal failed"),
            }
            if last_ok.elapsed() >= self.duration {
                return;
            }
        }
    }

    /// Gives the lease up (on shutdown) so another replica takes over without waiting.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        if let Err(e) = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            warn!(error = %e, "could not release the leader lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_rules() {
        let now: jiff::Timestamp = "2026-01-01T00:00:20Z".parse().unwrap();
        let d = Duration::from_secs(15);
        let fresh: jiff::Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        let stale: jiff::Timestamp = "2026-01-01T00:00:04Z".parse().unwrap();
        assert!(!can_take(Some("other"), Some(fresh), d, "me", now));
        assert!(can_take(Some("other"), Some(stale), d, "me", now));
        assert!(can_take(Some("me"), Some(fresh), d, "me", now));
        assert!(can_take(None, Some(fresh), d, "me", now));
    }
}
