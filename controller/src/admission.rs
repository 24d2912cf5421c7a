//! Proof that the chart's ValidatingAdmissionPolicy narrows this controller's writes before it
//! writes anything.
//!
//! The API server loads a new policy asynchronously (it refreshes its policies about once a
//! second), so right after `helm install` the controller's ServiceAccount is bounded by RBAC
//! alone for a moment. The probe is a dry-run create of a Server the policy refuses (not named
//! after a boot MAC, not annotated as discovered): it changes nothing, and only a refusal that
//! names the policy counts as enforced.

use std::time::Duration;

use crds::Server;
use kube::api::{Api, PostParams};
use serde_json::json;
use tracing::{info, warn};

/// Name of the probe Server (never stored: every probe is a dry run).
pub const PROBE_NAME: &str = "groundwork-admission-probe";

/// How often the probe is repeated while the policy is not enforced.
const RETRY: Duration = Duration::from_millis(500);

/// Probes between two repeated warnings (about 30 s).
const WARN_EVERY: u32 = 60;

/// What one probe showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The policy refused the probe.
    Enforced,
    /// The API server would have created the probe: nothing narrows this identity yet.
    NotEnforced,
}

/// Why a probe told nothing.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The API server failed or refused the request for another reason (RBAC, connection).
    #[error("admission probe failed: {0}")]
    Api(#[from] kube::Error),
    /// The probe object does not deserialize (a bug).
    #[error("admission probe object: {0}")]
    Probe(#[from] serde_json::Error),
}

/// What a dry-run create's outcome says about `policy`: refused with a message naming it is
/// enforced, accepted is not; anything else is an error.
pub fn verdict(policy: &str, outcome: Result<(), kube::Error>) -> Result<Probe, AdmissionError> {
    match outcome {
        Ok(()) => Ok(Probe::NotEnforced),
        Err(kube::Error::Api(s))
            if s.code == 403
                && s.message
                    .contains(&format!("ValidatingAdmissionPolicy '{policy}'")) =>
        {
            Ok(Probe::Enforced)
        }
        Err(e) => Err(e.into()),
    }
}

/// One dry-run create of the probe Server in `namespace`.
pub async fn probe(
    client: &kube::Client,
    namespace: &str,
    policy: &str,
) -> Result<Probe, AdmissionError> {
    let api: Api<Server> = Api::namespaced(client.clone(), namespace);
    let server: Server = serde_json::from_value(json!({
        "apiVersion": "groundwork.dev/v1alpha1",
        "kind": "Server",
        "metadata": {"name": PROBE_NAME},
        "spec": {},
    }))?;
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    verdict(policy, api.create(&params, &server).await.map(|_| ()))
}

/// Returns once `policy` refuses the probe; until then logs why it waits (the first time and
/// about every 30 s).
pub async fn wait_enforced(client: &kube::Client, namespace: &str, policy: &str) {
    let mut attempt: u32 = 0;
    loop {
        let warn_now = attempt.is_multiple_of(WARN_EVERY);
        match probe(client, namespace, policy).await {
            Ok(Probe::Enforced) => {
                info!(
                    policy,
                    "admission policy enforced: the API server narrows this controller's Server writes"
                );
                return;
            }
            Ok(Probe::NotEnforced) if warn_now => warn!(
                policy,
                reason = "AdmissionPolicyNotEnforced",
                "admission policy not enforced yet (the API server loads a new one within seconds; \
                 if this persists, is it installed and is this the chart's ServiceAccount?): \
                 writing nothing until it is"
            ),
            Err(e) if warn_now => warn!(
                policy,
                error = %e,
                reason = "AdmissionProbeFailed",
                "cannot probe the admission policy: writing nothing until it is shown enforced"
            ),
            Ok(Probe::NotEnforced) | Err(_) => {}
        }
        attempt = attempt.wrapping_add(1);
        tokio::time::sleep(RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: u16, message: &str) -> Result<(), kube::Error> {
        Err(kube::Error::Api(
            kube::core::Status::failure(message, "Forbidden")
                .with_code(code)
                .boxed(),
        ))
    }

    #[test]
    fn only_a_refusal_naming_the_policy_is_enforcement() {
        let policy = "gw-controller-server-writes";
        assert_eq!(
            verdict(
                policy,
                refused(
                    403,
                    "servers.groundwork.dev \"groundwork-admission-probe\" is forbidden: \
                     ValidatingAdmissionPolicy 'gw-controller-server-writes' with binding \
                     'gw-controller-server-writes' denied request: no"
                )
            )
            .unwrap(),
            Probe::Enforced
        );
        assert_eq!(verdict(policy, Ok(())).unwrap(), Probe::NotEnforced);
        // RBAC says no: that proves nothing about the policy.
        assert!(
            verdict(
                policy,
                refused(
                    403,
                    "servers.groundwork.dev is forbidden: User \"x\" cannot create resource"
                )
            )
            .is_err()
        );
        // Another policy refused.
        assert!(
            verdict(
                policy,
                refused(403, "ValidatingAdmissionPolicy 'other' denied request: no")
            )
            .is_err()
        );
        assert!(
            verdict(
                policy,
                refused(
                    500,
                    "ValidatingAdmissionPolicy 'gw-controller-server-writes'"
                )
            )
            .is_err()
        );
    }
}
