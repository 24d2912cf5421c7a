//! The capabilities the boot services need: CAP_NET_BIND_SERVICE (ports 67 and 69) and
//! CAP_NET_RAW (sockets bound to the provisioning interfaces). Root has them. The image's
//! controller binary carries them as *permitted* file capabilities (not effective: a Pod that
//! does not grant them, such as the provider's, still starts the binary); a non-root process
//! raises them into its effective set here, before the async runtime starts any thread
//! (capabilities are per thread; threads created later inherit them).

use caps::{CapSet, Capability};

/// What the boot services need.
pub const NEEDED: [Capability; 2] = [Capability::CAP_NET_BIND_SERVICE, Capability::CAP_NET_RAW];

/// Why the boot services cannot have their capabilities.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    #[error(
        "the boot services need {0}, which this process neither has nor may raise: run as root, or the image's binary (file capabilities) in a Pod that adds NET_BIND_SERVICE and NET_RAW"
    )]
    Missing(Capability),
    #[error("raising {cap}: {source}")]
    Raise {
        cap: Capability,
        #[source]
        source: caps::errors::CapsError,
    },
}

impl CapabilityError {
    /// Reason label (logs, metrics).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing(_) => "CapabilityMissing",
            Self::Raise { .. } => "CapabilityRaiseFailed",
        }
    }
}

/// Raises each needed capability that is permitted but not effective; returns those raised.
pub fn raise() -> Result<Vec<Capability>, CapabilityError> {
    let has = |set, cap| caps::has_cap(None, set, cap).unwrap_or(false);
    let mut raised = Vec::new();
    for cap in NEEDED {
        if has(CapSet::Effective, cap) {
            continue;
        }
        if !has(CapSet::Permitted, cap) {
            return Err(CapabilityError::Missing(cap));
        }
        caps::raise(None, CapSet::Effective, cap)
            .map_err(|source| CapabilityError::Raise { cap, source })?;
        raised.push(cap);
    }
    Ok(raised)
}
