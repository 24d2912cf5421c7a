//! The qcow2 header and the L1/L2 table entries (QEMU's docs/interop/qcow2.txt), parsed into
//! what a reader without a backing file needs.

use super::Error;

/// `QFI\xfb`.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";

/// Bytes of a version 2 header.
pub const V2_HEADER_LEN: usize = 72;

/// Bytes of a version 3 header up to and including `compression_type`.
const V3_COMPRESSION_TYPE_END: usize = 105;

/// QEMU's limit on the L1 table (32 MiB), which also bounds what the reader buffers for it.
pub const MAX_L1_BYTES: u64 = 32 << 20;

/// Offset bits 9-55 of L1 entries, standard L2 entries and refcount table entries.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;

/// L2 entry bit 62: the cluster is compressed.
const COMPRESSED: u64 = 1 << 62;

/// Standard cluster descriptor bit 0 (version 3 without extended L2 entries): reads as zeros.
const ZERO_FLAG: u64 = 1;

/// Incompatible feature bits (version 3).
const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTENDED_L2: u64 = 1 << 4;

/// How compressed clusters are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Raw deflate (zlib without its header), the default.
    Deflate,
    /// zstd (compression type 1).
    Zstd,
}

/// What the reader needs from a qcow2 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// 2 or 3.
    pub version: u32,
    /// log2 of the cluster size (9 to 21).
    pub cluster_bits: u32,
    /// Size of the virtual disk in bytes.
    pub virtual_size: u64,
    /// Entries in the active L1 table.
    pub l1_size: u32,
    /// Where the active L1 table starts in the file.
    pub l1_table_offset: u64,
    /// Where the refcount table starts in the file.
    pub refcount_table_offset: u64,
    /// Clusters the refcount table occupies.
    pub refcount_table_clusters: u32,
    /// How compressed clusters are compressed.
    pub compression: Compression,
    /// L2 entries are 128 bits with a subcluster bitmap.
    pub extended_l2: bool,
}

fn be32(b: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(word)
}

/// The big-endian u64 at `at`; `b` must hold it.
pub fn be64(b: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(word)
}

