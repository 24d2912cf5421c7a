//! DHCPv4 for the provisioning networks: [`site`] is the view of the racks and reservations the
//! controller derives from its API objects, [`client`] recognises the client's firmware,
//! [`decide`] is the pure answer to one packet, [`server`] the sockets.

pub mod client;
pub mod decide;
pub mod server;
pub mod site;

pub use decide::{Destination, Drop, Outcome, answer};
pub use site::{Ingress, Leases, Mac, RackNet, Reservation, Site};
