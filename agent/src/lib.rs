//! The Groundwork host agent: runs in the netboot ramdisk, registers with the controller's
//! agent API with the machine's inventory, then carries out its tasks: provision (pick the
//! root device from hints, stream the image onto it, add a NoCloud config drive, or adopt a
//! disk that already holds the image) and clean.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod boot_entry;
pub mod clean;
pub mod cmdline;
pub mod config_drive;
pub mod disks;
pub mod gpt;
pub mod image;
pub mod inventory;
pub mod kexec;
pub mod logs;
pub mod partition_table;
pub mod run;
