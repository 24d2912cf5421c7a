//! A GUID partition table, read from and rendered to raw sectors (UEFI spec, chapter 5).
//!
//! Only what the agent needs: read the primary table, list partitions, append one, and move
//! the backup table to the end of a disk larger than the image it came from. Pure over byte
//! slices; [`read`] is the only function that touches a device.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// `EFI PART`.
const SIGNATURE: &[u8; 8] = b"EFI PART";
/// Bytes of the header the CRC covers in revision 1.0.
const HEADER_SIZE: usize = 92;
/// Largest partition entry array the agent accepts (the usual one is 16 KiB).
const MAX_ENTRIES_BYTES: usize = 1 << 20;

/// Why a table could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum GptError {
    /// No GPT header at LBA 1 (512- or 4096-byte sectors).
    #[error("no GPT header at LBA 1")]
    Missing,
    /// A header or entry array whose fields or CRC do not add up.
    #[error("invalid GPT: {0}")]
    Invalid(&'static str),
    /// No room between the last partition and the backup table.
    #[error(
        "no room for {needed} more sectors after the last partition (last usable LBA {last_usable})"
    )]
    NoRoom {
        /// Sectors asked for.
        needed: u64,
        /// The last LBA a partition may use once the backup table sits at the disk's end.
        last_usable: u64,
    },
    /// Every entry of the array is in use.
    #[error("all {0} partition entries are in use")]
    Full(u32),
    /// The device could not be read.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A used partition entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Index in the entry array (the partition number minus one).
    pub index: usize,
    /// Partition type GUID, in on-disk (mixed-endian) byte order.
    pub type_guid: [u8; 16],
    /// First LBA.
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
    /// The partition name (UTF-16LE on disk, up to 36 code units).
    pub name: String,
}

