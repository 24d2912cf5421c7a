//! Applying a rendered configuration to a running BIRD, safely.
//!
//! Pipeline: skip when the hash is unchanged → write into a staging directory
//! (secrets file created 0600) → `bird -p -c` (parse only; a syntax error
//! stops here with nothing applied) → move the files into place (keeping the
//! previous ones) → `configure "<file>" timeout N` → verify that BIRD answers
//! and every expected protocol exists → `configure confirm`. If anything after
//! `configure` fails, BIRD returns to the old configuration by itself (we also
//! ask it to `configure undo` right away) and the previous files are put back.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::birdc::{BirdClient, BirdError, ConfigureOutcome};
use crate::model::RouterConfig;
use crate::render::{RenderOptions, RenderedConfig, render_with};
use crate::validate::ValidationErrors;

/// Name of the main configuration file inside the applier's directory.
pub const MAIN_FILE: &str = "bird.conf";
const STAGING_DIR: &str = ".staging";
const PREVIOUS_SUFFIX: &str = ".previous";

/// Why an apply failed. Every variant leaves BIRD on its previous configuration.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The input did not validate; nothing was written.
    #[error("invalid routing configuration: {0}")]
    Invalid(#[from] ValidationErrors),
    /// Writing the files failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The `bird` binary could not be run for the syntax check.
    #[error("cannot run {binary} for the syntax check: {source}")]
    BirdBinary {
        /// The binary.
        binary: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// `bird -p` rejected the configuration; nothing was applied.
    #[error("rendered configuration does not parse: {message}")]
    Syntax {
        /// BIRD's message (file:line:column and reason).
        message: String,
    },
    /// Talking to BIRD failed (the old configuration stays or comes back by itself).
    #[error(transparent)]
    Bird(#[from] BirdError),
    /// After `configure`, expected protocols were missing; rolled back.
    #[error("after configure, protocols {missing:?} are missing; rolled back")]
    VerifyFailed {
        /// The missing protocol names.
        missing: Vec<String>,
    },
}

impl ApplyError {
    /// Stable CamelCase reason for the ConfigApplied=False condition.
    pub fn reason(&self) -> &'static str {
        match self {
            ApplyError::Invalid(e) => e.reason(),
            ApplyError::Io { .. } => "ConfigWriteFailed",
            ApplyError::BirdBinary { .. } => "BirdBinaryMissing",
            ApplyError::Syntax { .. } => "ConfigSyntaxError",
            ApplyError::Bird(e) => e.reason(),
            ApplyError::VerifyFailed { .. } => "ConfigVerifyFailed",
        }
    }
}

/// What an apply did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The hash matched the last applied configuration; BIRD was not touched.
    Unchanged {
        /// The configuration hash.
        hash: String,
    },
    /// The configuration was applied and confirmed.
    Applied {
        /// The configuration hash.
        hash: String,
        /// What `configure` answered.
        outcome: ConfigureOutcome,
    },
}

/// Applies configurations to one BIRD daemon.
#[derive(Debug)]
pub struct Applier {
    dir: PathBuf,
    socket: PathBuf,
    bird_binary: PathBuf,
    confirm_timeout_s: u32,
    options: RenderOptions,
    applied_hash: Option<String>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ApplyError + '_ {
    move |source| ApplyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_file(path: &Path, content: &str, mode: u32) -> Result<(), ApplyError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    f.write_all(content.as_bytes()).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

impl Applier {
    /// An applier writing into `dir` (created if missing) and controlling the
    /// BIRD listening on `socket`.
    pub fn new(dir: impl Into<PathBuf>, socket: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            socket: socket.into(),
            bird_binary: PathBuf::from("bird"),
            confirm_timeout_s: 10,
            options: RenderOptions::default(),
            applied_hash: None,
        }
    }

