//! Network boot services, independent of Kubernetes: the controller feeds them a [`dhcp::Site`]
//! view derived from its Rack and Server objects and serves what they decide.
//!
//! - [`dhcp`]: DHCPv4 answers per rack (reservations, discovery range, relay via giaddr,
//!   proxyDHCP), the boot file chosen by client firmware.
//! - [`tftp`]: read-only TFTP for the iPXE binaries, nothing outside its root.
//! - [`ipxe`]: iPXE scripts (ramdisk, local disk, exit).
//! - [`ramdisk`]: the served ramdisk's version (a warm pool is refreshed when it changes).
//! - [`token`]: one-time boot tokens (HMAC over the server and its boot attempt).
//! - [`netns`]: opening sockets inside a network namespace (the lab, the tests).

pub mod dhcp;
pub mod ipxe;
pub mod metrics;
pub mod netns;
pub mod ramdisk;
pub mod tftp;
pub mod token;