impl Header {
    /// Parses the start of the file: at least the header itself ([`V2_HEADER_LEN`] bytes for
    /// version 2, 105 for version 3); more of the first cluster lets the error for an image with
    /// a backing file name it.
    ///
    /// Refuses what a stand-alone image written to a disk cannot have: backing files,
    /// encryption, external data files, and incompatible features this reader does not know.
    pub fn parse(start: &[u8]) -> Result<Self, Error> {
        if start.len() < 4 || start[..4] != MAGIC {
            return Err(Error::Corrupt(
                "not a qcow2 image (no QFI\\xfb magic at the start)".into(),
            ));
        }
        if start.len() < V2_HEADER_LEN {
            return Err(Error::Corrupt(format!(
                "the image ends inside its header ({} bytes)",
                start.len()
            )));
        }
        let version = be32(start, 4);
        if version != 2 && version != 3 {
            return Err(Error::Unsupported(format!("qcow2 version {version}")));
        }
        let backing_file_offset = be64(start, 8);
        if backing_file_offset != 0 {
            let len = be32(start, 16) as usize;
            let name = usize::try_from(backing_file_offset)
                .ok()
                .and_then(|at| start.get(at..at.checked_add(len)?))
                .map(|n| format!(" ({:?})", String::from_utf8_lossy(n)))
                .unwrap_or_default();
            return Err(Error::Unsupported(format!(
                "a backing file{name}: the image is not stand-alone; flatten it with qemu-img convert"
            )));
        }
        let cluster_bits = be32(start, 20);
        if !(9..=21).contains(&cluster_bits) {
            return Err(Error::Unsupported(format!(
                "cluster_bits {cluster_bits} (9 to 21 are valid)"
            )));
        }
        let virtual_size = be64(start, 24);
        let crypt_method = be32(start, 32);
        if crypt_method != 0 {
            let what = match crypt_method {
                1 => "AES",
                2 => "LUKS",
                _ => "unknown",
            };
            return Err(Error::Unsupported(format!("encryption ({what})")));
        }
        let l1_size = be32(start, 36);
        let l1_table_offset = be64(start, 40);
        let refcount_table_offset = be64(start, 48);
        let refcount_table_clusters = be32(start, 56);

        let mut compression = Compression::Deflate;
        let mut extended_l2 = false;
        if version == 3 {
            if start.len() < 104 {
                return Err(Error::Corrupt(format!(
                    "the image ends inside its version 3 header ({} bytes)",
                    start.len()
                )));
            }
            let incompatible = be64(start, 72);
            let header_length = be32(start, 100) as usize;
            if header_length < 104 {
                return Err(Error::Corrupt(format!(
                    "header_length {header_length} is below 104"
                )));
            }
            if incompatible & INCOMPAT_CORRUPT != 0 {
                return Err(Error::Corrupt(
                    "the image is marked corrupt (incompatible feature bit 1); repair it with qemu-img check -r all".into(),
                ));
            }
            if incompatible & INCOMPAT_DATA_FILE != 0 {
                return Err(Error::Unsupported(
                    "an external data file: the guest data is not in the image".into(),
                ));
            }
            let known = INCOMPAT_DIRTY
                | INCOMPAT_CORRUPT
                | INCOMPAT_DATA_FILE
                | INCOMPAT_COMPRESSION
                | INCOMPAT_EXTENDED_L2;
            if incompatible & !known != 0 {
                return Err(Error::Unsupported(format!(
                    "incompatible feature bits {:#x}",
                    incompatible & !known
                )));
            }
            let compression_type = if header_length >= V3_COMPRESSION_TYPE_END {
                *start
                    .get(104)
                    .ok_or_else(|| Error::Corrupt("the image ends inside its header".into()))?
            } else {
                0
            };
            compression = match compression_type {
                0 => Compression::Deflate,
                1 => Compression::Zstd,
                other => {
                    return Err(Error::Unsupported(format!("compression type {other}")));
                }
            };
            if (incompatible & INCOMPAT_COMPRESSION != 0) != (compression_type != 0) {
                return Err(Error::Corrupt(format!(
                    "compression type {compression_type} disagrees with incompatible feature bit 3"
                )));
            }
            extended_l2 = incompatible & INCOMPAT_EXTENDED_L2 != 0;
            if extended_l2 && cluster_bits < 14 {
                return Err(Error::Corrupt(format!(
                    "extended L2 entries need clusters of at least 16 KiB, not 2^{cluster_bits}"
                )));
            }
        }

        let header = Self {
            version,
            cluster_bits,
            virtual_size,
            l1_size,
            l1_table_offset,
            refcount_table_offset,
            refcount_table_clusters,
            compression,
            extended_l2,
        };
        if u64::from(l1_size) * 8 > MAX_L1_BYTES {
            return Err(Error::Unsupported(format!(
                "an L1 table of {l1_size} entries (more than 32 MiB)"
            )));
        }
        if u64::from(l1_size) < header.l1_entries_needed() {
            return Err(Error::Corrupt(format!(
                "an L1 table of {l1_size} entries cannot map {virtual_size} bytes"
            )));
        }
        for (what, offset) in [
            ("L1 table", l1_table_offset),
            ("refcount table", refcount_table_offset),
        ] {
            if offset & (header.cluster_size() - 1) != 0 {
                return Err(Error::Corrupt(format!(
                    "the {what} offset {offset:#x} is not cluster-aligned"
                )));
            }
        }
        Ok(header)
    }

    /// Bytes per cluster.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Bytes per L2 table entry (8, or 16 with extended L2 entries).
    pub fn l2_entry_size(&self) -> usize {
        if self.extended_l2 { 16 } else { 8 }
    }

    /// Entries per L2 table.
    pub fn l2_entries(&self) -> u64 {
        self.cluster_size() / self.l2_entry_size() as u64
    }

    /// Guest bytes one L2 table maps.
    pub fn l2_span(&self) -> u64 {
        self.l2_entries() << self.cluster_bits
    }

