//! Why a Service got no address: each error is one condition reason.

use std::net::IpAddr;

use crds::service::reasons;

use super::model::Family;

/// Why no address was allocated (the `groundwork.dev/AddressAllocated=False` reasons).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The requested-address annotation does not parse.
    #[error(
        "groundwork.dev/address {value:?} must list at most one IPv4 and one IPv6 address, comma-separated"
    )]
    InvalidAddress {
        /// The annotation's value.
        value: String,
    },
    /// No pool can serve the family (none at all, the named one is missing, or none has it).
    #[error("no BorderRouter address pool{} serves {family} addresses", pool.as_ref().map(|p| format!(" named {p:?}")).unwrap_or_default())]
    NoPool {
        /// The family.
        family: Family,
        /// The pool the Service names.
        pool: Option<String>,
    },
    /// The requested address is in no eligible pool.
    #[error("requested address {ip} is in no eligible address pool")]
    NotInPool {
        /// The address.
        ip: IpAddr,
    },
    /// The requested address belongs to another Service.
    #[error(
        "requested address {ip} is held by Service {by} (sharing needs the same groundwork.dev/allow-shared-ip key and no port in common)"
    )]
    InUse {
        /// The address.
        ip: IpAddr,
        /// `namespace/name` of the holder.
        by: String,
    },
    /// Every address of the eligible pools is taken.
    #[error("address pools {pools} have no free {family} address")]
    Exhausted {
        /// The family.
        family: Family,
        /// The eligible pools, comma-separated.
        pools: String,
    },
}

impl AllocError {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidAddress { .. } => reasons::INVALID_ADDRESS,
            Self::NoPool { .. } => reasons::NO_POOL,
            Self::NotInPool { .. } => reasons::ADDRESS_NOT_IN_POOL,
            Self::InUse { .. } => reasons::ADDRESS_IN_USE,
            Self::Exhausted { .. } => reasons::POOL_EXHAUSTED,
        }
    }
}
