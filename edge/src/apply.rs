//! Applying the mapped configuration to BIRD through `routing::Applier`.
//!
//! A failed apply leaves BIRD on its previous configuration (the Applier guarantees that);
//! the failure is remembered with its reason for the ConfigApplied=False conditions and the
//! same configuration is retried only after [`RETRY_AFTER`], so a broken input does not make
//! the daemon hammer BIRD every second.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use routing::{Applier, ApplyOutcome, RenderOptions, RouterConfig, render_with};

/// How long a configuration that failed is left alone before it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// The outcome of the last apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigState {
    /// BIRD runs the desired configuration.
    Applied {
        /// Its hash.
        hash: String,
    },
    /// The desired configuration could not be applied; BIRD keeps the previous one.
    Failed {
        /// The hash of the configuration still running, if this daemon applied one.
        running: Option<String>,
        /// Stable reason (`routing::ApplyError::reason`).
        reason: &'static str,
        /// Human message.
        message: String,
    },
}

impl ConfigState {
    /// True when the desired configuration runs.
    pub fn is_applied(&self) -> bool {
        matches!(self, ConfigState::Applied { .. })
    }

    /// The hash of the configuration BIRD runs, when known.
    pub fn running_hash(&self) -> Option<&str> {
        match self {
            ConfigState::Applied { hash } => Some(hash),
            ConfigState::Failed { running, .. } => running.as_deref(),
        }
    }
}

/// Wraps a `routing::Applier` with retry bookkeeping.
#[derive(Debug)]
pub struct ConfigApplier {
    applier: Applier,
    options: RenderOptions,
    failed: Option<(String, Instant, ConfigState)>,
    attempt: Option<Attempt>,
}

/// One configuration apply that talked to BIRD (an unchanged configuration is no attempt).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// `Err(reason)` when it failed.
    pub outcome: Result<(), String>,
    /// How long it took (render excluded: syntax check, configure, verify, confirm).
    pub took: Duration,
}

impl ConfigApplier {
    /// An applier writing into `dir` and controlling the BIRD on `socket`.
    pub fn new(
        dir: impl Into<PathBuf>,
        socket: impl Into<PathBuf>,
        options: RenderOptions,
    ) -> Self {
        Self {
            applier: Applier::new(dir, socket).with_render_options(options.clone()),
            options,
            failed: None,
            attempt: None,
        }
    }

    /// Uses another `bird` binary for the syntax check.
    pub fn with_bird_binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.applier = self.applier.with_bird_binary(binary);
        self
    }

    /// Forget what was applied (BIRD restarted or lost protocols): the next apply talks to BIRD.
    pub fn invalidate(&mut self) {
        self.applier.invalidate();
        self.failed = None;
    }

    /// The apply attempt made by the last [`ConfigApplier::apply`], if it made one.
    pub fn take_attempt(&mut self) -> Option<Attempt> {
        self.attempt.take()
    }

    /// Applies `cfg` unless it is unchanged (hash) or failed less than [`RETRY_AFTER`] ago.
    pub async fn apply(&mut self, cfg: &RouterConfig) -> ConfigState {
        self.attempt = None;
        let running = self.applier.applied_hash().map(str::to_string);
        let rendered = match render_with(cfg, &self.options) {
            Ok(r) => r,
            Err(e) => {
                return ConfigState::Failed {
                    running,
                    reason: e.reason(),
                    message: format!("invalid routing configuration: {e}"),
                };
            }
        };
        let hash = rendered.config_hash();
        if let Some((failed_hash, at, state)) = &self.failed
            && *failed_hash == hash
            && at.elapsed() < RETRY_AFTER
        {
            return state.clone();
        }
        let started = Instant::now();
        let result = self.applier.apply_rendered(&rendered).await;
        let took = started.elapsed();
        match result {
            Ok(ApplyOutcome::Unchanged { hash }) => ConfigState::Applied { hash },
            Ok(ApplyOutcome::Applied { hash, .. }) => {
                self.attempt = Some(Attempt {
                    outcome: Ok(()),
                    took,
                });
                tracing::info!(%hash, "routing configuration applied");
                self.failed = None;
                ConfigState::Applied { hash }
            }
            Err(e) => {
                let state = ConfigState::Failed {
                    running,
                    reason: e.reason(),
                    message: format!("{e}; the previous configuration keeps running"),
                };
                tracing::warn!(reason = e.reason(), error = %e, %hash, "routing configuration not applied");
                self.attempt = Some(Attempt {
                    outcome: Err(e.reason().to_string()),
                    took,
                });
                self.failed = Some((hash, Instant::now(), state.clone()));
                state
            }
        }
    }
}