    /// L1 entries that map the virtual disk (the table may have more).
    pub fn l1_entries_needed(&self) -> u64 {
        self.virtual_size.div_ceil(self.l2_span())
    }

    /// Bytes per subcluster (extended L2 entries: 32 per cluster).
    pub fn subcluster_size(&self) -> u64 {
        self.cluster_size() / 32
    }

    /// The L2 table an L1 entry points to, or `None` when the range is unallocated.
    pub fn l1_entry(&self, raw: u64) -> Result<Option<u64>, Error> {
        self.table_offset("L1", raw)
    }

    /// The refcount block a refcount table entry points to, or `None`.
    pub fn refcount_table_entry(&self, raw: u64) -> Result<Option<u64>, Error> {
        self.table_offset("refcount table", raw)
    }

    fn table_offset(&self, table: &str, raw: u64) -> Result<Option<u64>, Error> {
        let offset = raw & OFFSET_MASK;
        if offset & (self.cluster_size() - 1) != 0 {
            return Err(Error::Corrupt(format!(
                "{table} entry {raw:#018x} points to an unaligned offset"
            )));
        }
        Ok((offset != 0).then_some(offset))
    }

    /// Decodes an L2 entry; `bitmap` is the second word of an extended entry (ignored otherwise).
    pub fn l2_entry(&self, raw: u64, bitmap: u64) -> Result<Cluster, Error> {
        if raw & COMPRESSED != 0 {
            // x = 62 - (cluster_bits - 8): bits 0..x are the byte offset, x..62 the number of
            // additional 512-byte sectors.
            let shift = 62 - (self.cluster_bits - 8);
            let host = raw & ((1u64 << shift) - 1);
            let sectors = ((raw >> shift) & ((1u64 << (self.cluster_bits - 8)) - 1)) + 1;
            let len = sectors * 512 - (host & 511);
            return Ok(Cluster::Compressed { host, len });
        }
        let host = raw & OFFSET_MASK;
        if host & (self.cluster_size() - 1) != 0 {
            return Err(Error::Corrupt(format!(
                "L2 entry {raw:#018x} points to an unaligned offset"
            )));
        }
        let allocated = if self.extended_l2 {
            let allocated = bitmap as u32;
            let zero = (bitmap >> 32) as u32;
            if allocated & zero != 0 {
                return Err(Error::Corrupt(format!(
                    "extended L2 entry {raw:#018x}/{bitmap:#018x} marks subclusters both allocated and zero"
                )));
            }
            allocated
        } else if raw & ZERO_FLAG != 0 {
            if self.version < 3 {
                return Err(Error::Corrupt(format!(
                    "zero cluster entry {raw:#018x} in a version 2 image"
                )));
            }
            0
        } else {
            u32::MAX
        };
        if allocated == 0 || (host == 0 && !self.extended_l2) {
            return Ok(Cluster::Zero { host });
        }
        if host == 0 {
            return Err(Error::Corrupt(format!(
                "extended L2 entry {raw:#018x}/{bitmap:#018x} has allocated subclusters but no offset"
            )));
        }
        Ok(Cluster::Data { host, allocated })
    }
}

