//! `groundwork-edge`: the daemon on a border router that turns the `BorderRouter`,
//! `UpstreamLink` and `BlackholeRoute` objects of one router, and the LoadBalancer Services
//! holding addresses of its pools, into a running BIRD configuration and reports what BIRD
//! observes back into their status.
//!
//! The pipeline, one module per stage:
//! [`read`] (watch the objects, Secrets, Services, EndpointSlices and Nodes) → [`services`]
//! (pure: which Service addresses, routed to which nodes) → [`map`] (pure: objects →
//! `RouterConfig`, with per-object [`problem`]s) → [`apply`] (safe apply through
//! `routing::Applier`) → [`status`] (poll BIRD, compute status, write only what changed) and
//! [`expiry`] (expired blackholes are left out). [`run`] wires them together.

pub mod apply;
pub mod conditions;
pub mod error;
pub mod expiry;
pub mod map;
pub mod metrics;
pub mod problem;
pub mod read;
pub mod run;
pub mod services;
pub mod status;
