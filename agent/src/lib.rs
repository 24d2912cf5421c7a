//! The Groundwork host agent: runs in the netboot ramdisk, inventories the machine's disks,
//! picks the root device from hints and streams the image onto it.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod disks;
pub mod image;
pub mod partition_table;
