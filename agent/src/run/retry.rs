//! Retrying agent API calls across controller restarts.
//!
//! The agent API runs on every controller replica; a restart refuses connections for a few
//! seconds. Transient failures are retried with a doubling delay; refusals that another try
//! cannot change (bad credential, wrong server, no open attempt) are final.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tonic::{Code, Status};

/// How long and how often to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure.
    pub first_delay: Duration,
    /// Cap of the doubling delay.
    pub max_delay: Duration,
    /// Give up when the next try would start later than this after the first.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    /// 1 s doubling to 10 s, for up to 10 minutes.
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
            budget: Duration::from_secs(600),
        }
    }
}

impl RetryPolicy {
    /// The same delays within a shorter budget.
    pub fn with_budget(self, budget: Duration) -> Self {
        Self { budget, ..self }
    }

    /// Delay before retry number `retry` (0 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        self.first_delay
            .saturating_mul(2u32.saturating_pow(retry.min(31)))
            .min(self.max_delay)
    }
}

/// Whether another try may succeed: everything but refusals about who is calling, what it
/// asked for, or the server's state.
pub fn is_transient(status: &Status) -> bool {
    !matches!(
        status.code(),
        Code::Unauthenticated
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::OutOfRange
            | Code::Unimplemented
    )
}

/// How a retried call ended without success.
#[derive(Debug)]
pub enum Failure {
    /// A refusal another try cannot change.
    Final(Status),
    /// Still failing when the budget ran out.
    GaveUp {
        /// The last error.
        status: Status,
        /// Tries made.
        tries: u32,
    },
}

/// Runs `attempt` until it succeeds, fails finally, or the policy's budget is spent.
pub async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    call: &str,
    mut attempt: F,
) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let started = Instant::now();
    let mut retries = 0u32;
    loop {
        let status = match attempt().await {
            Ok(v) => return Ok(v),
            Err(status) if !is_transient(&status) => return Err(Failure::Final(status)),
            Err(status) => status,
        };
        let delay = policy.delay(retries);
        if started.elapsed() + delay > policy.budget {
            return Err(Failure::GaveUp {
                status,
                tries: retries + 1,
            });
        }
        tracing::warn!(call, code = ?status.code(), error = status.message(), retry_in_ms = delay.as_millis() as u64, "agent API call failed; retrying");
        tokio::time::sleep(delay).await;
        retries += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = RetryPolicy::default();
        let delays: Vec<u64> = (0..6).map(|r| p.delay(r).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn who_and_what_refusals_are_final() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Unknown,
            Code::Cancelled,
        ] {
            assert!(is_transient(&Status::new(code, "x")), "{code:?}");
        }
        for code in [
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::FailedPrecondition,
        ] {
            assert!(!is_transient(&Status::new(code, "x")), "{code:?}");
        }
    }

    // Paused time: the clock advances only through the sleeps, so the budget arithmetic below
    // holds on a loaded machine too.
    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_within_the_budget() {
        let tries = Cell::new(0);
        // The default's shape, in milliseconds: 20 ms doubling to 200 ms.
        let policy = RetryPolicy {
            first_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            budget: Duration::from_secs(600),
        };
        let got = retry(&policy, "Test", || {
            tries.set(tries.get() + 1);
            let n = tries.get();
            async move {
                if n < 4 {
                    Err(Status::unavailable("restarting"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert!(matches!(got, Ok(4)));

        // A final refusal stops at once.
        tries.set(0);
        let got: Result<(), _> = retry(&policy, "Test", || {
            tries.set(tries.get() + 1);
            async { Err(Status::unauthenticated("no")) }
        })
        .await;
        assert!(matches!(got, Err(Failure::Final(_))));
        assert_eq!(tries.get(), 1);

        // A controller that never comes back: give up when the next delay would pass the
        // budget (20+40+80+160+200*4 = 1100 ms of sleeps, the next 200 ms would end past 1180).
        let started = Instant::now();
        let got: Result<(), _> = retry(
            &policy.with_budget(Duration::from_millis(1180)),
            "Test",
            || async { Err(Status::unavailable("down")) },
        )
        .await;
        assert!(
            matches!(got, Err(Failure::GaveUp { tries: 9, .. })),
            "{got:?}"
        );
        assert!(started.elapsed() < Duration::from_millis(1180));
    }
}
