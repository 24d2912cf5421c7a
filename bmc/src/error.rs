//! Typed errors shared by every driver.

use thiserror::Error;

/// An error from a BMC operation.
///
/// Every variant carries a human-readable message meant for a Kubernetes
/// condition message or a log line. Messages never contain credentials: the
/// drivers build them from status codes, URLs without user info and the BMC's
/// own error text, never from request bodies or process arguments.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BmcError {
    /// The BMC could not be reached (connection refused, DNS failure, no route,
    /// no IPMI answer) after the configured retries.
    #[error("BMC unreachable: {0}")]
    Unreachable(String),
    /// The BMC rejected the credentials (HTTP 401/403, IPMI RAKP failure).
    #[error("BMC authentication failed: {0}")]
    AuthenticationFailed(String),
    /// The BMC (or this driver for this protocol) does not support the request.
    #[error("not supported by BMC: {0}")]
    NotSupported(String),
    /// The BMC answered, but not in a way this driver understands or accepts
    /// (unexpected status, malformed document, TLS verification failure,
    /// invalid address, server errors that outlived the retries).
    #[error("BMC protocol error: {0}")]
    Protocol(String),
    /// The BMC did not answer within the configured timeout.
    #[error("BMC request timed out: {0}")]
    Timeout(String),
}

impl BmcError {
    /// A stable CamelCase reason, for Kubernetes condition reasons and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            BmcError::Unreachable(_) => "BMCUnreachable",
            BmcError::AuthenticationFailed(_) => "AuthenticationFailed",
            BmcError::NotSupported(_) => "NotSupported",
            BmcError::Protocol(_) => "ProtocolError",
            BmcError::Timeout(_) => "Timeout",
        }
    }

    /// The message without the variant prefix.
    pub fn message(&self) -> &str {
        match self {
            BmcError::Unreachable(m)
            | BmcError::AuthenticationFailed(m)
            | BmcError::NotSupported(m)
            | BmcError::Protocol(m)
            | BmcError::Timeout(m) => m,
        }
    }

    /// Whether retrying the same call later may succeed without a change of
    /// configuration (unreachable, timeout, server-side protocol hiccups).
    pub fn is_transient(&self) -> bool {
        matches!(self, BmcError::Unreachable(_) | BmcError::Timeout(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_stable() {
        let cases = [
            (BmcError::Unreachable("x".into()), "BMCUnreachable"),
            (
                BmcError::AuthenticationFailed("x".into()),
                "AuthenticationFailed",
            ),
            (BmcError::NotSupported("x".into()), "NotSupported"),
            (BmcError::Protocol("x".into()), "ProtocolError"),
            (BmcError::Timeout("x".into()), "Timeout"),
        ];
        for (err, reason) in cases {
            assert_eq!(err.reason(), reason);
            assert_eq!(err.message(), "x");
        }
    }
}
