//! The image writer: download, verify, decompress and write a disk image, first MiB last.

mod buffer;
pub mod checksum;
mod chunk_reader;
pub mod decompress;
pub mod device;
pub mod error;
pub mod fetch;
pub mod holdback;
pub mod qcow2;
pub mod write;

pub use buffer::{AlignedBuf, DIRECT_IO_ALIGN};
pub use checksum::{Algorithm, Checksum, ChecksumParseError};
pub use decompress::ImageFormat;
pub use device::{Device, DirectIo};
pub use error::WriteError;
pub use fetch::default_client;
pub use holdback::HOLDBACK_BYTES;
pub use write::{ImageSource, Phase, Progress, WriteOptions, WriteReport, write_image};
