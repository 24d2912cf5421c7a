//! An async client for BIRD's control socket (what `birdc` speaks).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::reply::Reply;
use crate::status::{
    BfdSession, SessionStatus, StatusParseError, parse_bfd_sessions, parse_protocol_status,
};

/// Errors talking to BIRD.
#[derive(Debug, thiserror::Error)]
pub enum BirdError {
    /// Socket I/O failed (BIRD not running, permission, ...).
    #[error("BIRD control socket {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// BIRD did not answer in time.
    #[error("BIRD did not answer {command:?} within {timeout:?}")]
    Timeout {
        /// The command.
        command: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The socket closed mid-reply or sent something that is not BIRD's protocol.
    #[error("unexpected reply from BIRD: {0}")]
    Protocol(String),
    /// BIRD answered with an error code (8xxx runtime, 9xxx syntax).
    #[error("BIRD error {code} for {command:?}: {message}")]
    Command {
        /// The command.
        command: String,
        /// The error code.
        code: u16,
        /// BIRD's message.
        message: String,
    },
    /// A configuration file failed to parse (`configure` / `configure check`).
    #[error("configuration rejected by BIRD: {message}")]
    ConfigRejected {
        /// BIRD's message with file:line:column.
        message: String,
    },
    /// No such protocol.
    #[error("no protocol named {0:?}")]
    NoSuchProtocol(String),
    /// A path or name that cannot be quoted safely for BIRD's CLI.
    #[error("cannot pass {0:?} to BIRD (contains a quote or newline)")]
    BadArgument(String),
    /// The reply could not be parsed into a status.
    #[error("cannot parse status: {0}")]
    Status(#[from] StatusParseError),
}

impl BirdError {
    /// Stable CamelCase reason.
    pub fn reason(&self) -> &'static str {
        match self {
            BirdError::Io { .. } => "BirdUnreachable",
            BirdError::Timeout { .. } => "BirdTimeout",
            BirdError::Protocol(_) => "BirdProtocolError",
            BirdError::Command { .. } => "BirdCommandFailed",
            BirdError::ConfigRejected { .. } => "ConfigRejected",
            BirdError::NoSuchProtocol(_) => "NoSuchProtocol",
            BirdError::BadArgument(_) => "BadArgument",
            BirdError::Status(_) => "BirdProtocolError",
        }
    }
}

/// The result of a successful `configure`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigureOutcome {
    /// 0003: reconfigured.
    Reconfigured,
    /// 0004: reconfiguration in progress (protocols shutting down).
    InProgress,
    /// 0005 / 0017: queued behind a running reconfiguration.
    Queued,
}

/// Default per-command timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to BIRD's control socket.
#[derive(Debug)]
pub struct BirdClient {
    path: PathBuf,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    timeout: Duration,
}

fn quote(arg: &str) -> Result<String, BirdError> {
    if arg.contains(['"', '\n', '\r']) {
        return Err(BirdError::BadArgument(arg.to_string()));
    }
    Ok(format!("\"{arg}\""))
}

fn path_arg(path: &Path) -> Result<String, BirdError> {
    quote(&path.to_string_lossy())
}

