//! Recognising a partition table from the first sectors of a disk.
//!
//! The kernel's view (`/sys/block/X/X1`) needs the kernel's partition parsers; some kernels
//! (and loop devices without partition scanning) have none, so the writer also looks at the
//! bytes on the disk.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;

/// How many bytes from the start of a disk [`detect`] needs: a GPT header sits at LBA 1,
/// which is byte 4096 on 4 KiB-sector disks.
pub const PROBE_BYTES: usize = 8192;

/// A partition table found on a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionTable {
    /// A GUID partition table (header signature at LBA 1).
    Gpt,
    /// An MBR (DOS) table with at least one plausible entry.
    Mbr,
}

impl fmt::Display for PartitionTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PartitionTable::Gpt => "GPT",
            PartitionTable::Mbr => "MBR",
        })
    }
}

/// Looks for a GPT header at LBA 1 (512- or 4096-byte sectors) or an MBR with a used entry.
pub fn detect(start: &[u8]) -> Option<PartitionTable> {
    const GPT_SIGNATURE: &[u8] = b"EFI PART";
    for sector in [512usize, 4096] {
        if start.get(sector..sector + GPT_SIGNATURE.len()) == Some(GPT_SIGNATURE) {
            return Some(PartitionTable::Gpt);
        }
    }
    if start.get(510..512) != Some(&[0x55, 0xAA][..]) {
        return None;
    }
    let entries = start.get(446..510)?;
    let used = entries.chunks_exact(16).any(|e| {
        let status = e[0];
        let kind = e[4];
        let sectors = u32::from_le_bytes([e[12], e[13], e[14], e[15]]);
        (status == 0x00 || status == 0x80) && kind != 0 && sectors != 0
    });
    used.then_some(PartitionTable::Mbr)
}

/// Reads the first [`PROBE_BYTES`] of `path` (a disk or an image) and [`detect`]s a table.
pub fn probe(path: &Path) -> io::Result<Option<PartitionTable>> {
    let file = File::open(path)?;
    let mut start = vec![0u8; PROBE_BYTES];
    let n = crate::gpt::read_full(&file, &mut start, 0)?;
    Ok(detect(&start[..n]))
}

/// The primary MBR partitions in `sector0` as (first LBA, sectors), skipping empty and
/// protective (0xEE) entries; empty without the 0x55AA signature.
pub fn mbr_partitions(sector0: &[u8]) -> Vec<(u64, u64)> {
    if sector0.get(510..512) != Some(&[0x55, 0xAA][..]) {
        return Vec::new();
    }
    sector0[446..510]
        .chunks_exact(16)
        .filter(|e| e[4] != 0 && e[4] != 0xEE)
        .map(|e| {
            let start = u32::from_le_bytes([e[8], e[9], e[10], e[11]]);
            let sectors = u32::from_le_bytes([e[12], e[13], e[14], e[15]]);
            (u64::from(start), u64::from(sectors))
        })
        .filter(|&(_, sectors)| sectors > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbr_with_entry(kind: u8, sectors: u32) -> Vec<u8> {
        let mut s = vec![0u8; PROBE_BYTES];
        s[510] = 0x55;
        s[511] = 0xAA;
        s[446 + 4] = kind;
        s[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
        s[446 + 12..446 + 16].copy_from_slice(&sectors.to_le_bytes());
        s
    }

    #[test]
    fn finds_gpt_on_512_and_4k_sectors() {
        for lba1 in [512, 4096] {
            let mut s = mbr_with_entry(0xEE, u32::MAX);
            s[lba1..lba1 + 8].copy_from_slice(b"EFI PART");
            assert_eq!(detect(&s), Some(PartitionTable::Gpt));
        }
    }

    #[test]
    fn finds_mbr_only_with_a_used_entry() {
        assert_eq!(
            detect(&mbr_with_entry(0x83, 4096)),
            Some(PartitionTable::Mbr)
        );
        assert_eq!(detect(&mbr_with_entry(0, 4096)), None);
        assert_eq!(detect(&mbr_with_entry(0x83, 0)), None);
        let mut no_sig = mbr_with_entry(0x83, 4096);
        no_sig[510] = 0;
        assert_eq!(detect(&no_sig), None);
    }

    #[test]
    fn lists_mbr_partitions_but_not_protective_entries() {
        let mut s = mbr_with_entry(0x83, 4096);
        s[446 + 16 + 4] = 0xEE;
        s[446 + 16 + 12] = 1;
        assert_eq!(mbr_partitions(&s), [(2048, 4096)]);
        s[510] = 0;
        assert!(mbr_partitions(&s).is_empty());
    }

    #[test]
    fn blank_or_short_input_has_no_table() {
        assert_eq!(detect(&[0u8; PROBE_BYTES]), None);
        assert_eq!(detect(&[0u8; 100]), None);
    }
}
