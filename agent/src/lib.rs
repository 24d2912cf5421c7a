//! The Groundwork host agent: runs in the netboot ramdisk, registers with the controller's
//! agent API with the machine's inventory, picks the root device from hints and streams the
//! image onto it.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cmdline;
pub mod disks;
pub mod image;
pub mod inventory;
pub mod partition_table;
pub mod run;