impl BirdClient {
    /// Connects and reads the 0001 greeting.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, BirdError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| BirdError::Io {
            path: path.clone(),
            source,
        };
        let stream = tokio::time::timeout(DEFAULT_TIMEOUT, UnixStream::connect(&path))
            .await
            .map_err(|_| BirdError::Timeout {
                command: "connect".into(),
                timeout: DEFAULT_TIMEOUT,
            })?
            .map_err(io)?;
        let (r, w) = stream.into_split();
        let mut client = BirdClient {
            path,
            reader: BufReader::new(r),
            writer: w,
            timeout: DEFAULT_TIMEOUT,
        };
        let greeting = client.read_reply("<greeting>").await?;
        if greeting.final_code() != 1 {
            return Err(BirdError::Protocol(format!(
                "expected 0001 greeting, got {:04} {}",
                greeting.final_code(),
                greeting.final_text()
            )));
        }
        Ok(client)
    }

    /// Sets the per-command timeout.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    async fn read_reply(&mut self, command: &str) -> Result<Reply, BirdError> {
        let fut = async {
            let mut reply = Reply::default();
            let mut buf = String::new();
            loop {
                buf.clear();
                let n = self
                    .reader
                    .read_line(&mut buf)
                    .await
                    .map_err(|source| BirdError::Io {
                        path: self.path.clone(),
                        source,
                    })?;
                if n == 0 {
                    return Err(BirdError::Protocol("socket closed mid-reply".into()));
                }
                if reply.push_raw(buf.trim_end_matches(['\n', '\r'])) {
                    return Ok(reply);
                }
            }
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| BirdError::Timeout {
                command: command.to_string(),
                timeout: self.timeout,
            })?
    }

    /// Sends one command and returns its raw reply (errors included).
    pub async fn command_raw(&mut self, command: &str) -> Result<Reply, BirdError> {
        if command.contains(['\n', '\r']) {
            return Err(BirdError::BadArgument(command.to_string()));
        }
        tracing::debug!(command, "birdc");
        self.writer
            .write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(|source| BirdError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.read_reply(command).await
    }

    /// Sends one command; an 8xxx/9xxx line becomes [`BirdError::Command`].
    pub async fn command(&mut self, command: &str) -> Result<Reply, BirdError> {
        let reply = self.command_raw(command).await?;
        if let Some(e) = reply.error() {
            return Err(BirdError::Command {
                command: command.to_string(),
                code: e.code,
                message: e.text.clone(),
            });
        }
        Ok(reply)
    }

    /// `show status`: Ok when the daemon is up and running (0013).
    pub async fn show_status(&mut self) -> Result<Reply, BirdError> {
        let reply = self.command("show status").await?;
        if reply.final_code() != 13 {
            return Err(BirdError::Protocol(format!(
                "show status ended with {:04} {}",
                reply.final_code(),
                reply.final_text()
            )));
        }
        Ok(reply)
    }

    /// `show protocols`: the names of all protocols.
    pub async fn protocol_names(&mut self) -> Result<Vec<String>, BirdError> {
        let reply = self.command("show protocols").await?;
        Ok(reply
            .texts(1002)
            .filter_map(|t| t.split_whitespace().next().map(str::to_string))
            .collect())
    }

    /// `show protocols all "<name>"` plus `show bfd sessions`, parsed.
    pub async fn session_status(&mut self, protocol: &str) -> Result<SessionStatus, BirdError> {
        let cmd = format!("show protocols all {}", quote(protocol)?);
        let reply = self.command_raw(&cmd).await?;
        if reply.final_code() == 8003 {
            return Err(BirdError::NoSuchProtocol(protocol.to_string()));
        }
        if let Some(e) = reply.error() {
            return Err(BirdError::Command {
                command: cmd,
                code: e.code,
                message: e.text.clone(),
            });
        }
        let mut status = parse_protocol_status(&reply)?;
        if let Some(addr) = status.neighbor {
            let sessions = self.bfd_sessions().await?;
            status.bfd = sessions.iter().find(|s| s.address == addr).map(|s| s.state);
        }
        Ok(status)
    }

    /// `show bfd sessions` (empty when no BFD protocol runs).
    pub async fn bfd_sessions(&mut self) -> Result<Vec<BfdSession>, BirdError> {
        let reply = self.command_raw("show bfd sessions").await?;
        Ok(parse_bfd_sessions(&reply))
    }

    /// `configure check "<file>"`: parses a file with the running daemon.
    pub async fn configure_check(&mut self, file: &Path) -> Result<(), BirdError> {
        let reply = self
            .command_raw(&format!("configure check {}", path_arg(file)?))
            .await?;
        match reply.final_code() {
            20 => Ok(()),
            _ => Err(config_error(&reply)),
        }
    }

    /// `configure "<file>" timeout <secs>`: applies a file; BIRD undoes it by
    /// itself unless [`Self::configure_confirm`] follows within `secs`.
    pub async fn configure_timeout(
        &mut self,
        file: &Path,
        secs: u32,
    ) -> Result<ConfigureOutcome, BirdError> {
        let cmd = format!("configure {} timeout {secs}", path_arg(file)?);
        let reply = self.command_raw(&cmd).await?;
        configure_outcome(&reply)
    }

    /// `configure "<file>"` without a timeout.
    pub async fn configure(&mut self, file: &Path) -> Result<ConfigureOutcome, BirdError> {
        let reply = self
            .command_raw(&format!("configure {}", path_arg(file)?))
            .await?;
        configure_outcome(&reply)
    }

    /// `configure confirm`: keeps the configuration applied with a timeout.
    pub async fn configure_confirm(&mut self) -> Result<(), BirdError> {
        let reply = self.command("configure confirm").await?;
        match reply.final_code() {
            18 | 19 => Ok(()),
            code => Err(BirdError::Protocol(format!(
                "configure confirm ended with {code:04} {}",
                reply.final_text()
            ))),
        }
    }

    /// `configure undo`: returns to the previous configuration.
    pub async fn configure_undo(&mut self) -> Result<(), BirdError> {
        let reply = self.command("configure undo").await?;
        match reply.final_code() {
            3 | 4 | 5 | 17 | 19 => Ok(()),
            code => Err(BirdError::Protocol(format!(
                "configure undo ended with {code:04} {}",
                reply.final_text()
            ))),
        }
    }
}

fn config_error(reply: &Reply) -> BirdError {
    let message = reply.error().map_or_else(
        || format!("{:04} {}", reply.final_code(), reply.final_text()),
        |e| e.text.clone(),
    );
    BirdError::ConfigRejected { message }
}

fn configure_outcome(reply: &Reply) -> Result<ConfigureOutcome, BirdError> {
    match reply.final_code() {
        3 => Ok(ConfigureOutcome::Reconfigured),
        4 => Ok(ConfigureOutcome::InProgress),
        5 | 17 => Ok(ConfigureOutcome::Queued),
        _ => Err(config_error(reply)),
    }
}