/// A parsed GPT: the primary header and its entry array.
#[derive(Debug, Clone)]
pub struct Gpt {
    sector_size: u64,
    header: Vec<u8>,
    entries: Vec<u8>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Reads the primary GPT of `file` (a disk or an image).
pub fn read(file: &File) -> Result<Gpt, GptError> {
    let mut start = vec![0u8; 8192];
    let n = read_full(file, &mut start, 0)?;
    start.truncate(n);
    let sector_size = [512u64, 4096]
        .into_iter()
        .find(|&s| start.get(s as usize..s as usize + 8) == Some(&SIGNATURE[..]))
        .ok_or(GptError::Missing)?;
    let header = &start[sector_size as usize..];
    if header.len() < HEADER_SIZE {
        return Err(GptError::Invalid("short header"));
    }
    let header = header
        .get(..HEADER_SIZE.max(u32_at(header, 12) as usize))
        .ok_or(GptError::Invalid("header larger than a sector"))?;
    let (lba, len) = Gpt::entries_location(header)?;
    let mut entries = vec![0u8; len];
    if read_full(file, &mut entries, lba * sector_size)? != len {
        return Err(GptError::Invalid(
            "partition entries beyond the end of the disk",
        ));
    }
    Gpt::parse(sector_size, header, entries)
}

/// Reads until `buf` is full or the end of the file; returns the bytes read.
pub fn read_full(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl Gpt {
    /// Where a header says its entry array is: (LBA, bytes).
    fn entries_location(header: &[u8]) -> Result<(u64, usize), GptError> {
        if header.len() < HEADER_SIZE {
            return Err(GptError::Invalid("short header"));
        }
        let count = u32_at(header, 80) as usize;
        let size = u32_at(header, 84) as usize;
        if size < 128 || !size.is_power_of_two() {
            return Err(GptError::Invalid("partition entry size"));
        }
        let len = count
            .checked_mul(size)
            .filter(|&l| l <= MAX_ENTRIES_BYTES)
            .ok_or(GptError::Invalid("partition entry array too large"))?;
        Ok((u64_at(header, 72), len))
    }

    /// Parses a primary header (its bytes from LBA 1, `header_size` long) and entry array,
    /// checking both CRCs.
    pub fn parse(sector_size: u64, header: &[u8], entries: Vec<u8>) -> Result<Self, GptError> {
        if header.get(..8) != Some(&SIGNATURE[..]) {
            return Err(GptError::Missing);
        }
        let (_, len) = Self::entries_location(header)?;
        let header_size = u32_at(header, 12) as usize;
        if header_size < HEADER_SIZE || header_size > header.len() || entries.len() != len {
            return Err(GptError::Invalid("header size"));
        }
        let header = header[..header_size].to_vec();
        if crc_without_field(&header) != u32_at(&header, 16) {
            return Err(GptError::Invalid("header CRC"));
        }
        if crc32fast::hash(&entries) != u32_at(&header, 88) {
            return Err(GptError::Invalid("partition entries CRC"));
        }
        Ok(Self {
            sector_size,
            header,
            entries,
        })
    }

    /// Logical sector size the table was written for.
    pub fn sector_size(&self) -> u64 {
        self.sector_size
    }

    /// The LBA of the backup header, as the primary header says.
    pub fn alternate_lba(&self) -> u64 {
        u64_at(&self.header, 32)
    }

    /// The last LBA a partition may use.
    pub fn last_usable_lba(&self) -> u64 {
        u64_at(&self.header, 48)
    }

    /// The disk GUID (on-disk byte order).
    pub fn disk_guid(&self) -> [u8; 16] {
        let mut g = [0u8; 16];
        g.copy_from_slice(&self.header[56..72]);
        g
    }

    fn entry_size(&self) -> usize {
        u32_at(&self.header, 84) as usize
    }

    fn entry_sectors(&self) -> u64 {
        (self.entries.len() as u64).div_ceil(self.sector_size)
    }

    /// The used entries, in table order.
    pub fn partitions(&self) -> Vec<Partition> {
        self.entries
            .chunks_exact(self.entry_size())
            .enumerate()
            .filter(|(_, e)| e[..16].iter().any(|&b| b != 0))
            .map(|(index, e)| {
                let mut type_guid = [0u8; 16];
                type_guid.copy_from_slice(&e[..16]);
                let units: Vec<u16> = e[56..128]
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .take_while(|&u| u != 0)
                    .collect();
                Partition {
                    index,
                    type_guid,
                    first_lba: u64_at(e, 32),
                    last_lba: u64_at(e, 40),
                    name: String::from_utf16_lossy(&units),
                }
            })
            .collect()
    }

    /// Moves the backup table to the end of a disk of `disk_sectors` sectors and extends the
    /// usable area accordingly.
    pub fn relocate_backup(&mut self, disk_sectors: u64) -> Result<(), GptError> {
        let backup_lba = disk_sectors
            .checked_sub(1)
            .ok_or(GptError::Invalid("empty disk"))?;
        let last_usable = backup_lba
            .checked_sub(self.entry_sectors() + 1)
            .filter(|&l| l >= u64_at(&self.header, 40))
            .ok_or(GptError::Invalid("disk smaller than its partition table"))?;
        if self.partitions().iter().any(|p| p.last_lba > last_usable) {
            return Err(GptError::Invalid("a partition extends past the disk's end"));
        }
        put_u64(&mut self.header, 32, backup_lba);
        put_u64(&mut self.header, 48, last_usable);
        Ok(())
    }

    /// Adds a partition of `sectors` sectors after the last one, starting on a 1 MiB
    /// boundary, in the first free entry. Returns it.
    pub fn append(
        &mut self,
        sectors: u64,
        type_guid: [u8; 16],
        unique_guid: [u8; 16],
        name: &str,
    ) -> Result<Partition, GptError> {
        let partitions = self.partitions();
        let align = (1 << 20) / self.sector_size;
        let after = partitions
            .iter()
            .map(|p| p.last_lba + 1)
            .max()
            .unwrap_or(0)
            .max(u64_at(&self.header, 40));
        let first_lba = after.div_ceil(align) * align;
        let last_usable = self.last_usable_lba();
        let last_lba = first_lba + sectors - 1;
        if sectors == 0 || last_lba > last_usable {
            return Err(GptError::NoRoom {
                needed: sectors,
                last_usable,
            });
        }
        let size = self.entry_size();
        let count = (self.entries.len() / size) as u32;
        let index = (0..self.entries.len() / size)
            .find(|i| {
                self.entries[i * size..i * size + 16]
                    .iter()
                    .all(|&b| b == 0)
            })
            .ok_or(GptError::Full(count))?;
        let e = &mut self.entries[index * size..(index + 1) * size];
        e.fill(0);
        e[..16].copy_from_slice(&type_guid);
        e[16..32].copy_from_slice(&unique_guid);
        put_u64(e, 32, first_lba);
        put_u64(e, 40, last_lba);
        for (i, unit) in name.encode_utf16().take(36).enumerate() {
            e[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
        }
        Ok(Partition {
            index,
            type_guid,
            first_lba,
            last_lba,
            name: name.chars().take(36).collect(),
        })
    }

    /// The entry array as written (both copies are identical).
    pub fn entries(&self) -> &[u8] {
        &self.entries
    }

    /// LBA of the backup entry array (just before the backup header).
    pub fn backup_entries_lba(&self) -> u64 {
        self.alternate_lba() - self.entry_sectors()
    }

    /// LBA of the primary entry array.
    pub fn primary_entries_lba(&self) -> u64 {
        u64_at(&self.header, 72)
    }

    /// The primary header sector (CRCs recomputed).
    pub fn primary_header(&self) -> Vec<u8> {
        self.render_header(1, self.alternate_lba(), self.primary_entries_lba())
    }

    /// The backup header sector (CRCs recomputed).
    pub fn backup_header(&self) -> Vec<u8> {
        self.render_header(self.alternate_lba(), 1, self.backup_entries_lba())
    }

    fn render_header(&self, my_lba: u64, alternate: u64, entries_lba: u64) -> Vec<u8> {
        let mut h = self.header.clone();
        put_u64(&mut h, 24, my_lba);
        put_u64(&mut h, 32, alternate);
        put_u64(&mut h, 72, entries_lba);
        put_u32(&mut h, 88, crc32fast::hash(&self.entries));
        let crc = crc_without_field(&h);
        put_u32(&mut h, 16, crc);
        h.resize(self.sector_size as usize, 0);
        h
    }
}

/// The header CRC: over the header with its CRC field zeroed.
fn crc_without_field(header: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..16]);
    h.update(&[0; 4]);
    h.update(&header[20..]);
    h.finalize()
}

/// Sets the size of a protective MBR's 0xEE entry in `sector0` to cover a disk of
/// `disk_sectors` sectors; returns whether there was one.
pub fn grow_protective_mbr(sector0: &mut [u8], disk_sectors: u64) -> bool {
    if sector0.len() < 512 || sector0[510..512] != [0x55, 0xAA] {
        return false;
    }
    let size = u32::try_from(disk_sectors.saturating_sub(1)).unwrap_or(u32::MAX);
    let mut found = false;
    for entry in sector0[446..510].chunks_exact_mut(16) {
        if entry[4] == 0xEE {
            put_u32(entry, 12, size);
            found = true;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 512-byte-sector table for a `disk` of sectors with one partition [2048, 4095].
    fn table(disk: u64) -> Gpt {
        let mut header = vec![0u8; HEADER_SIZE];
        header[..8].copy_from_slice(SIGNATURE);
        put_u32(&mut header, 8, 0x0001_0000);
        put_u32(&mut header, 12, HEADER_SIZE as u32);
        put_u64(&mut header, 24, 1);
        put_u64(&mut header, 32, disk - 1);
        put_u64(&mut header, 40, 34);
        put_u64(&mut header, 48, disk - 34);
        header[56..72].copy_from_slice(&[7; 16]);
        put_u64(&mut header, 72, 2);
        put_u32(&mut header, 80, 128);
        put_u32(&mut header, 84, 128);
        let mut entries = vec![0u8; 128 * 128];
        entries[..16].copy_from_slice(&[1; 16]);
        put_u64(&mut entries, 32, 2048);
        put_u64(&mut entries, 40, 4095);
        put_u32(&mut header, 88, crc32fast::hash(&entries));
        let crc = crc_without_field(&header);
        put_u32(&mut header, 16, crc);
        Gpt::parse(512, &header, entries).unwrap()
    }

    #[test]
    fn rendered_headers_parse_back() {
        let g = table(8192);
        let primary = g.primary_header();
        assert_eq!(primary.len(), 512);
        let again = Gpt::parse(512, &primary, g.entries().to_vec()).unwrap();
        assert_eq!(again.partitions(), g.partitions());
        let backup = g.backup_header();
        assert_eq!(u64_at(&backup, 24), 8191);
        assert_eq!(u64_at(&backup, 32), 1);
        assert_eq!(u64_at(&backup, 72), 8191 - 32);
        assert!(Gpt::parse(512, &backup, g.entries().to_vec()).is_ok());
    }

    #[test]
    fn corrupt_crcs_are_refused() {
        let g = table(8192);
        let mut header = g.primary_header();
        header[40] ^= 1;
        assert!(matches!(
            Gpt::parse(512, &header, g.entries().to_vec()),
            Err(GptError::Invalid("header CRC"))
        ));
        let mut entries = g.entries().to_vec();
        entries[200] ^= 1;
        assert!(matches!(
            Gpt::parse(512, &g.primary_header(), entries),
            Err(GptError::Invalid("partition entries CRC"))
        ));
    }

    #[test]
    fn append_after_relocating_the_backup() {
        let mut g = table(8192);
        // The image's table ends at sector 8191: no room for 4 MiB more.
        assert!(matches!(
            g.append(8192, [2; 16], [3; 16], "cidata"),
            Err(GptError::NoRoom { .. })
        ));
        // On a disk four times as large there is.
        g.relocate_backup(32768).unwrap();
        assert_eq!(g.alternate_lba(), 32767);
        assert_eq!(g.last_usable_lba(), 32767 - 33);
        let p = g.append(8192, [2; 16], [3; 16], "cidata").unwrap();
        assert_eq!((p.index, p.first_lba, p.last_lba), (1, 4096, 12287));
        let parsed = Gpt::parse(512, &g.primary_header(), g.entries().to_vec()).unwrap();
        let names: Vec<String> = parsed.partitions().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["", "cidata"]);
        // The area up to the backup entries is usable, not one sector more.
        let room = g.last_usable_lba() - 12288 + 1;
        assert!(g.clone().append(room, [2; 16], [4; 16], "x").is_ok());
        assert!(g.append(room + 1, [2; 16], [4; 16], "x").is_err());
    }

    #[test]
    fn relocation_refuses_a_smaller_disk() {
        let mut g = table(8192);
        assert!(g.relocate_backup(4000).is_err());
    }

    #[test]
    fn protective_mbr_grows() {
        let mut s = vec![0u8; 512];
        s[510] = 0x55;
        s[511] = 0xAA;
        assert!(!grow_protective_mbr(&mut s, 100));
        s[446 + 4] = 0xEE;
        assert!(grow_protective_mbr(&mut s, 100));
        assert_eq!(u32_at(&s, 446 + 12), 99);
        assert!(grow_protective_mbr(&mut s, 1 << 40));
        assert_eq!(u32_at(&s, 446 + 12), u32::MAX);
    }
}
