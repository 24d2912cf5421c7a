//! Errors of the edge daemon, each with a stable reason string.

/// Why the daemon (or one of its stages) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A watch stream failed.
    #[error("watching {kind}: {message}")]
    Watch {
        /// The watched kind.
        kind: &'static str,
        /// What went wrong.
        message: String,
    },
    /// Building the Kubernetes client failed.
    #[error("kubernetes client configuration: {0}")]
    ClientConfig(String),
    /// Serializing a status patch failed.
    #[error("serializing status: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl Error {
    /// Stable CamelCase reason, for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubeApiError",
            Error::Watch { .. } => "WatchFailed",
            Error::ClientConfig(_) => "ClientConfigInvalid",
            Error::Serialize(_) => "SerializeFailed",
        }
    }
}