    /// Uses another `bird` binary for the syntax check.
    pub fn with_bird_binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.bird_binary = binary.into();
        self
    }

    /// Seconds BIRD waits for `configure confirm` before rolling back (default 10).
    pub fn with_confirm_timeout(mut self, secs: u32) -> Self {
        self.confirm_timeout_s = secs;
        self
    }

    /// Render options used by [`Self::apply`].
    pub fn with_render_options(mut self, options: RenderOptions) -> Self {
        self.options = options;
        self
    }

    /// The path of the main configuration file.
    pub fn main_path(&self) -> PathBuf {
        self.dir.join(MAIN_FILE)
    }

    /// Hash of the configuration last applied by this applier.
    pub fn applied_hash(&self) -> Option<&str> {
        self.applied_hash.as_deref()
    }

    /// Forgets the last applied hash, so the next apply talks to BIRD again.
    pub fn invalidate(&mut self) {
        self.applied_hash = None;
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Validates, renders and applies `cfg`.
    pub async fn apply(&mut self, cfg: &RouterConfig) -> Result<ApplyOutcome, ApplyError> {
        let rendered = render_with(cfg, &self.options)?;
        self.apply_rendered(&rendered).await
    }

    /// Applies an already rendered configuration.
    pub async fn apply_rendered(
        &mut self,
        rendered: &RenderedConfig,
    ) -> Result<ApplyOutcome, ApplyError> {
        let hash = rendered.config_hash();
        if self.applied_hash.as_deref() == Some(hash.as_str()) {
            tracing::debug!(%hash, "routing config unchanged; not applying");
            return Ok(ApplyOutcome::Unchanged { hash });
        }
        let dir = std::path::absolute(&self.dir).map_err(io_err(&self.dir))?;
        let staging = dir.join(STAGING_DIR);
        std::fs::create_dir_all(&staging).map_err(io_err(&staging))?;

        // 1. Stage and parse-check.
        let staged_main = staging.join(MAIN_FILE);
        let staged_secrets = staging.join(&rendered.secrets_file);
        write_file(&staged_secrets, &rendered.secrets, 0o600)?;
        write_file(&staged_main, &rendered.main, 0o644)?;
        self.syntax_check(&staged_main).await?;

        // 2. Move into place, keeping the previous files for a rollback.
        let main = dir.join(MAIN_FILE);
        let secrets = dir.join(&rendered.secrets_file);
        let backups = [backup(&main)?, backup(&secrets)?];
        std::fs::rename(&staged_secrets, &secrets).map_err(io_err(&secrets))?;
        std::fs::rename(&staged_main, &main).map_err(io_err(&main))?;

        // 3. Configure with a timeout, verify, confirm.
        match self.configure_verify_confirm(&main, rendered).await {
            Ok(outcome) => {
                for b in backups.into_iter().flatten() {
                    let _ = std::fs::remove_file(b);
                }
                tracing::info!(%hash, ?outcome, "routing config applied");
                self.applied_hash = Some(hash.clone());
                Ok(ApplyOutcome::Applied { hash, outcome })
            }
            Err(e) => {
                restore(&main, backups[0].as_deref());
                restore(&secrets, backups[1].as_deref());
                self.applied_hash = None;
                tracing::warn!(%hash, reason = e.reason(), error = %e, "routing config not applied");
                Err(e)
            }
        }
    }

    async fn syntax_check(&self, file: &Path) -> Result<(), ApplyError> {
        let out = tokio::process::Command::new(&self.bird_binary)
            .arg("-p")
            .arg("-c")
            .arg(file)
            .output()
            .await
            .map_err(|source| ApplyError::BirdBinary {
                binary: self.bird_binary.clone(),
                source,
            })?;
        if out.status.success() {
            return Ok(());
        }
        let mut message = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if message.is_empty() {
            message = format!("bird -p exited with {}", out.status);
        }
        Err(ApplyError::Syntax { message })
    }

    async fn configure_verify_confirm(
        &self,
        main: &Path,
        rendered: &RenderedConfig,
    ) -> Result<ConfigureOutcome, ApplyError> {
        let mut bird = BirdClient::connect(&self.socket).await?;
        let outcome = bird.configure_timeout(main, self.confirm_timeout_s).await?;
        let verified = async {
            bird.show_status().await?;
            let names = bird.protocol_names().await?;
            let missing: Vec<String> = rendered
                .bgp_protocols
                .iter()
                .filter(|p| !names.contains(p))
                .cloned()
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(ApplyError::VerifyFailed { missing })
            }
        }
        .await;
        if let Err(e) = verified {
            // BIRD would undo by itself after the timeout; do it now.
            if let Err(undo) = bird.configure_undo().await {
                tracing::warn!(error = %undo, "configure undo failed; BIRD rolls back on timeout");
            }
            return Err(e);
        }
        bird.configure_confirm().await?;
        Ok(outcome)
    }
}

fn backup(path: &Path) -> Result<Option<PathBuf>, ApplyError> {
    if !path.exists() {
        return Ok(None);
    }
    let mut name = path.as_os_str().to_os_string();
    name.push(PREVIOUS_SUFFIX);
    let prev = PathBuf::from(name);
    std::fs::copy(path, &prev).map_err(io_err(&prev))?;
    Ok(Some(prev))
}

fn restore(path: &Path, previous: Option<&Path>) {
    let result = match previous {
        Some(prev) => std::fs::rename(prev, path),
        None => std::fs::remove_file(path),
    };
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "could not restore previous routing config file");
    }
}
