//! The LoadBalancer Service contract: Services of type LoadBalancer with our class get an
//! address from a BorderRouter's `serviceAddressPools` (the controller writes
//! `status.loadBalancer.ingress` and the [`conditions::ADDRESS_ALLOCATED`] condition), and the
//! edge daemon of that router announces it (the [`conditions::ANNOUNCED`] condition). These
//! names are the contract between the user, the controller and the edge daemon.

/// The `spec.loadBalancerClass` Groundwork serves (a controller flag also makes it serve
/// Services without a class).
pub const LOAD_BALANCER_CLASS: &str = "groundwork.dev/border";

/// The label EndpointSlices carry with the name of their Service (set by Kubernetes).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Annotations a Service may carry.
pub mod annotations {
    /// Requested addresses, comma-separated (at most one per family), honoured when inside a
    /// pool and free (or shareable). Replaces the deprecated `spec.loadBalancerIP`.
    pub const ADDRESS: &str = "groundwork.dev/address";
    /// The name of the pool to allocate from; without it any pool with `autoAssign` serves.
    pub const ADDRESS_POOL: &str = "groundwork.dev/address-pool";
    /// A sharing key: Services with the same key (and no port in common) may share one address.
    pub const SHARING_KEY: &str = "groundwork.dev/allow-shared-ip";
}

/// Condition types on a Service (`status.conditions`), qualified so they never clash with
/// other controllers' conditions.
pub mod conditions {
    /// Written by the controller: the Service holds addresses from a pool, or why not.
    pub const ADDRESS_ALLOCATED: &str = "groundwork.dev/AddressAllocated";
    /// Written by the edge daemon of router `router` (its own type, so routers never clear
    /// each other's): the Service's addresses in that router's pools are announced to the
    /// ISPs (the message names the links and next hops; `lastTransitionTime` says since when),
    /// or why not. `edge1` → `edge1.border.groundwork.dev/Announced`.
    pub fn announced(router: &str) -> String {
        format!("{router}.border.groundwork.dev/Announced")
    }
}

/// The field manager under which the edge daemon of `router` writes Service status (one per
/// router: a Service may hold addresses of two routers, and each router's apply must leave
/// the other's condition alone). At most 128 characters, as the API server demands.
pub fn edge_field_manager(router: &str) -> String {
    let mut manager = format!("{}.{router}", crate::field_managers::EDGE);
    manager.truncate(128);
    manager
}

/// Condition reasons on a Service (CamelCase, stable).
pub mod reasons {
    /// Addresses allocated.
    pub const ALLOCATED: &str = "Allocated";
    /// Every address of the eligible pools is taken.
    pub const POOL_EXHAUSTED: &str = "PoolExhausted";
    /// No BorderRouter pool serves the Service (none exists, or the named pool is missing, or
    /// none has the Service's address family).
    pub const NO_POOL: &str = "NoPool";
    /// The requested address is in no eligible pool.
    pub const ADDRESS_NOT_IN_POOL: &str = "AddressNotInPool";
    /// The requested address is held by another Service that does not share it.
    pub const ADDRESS_IN_USE: &str = "AddressInUse";
    /// The `groundwork.dev/address` annotation does not parse.
    pub const INVALID_ADDRESS: &str = "InvalidAddress";
    /// Announced on at least one link.
    pub const ANNOUNCED: &str = "Announced";
    /// No node can serve the Service (no ready endpoint, node NotReady, or no node address
    /// on the router's node networks): the address is withdrawn.
    pub const NO_NEXT_HOP: &str = "NoNextHop";
    /// The router has no link that carries the address (none configured or none Established).
    pub const NO_LINK: &str = "NoLink";
}
