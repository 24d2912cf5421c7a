//! Status, in three stages: [`observe`] BIRD, [`compute`] the edge-owned status of every
//! object (pure), and [`write`] it with server-side apply under the `groundwork-edge` field
//! manager only when it changed.

pub mod compute;
pub mod observe;
pub mod service;
pub mod write;

pub use compute::{
    BlackholeStatus, LinkInput, LinkStatus, RouterStatus, blackhole_status, link_status,
    router_status,
};
pub use observe::{Observation, bird_alive, poll};
pub use service::{Carrying, ServiceInput, ServiceStatus, service_status};
pub use write::StatusWriter;