/// What a guest cluster holds, without a backing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cluster {
    /// Unallocated or a zero cluster: reads as zeros.
    Zero {
        /// The host cluster preallocated for it (its contents are not used), or 0.
        host: u64,
    },
    /// Stored as is at `host`; subcluster `i` is data when bit `i` of `allocated` is set and
    /// reads as zeros otherwise (all bits set without extended L2 entries).
    Data {
        /// Cluster-aligned offset in the file.
        host: u64,
        /// Subcluster allocation bitmap.
        allocated: u32,
    },
    /// Compressed: the compressed bytes are the `len` bytes at `host` (the range may run into
    /// the next compressed cluster or past the end of the file; decompression stops at a
    /// whole cluster).
    Compressed {
        /// Byte offset in the file.
        host: u64,
        /// Bytes to read (whole 512-byte sectors, counted from `host`'s sector).
        len: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 3 header (104+8 bytes) of a 1 GiB image with 64 KiB clusters and an L1 table
    /// of 4 entries (2 are needed, 4 with extended L2 entries).
    fn v3() -> Vec<u8> {
        let mut h = vec![0u8; 112];
        h[..4].copy_from_slice(&MAGIC);
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[20..24].copy_from_slice(&16u32.to_be_bytes());
        h[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        h[36..40].copy_from_slice(&4u32.to_be_bytes());
        h[40..48].copy_from_slice(&0x30000u64.to_be_bytes());
        h[48..56].copy_from_slice(&0x10000u64.to_be_bytes());
        h[56..60].copy_from_slice(&1u32.to_be_bytes());
        h[96..100].copy_from_slice(&4u32.to_be_bytes());
        h[100..104].copy_from_slice(&112u32.to_be_bytes());
        h
    }

    fn set64(h: &mut [u8], at: usize, v: u64) {
        h[at..at + 8].copy_from_slice(&v.to_be_bytes());
    }

    fn refusal(h: &[u8]) -> String {
        match Header::parse(h) {
            Err(e @ (Error::Unsupported(_) | Error::Corrupt(_))) => e.to_string(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_version_3_header() {
        let h = Header::parse(&v3()).unwrap();
        assert_eq!(
            h,
            Header {
                version: 3,
                cluster_bits: 16,
                virtual_size: 1 << 30,
                l1_size: 4,
                l1_table_offset: 0x30000,
                refcount_table_offset: 0x10000,
                refcount_table_clusters: 1,
                compression: Compression::Deflate,
                extended_l2: false,
            }
        );
        assert_eq!(h.cluster_size(), 65536);
        assert_eq!(h.l2_entries(), 8192);
        assert_eq!(h.l2_span(), 512 << 20);
        assert_eq!(h.l1_entries_needed(), 2);
    }

    #[test]
    fn parses_a_version_2_header_of_72_bytes() {
        let mut h = v3();
        h[4..8].copy_from_slice(&2u32.to_be_bytes());
        h.truncate(V2_HEADER_LEN);
        let h = Header::parse(&h).unwrap();
        assert_eq!(h.version, 2);
        assert_eq!(h.compression, Compression::Deflate);
        assert!(!h.extended_l2);
    }

    #[test]
    fn reads_zstd_and_extended_l2_features() {
        let mut h = v3();
        set64(
            &mut h,
            72,
            INCOMPAT_COMPRESSION | INCOMPAT_EXTENDED_L2 | INCOMPAT_DIRTY,
        );
        h[104] = 1;
        let h = Header::parse(&h).unwrap();
        assert_eq!(h.compression, Compression::Zstd);
        assert!(h.extended_l2);
        assert_eq!(h.l2_entries(), 4096);
        assert_eq!(h.subcluster_size(), 2048);
    }

    #[test]
    fn refuses_what_a_stand_alone_image_cannot_have() {
        let mut backing = v3();
        set64(&mut backing, 8, 112);
        backing[16..20].copy_from_slice(&8u32.to_be_bytes());
        backing.extend_from_slice(b"base.img");
        let msg = refusal(&backing);
        assert!(msg.contains("backing file (\"base.img\")"), "{msg}");

        let mut aes = v3();
        aes[32..36].copy_from_slice(&1u32.to_be_bytes());
        assert!(refusal(&aes).contains("encryption (AES)"));
        let mut luks = v3();
        luks[32..36].copy_from_slice(&2u32.to_be_bytes());
        assert!(refusal(&luks).contains("LUKS"));

        let mut data_file = v3();
        set64(&mut data_file, 72, INCOMPAT_DATA_FILE);
        assert!(refusal(&data_file).contains("external data file"));
        let mut corrupt = v3();
        set64(&mut corrupt, 72, INCOMPAT_CORRUPT);
        assert!(refusal(&corrupt).contains("marked corrupt"));
        let mut future = v3();
        set64(&mut future, 72, 1 << 5);
        assert!(refusal(&future).contains("incompatible feature bits 0x20"));
        let mut lz = v3();
        set64(&mut lz, 72, INCOMPAT_COMPRESSION);
        lz[104] = 2;
        assert!(refusal(&lz).contains("compression type 2"));
        let mut v4 = v3();
        v4[4..8].copy_from_slice(&4u32.to_be_bytes());
        assert!(refusal(&v4).contains("version 4"));
    }

    #[test]
    fn refuses_malformed_headers() {
        assert!(refusal(b"QFI").contains("magic"));
        assert!(refusal(&[0u8; 200]).contains("magic"));
        assert!(refusal(&v3()[..60]).contains("ends inside its header"));
        let mut small_l1 = v3();
        small_l1[36..40].copy_from_slice(&1u32.to_be_bytes());
        let mut extended_small_l1 = v3();
        extended_small_l1[36..40].copy_from_slice(&2u32.to_be_bytes());
        set64(&mut extended_small_l1, 72, INCOMPAT_EXTENDED_L2);
        assert!(refusal(&extended_small_l1).contains("cannot map"));
        assert!(refusal(&small_l1).contains("cannot map"));
        let mut unaligned = v3();
        set64(&mut unaligned, 40, 0x30200);
        assert!(refusal(&unaligned).contains("L1 table offset"));
        let mut bits = v3();
        bits[20..24].copy_from_slice(&22u32.to_be_bytes());
        assert!(refusal(&bits).contains("cluster_bits 22"));
        let mut flag_without_type = v3();
        set64(&mut flag_without_type, 72, INCOMPAT_COMPRESSION);
        assert!(refusal(&flag_without_type).contains("disagrees"));
    }

    #[test]
    fn decodes_l1_and_l2_entries() {
        let h = Header::parse(&v3()).unwrap();
        assert_eq!(h.l1_entry(0).unwrap(), None);
        assert_eq!(h.l1_entry((1 << 63) | 0x50000).unwrap(), Some(0x50000));
        assert!(h.l1_entry(0x50200).is_err());

        assert_eq!(h.l2_entry(0, 0).unwrap(), Cluster::Zero { host: 0 });
        assert_eq!(
            h.l2_entry(0x70000 | 1, 0).unwrap(),
            Cluster::Zero { host: 0x70000 }
        );
        assert_eq!(
            h.l2_entry((1 << 63) | 0x70000, 0).unwrap(),
            Cluster::Data {
                host: 0x70000,
                allocated: u32::MAX
            }
        );
        assert!(h.l2_entry(0x70400, 0).is_err());

        // 64 KiB clusters: x = 62 - 8 = 54; offset 0x12345 (sector offset 0x145), 2 more sectors.
        let raw = COMPRESSED | (2u64 << 54) | 0x12345;
        assert_eq!(
            h.l2_entry(raw, 0).unwrap(),
            Cluster::Compressed {
                host: 0x12345,
                len: 3 * 512 - 0x145
            }
        );
    }

    #[test]
    fn zero_flag_is_corrupt_in_version_2() {
        let mut h = v3();
        h[4..8].copy_from_slice(&2u32.to_be_bytes());
        let h = Header::parse(&h[..V2_HEADER_LEN]).unwrap();
        assert!(h.l2_entry(0x70000 | 1, 0).is_err());
    }

    #[test]
    fn decodes_extended_l2_bitmaps() {
        let mut h = v3();
        set64(&mut h, 72, INCOMPAT_EXTENDED_L2);
        let h = Header::parse(&h).unwrap();
        // Bit 0 is not a zero flag with extended entries; the bitmap decides.
        assert_eq!(
            h.l2_entry(0x70000, 0b101).unwrap(),
            Cluster::Data {
                host: 0x70000,
                allocated: 0b101
            }
        );
        assert_eq!(
            h.l2_entry(0x70000, 0xffff_ffff << 32).unwrap(),
            Cluster::Zero { host: 0x70000 }
        );
        assert_eq!(h.l2_entry(0, 0).unwrap(), Cluster::Zero { host: 0 });
        assert!(h.l2_entry(0, 1).is_err(), "allocated without an offset");
        assert!(h.l2_entry(0x70000, (1 << 32) | 1).is_err(), "both");
    }
}
