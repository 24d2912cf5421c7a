//! The Kubernetes plumbing the controller and the edge daemon share, one copy of each:
//! [`conditions`] (merge with stable transition times, the kstatus trio, a field manager's own
//! conditions), [`events`] (one Event per condition transition), [`status`] (server-side
//! apply of a status, only when it changed) and [`store`] (what cached objects keep).
//!
//! Import rule: this crate depends on `crds` and kube only, never on a crate of ours above it.

pub mod conditions;
pub mod events;
pub mod status;
pub mod store;
