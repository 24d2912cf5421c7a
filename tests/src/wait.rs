//! The one "wait until" of the tests: poll a check until it returns `Some`, or fail naming what
//! was awaited. It needs std and tokio only, so the tests of the crates below this harness (bmc,
//! routing), which must not depend on it, include this file by path instead of copying it.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`eventually`] polls: quick enough for a test, gentle on an API server.
pub const POLL: Duration = Duration::from_millis(100);

/// Polls `check` every [`POLL`] until it returns Some, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_every(POLL, timeout, what, check).await
}

/// [`eventually`], polling every `every` (a test that times a convergence wants a finer grain).
pub async fn eventually_every<T, F, Fut>(
    every: Duration,
    timeout: Duration,
    what: &str,
    mut check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(every).await;
    }
}
