//! Progress of the running task, reported at most once a second and at every phase change.

use std::sync::Arc;
use std::time::Duration;

use proto::agent_v1::Progress;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::api::Api;

/// Minimum time between two reports of the same phase.
const INTERVAL: Duration = Duration::from_secs(1);

/// One progress observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// `write`, `sync`, `config-drive`, `clean`.
    pub phase: &'static str,
    /// Bytes done in this phase.
    pub bytes_done: u64,
    /// Bytes expected (0: unknown).
    pub bytes_total: u64,
    /// Average rate so far.
    pub bytes_per_second: u64,
}

impl Update {
    /// A phase without byte counts.
    pub fn phase(phase: &'static str) -> Self {
        Self {
            phase,
            bytes_done: 0,
            bytes_total: 0,
            bytes_per_second: 0,
        }
    }

    /// `done` bytes of `total` after `elapsed`.
    pub fn bytes(phase: &'static str, done: u64, total: u64, elapsed: Duration) -> Self {
        let millis = elapsed.as_millis().max(1);
        Self {
            phase,
            bytes_done: done,
            bytes_total: total,
            bytes_per_second: u64::try_from(u128::from(done) * 1000 / millis).unwrap_or(u64::MAX),
        }
    }
}

/// Decides when an update is worth a report.
#[derive(Debug, Default)]
struct Throttle {
    last: Option<(Instant, &'static str)>,
}

impl Throttle {
    /// Whether `phase` may be reported at `now`.
    fn allows(&self, now: Instant, phase: &str) -> bool {
        self.last
            .is_none_or(|(at, last)| last != phase || now.duration_since(at) >= INTERVAL)
    }

    /// When the next report of the same phase is allowed.
    fn next_allowed(&self) -> Instant {
        self.last.map_or_else(Instant::now, |(at, _)| at + INTERVAL)
    }

    fn record(&mut self, now: Instant, phase: &'static str) {
        self.last = Some((now, phase));
    }
}

/// Where task code posts updates; cheap to clone, usable from blocking threads.
#[derive(Debug, Clone)]
pub struct Reporter {
    tx: Arc<watch::Sender<Option<Update>>>,
}

impl Reporter {
    /// Posts an update (the reporter task sends the latest one when allowed).
    pub fn post(&self, update: Update) {
        self.tx.send_replace(Some(update));
    }
}

/// Starts reporting the progress of `task_id`; the task ends, after sending the last update,
/// when every [`Reporter`] clone is dropped.
pub fn start(api: Api, task_id: String) -> (Reporter, JoinHandle<()>) {
    let (tx, mut rx) = watch::channel(None::<Update>);
    let handle = tokio::spawn(async move {
        let mut throttle = Throttle::default();
        let mut pending: Option<Update> = None;
        let send = |u: Update| {
            let api = api.clone();
            let task_id = task_id.clone();
            async move {
                let report = Progress {
                    task_id,
                    phase: u.phase.to_string(),
                    bytes_done: u.bytes_done,
                    bytes_total: u.bytes_total,
                    bytes_per_second: u.bytes_per_second,
                };
                if let Err(status) = api.report_progress(report).await {
                    tracing::debug!(code = ?status.code(), error = status.message(), "progress report lost");
                }
            }
        };
        loop {
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        if let Some(u) = pending.take() {
                            send(u).await;
                        }
                        return;
                    }
                    let Some(u) = rx.borrow_and_update().clone() else { continue };
                    let now = Instant::now();
                    if throttle.allows(now, u.phase) {
                        throttle.record(now, u.phase);
                        pending = None;
                        send(u).await;
                    } else {
                        pending = Some(u);
                    }
                }
                () = tokio::time::sleep_until(throttle.next_allowed()), if pending.is_some() => {
                    if let Some(u) = pending.take() {
                        throttle.record(Instant::now(), u.phase);
                        send(u).await;
                    }
                }
            }
        }
    });
    (Reporter { tx: Arc::new(tx) }, handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_a_second_or_on_phase_change() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        assert!(t.allows(t0, "write"));
        t.record(t0, "write");
        assert!(!t.allows(t0 + Duration::from_millis(400), "write"));
        assert!(t.allows(t0 + Duration::from_millis(400), "sync"));
        assert!(t.allows(t0 + INTERVAL, "write"));
        assert_eq!(t.next_allowed(), t0 + INTERVAL);
    }

    #[test]
    fn rate_is_bytes_per_second() {
        let u = Update::bytes("write", 10 << 20, 20 << 20, Duration::from_secs(2));
        assert_eq!(u.bytes_per_second, 5 << 20);
        assert_eq!(
            Update::bytes("clean", 5, 5, Duration::ZERO).bytes_per_second,
            5000
        );
    }
}
