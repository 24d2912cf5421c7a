//! The reader against synthetic images whose layouts `qemu-img` would not write (data before
//! its tables, tables at the end, reversed order), fed in chunks of every size.
//! (`agent/tests/write.rs` covers images made by `qemu-img` itself.)

use std::io::{BufRead, Read, Write as _};

use super::header::{MAGIC, V2_HEADER_LEN};
use super::*;

/// Where the builder puts things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Header, refcount table and block, L1, then each L2 table followed by its data (what
    /// `qemu-img convert` writes).
    InOrder,
    /// All L2 tables first, then all the data.
    TablesFirst,
    /// All the data first, then the L2 tables, the refcount table and the L1 table last.
    DataFirst,
    /// Data in reverse guest order, the L1 table in the middle, L2 tables reversed at the end.
    Reversed,
}

#[derive(Debug, Clone, Copy)]
struct Spec {
    version: u32,
    cluster_bits: u32,
    compression: Option<Compression>,
    extended_l2: bool,
    layout: Layout,
}

impl Spec {
    fn new(cluster_bits: u32, layout: Layout) -> Self {
        Self {
            version: 3,
            cluster_bits,
            compression: None,
            extended_l2: false,
            layout,
        }
    }
}

/// Junk that must never reach the output.
const JUNK: u8 = 0xEE;

/// A guest disk of `len` bytes: zero clusters, compressible text and noise, by 512-byte block.
fn guest(len: usize) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut out = Vec::with_capacity(len);
    let mut block = 0u64;
    while out.len() < len {
        let n = (len - out.len()).min(512);
        match (block / 7 + block % 3) % 4 {
            0 => out.resize(out.len() + n, 0),
            1 => out.extend((0..n).map(|i| b"groundwork qcow2 "[i % 17])),
            _ => out.extend((0..n).map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })),
        }
        block += 1;
    }
    out
}

/// A growing file with cluster and byte allocation.
struct File {
    bytes: Vec<u8>,
    cluster: usize,
}

impl File {
    fn cluster(&mut self) -> u64 {
        let at = self.bytes.len().next_multiple_of(self.cluster);
        self.bytes.resize(at + self.cluster, 0);
        at as u64
    }
    fn bytes(&mut self, data: &[u8]) -> u64 {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(data);
        at as u64
    }
    fn put(&mut self, at: u64, data: &[u8]) {
        let at = at as usize;
        if self.bytes.len() < at + data.len() {
            self.bytes.resize(at + data.len(), 0);
        }
        self.bytes[at..at + data.len()].copy_from_slice(data);
    }
    fn put64(&mut self, at: u64, v: u64) {
        self.put(at, &v.to_be_bytes());
    }
}

fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
    match c {
        Compression::Deflate => {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Compression::Zstd => zstd::bulk::compress(data, 3).unwrap(),
    }
}

/// Builds a qcow2 image of `disk` laid out as `spec` says.
fn build(disk: &[u8], spec: Spec) -> Vec<u8> {
    let cs = 1usize << spec.cluster_bits;
    let entry_size = if spec.extended_l2 { 16 } else { 8 };
    let l2_entries = cs / entry_size;
    let clusters = disk.len().div_ceil(cs);
    let l1_size = clusters.div_ceil(l2_entries);
    let mut f = File {
        bytes: Vec::new(),
        cluster: cs,
    };
    f.cluster(); // the header

    // Which guest clusters hold data, and their (zero-padded) contents.
    let content: Vec<Vec<u8>> = (0..clusters)
        .map(|c| {
            let mut v = disk[c * cs..disk.len().min((c + 1) * cs)].to_vec();
            v.resize(cs, 0);
            v
        })
        .collect();
    let mut order: Vec<usize> = (0..clusters).collect();
    if spec.layout == Layout::Reversed {
        order.reverse();
    }

    let mut refcount = None;
    let mut l1 = None;
    let mut l2 = vec![0u64; l1_size];
    let mut entries = vec![(0u64, 0u64); clusters];
    let place_tables = |f: &mut File, l2: &mut [u64]| {
        for t in l2.iter_mut() {
            *t = f.cluster();
        }
    };
    if matches!(spec.layout, Layout::InOrder | Layout::TablesFirst) {
        refcount = Some((f.cluster(), f.cluster()));
        l1 = Some(f.cluster());
    }
    if spec.layout == Layout::TablesFirst {
        place_tables(&mut f, &mut l2);
    }
    for (n, &c) in order.iter().enumerate() {
        if spec.layout == Layout::InOrder && c % l2_entries == 0 {
            l2[c / l2_entries] = f.cluster();
        }
        if spec.layout == Layout::Reversed && n == clusters / 2 {
            l1 = Some(f.cluster());
        }
        let data = &content[c];
        let zero = data.iter().all(|b| *b == 0);
        entries[c] = if zero {
            // Alternate: unallocated, and (version 3) a preallocated zero cluster of junk.
            if spec.version == 3 && !spec.extended_l2 && c % 2 == 0 {
                let at = f.cluster();
                f.put(at, &vec![JUNK; cs]);
                (at | 1, 0)
            } else {
                (0, 0)
            }
        } else if let Some(z) = spec
            .compression
            .map(|c| compress(c, data))
            .filter(|z| z.len() < cs)
        {
            // Like QEMU, clusters that do not shrink are stored uncompressed.
            let at = f.bytes(&z);
            let sectors = (at + z.len() as u64 - 1) / 512 - at / 512;
            let shift = 62 - (spec.cluster_bits - 8);
            ((1 << 62) | (sectors << shift) | at, 0)
        } else if spec.extended_l2 {
            // Subclusters of zeros: alternately unallocated and marked zero, over junk.
            let sc = cs / 32;
            let at = f.cluster();
            let (mut allocated, mut zeroes) = (0u64, 0u64);
            for i in 0..32 {
                let part = &data[i * sc..(i + 1) * sc];
                if part.iter().any(|b| *b != 0) {
                    allocated |= 1 << i;
                    f.put(at + (i * sc) as u64, part);
                } else {
                    if i % 2 == 0 {
                        zeroes |= 1 << (32 + i);
                    }
                    f.put(at + (i * sc) as u64, &vec![JUNK; sc]);
                }
            }
            (at, allocated | zeroes)
        } else {
            let at = f.cluster();
            f.put(at, data);
            ((1 << 63) | at, 0)
        };
    }
    if spec.layout == Layout::DataFirst {
        place_tables(&mut f, &mut l2);
        refcount = Some((f.cluster(), f.cluster()));
        l1 = Some(f.cluster());
    }
    if spec.layout == Layout::Reversed {
        place_tables(&mut f, &mut l2);
        l2.reverse();
        refcount = Some((f.cluster(), f.cluster()));
    }
    let l1 = l1.unwrap();
    let (refcount_table, refcount_block) = refcount.unwrap();
    // The refcount block holds junk: it must be skipped, never taken for data.
    f.put(refcount_block, &vec![JUNK; cs]);
    f.put64(refcount_table, refcount_block);
    f.put64(refcount_table + 8, 0);
    for (i, t) in l2.iter().enumerate() {
        f.put64(l1 + 8 * i as u64, (1 << 63) | t);
        for j in 0..l2_entries {
            let c = i * l2_entries + j;
            if c >= clusters {
                break;
            }
            let at = t + (j * entry_size) as u64;
            f.put64(at, entries[c].0);
            if spec.extended_l2 {
                f.put64(at + 8, entries[c].1);
            }
        }
    }

    let mut h = vec![0u8; 112];
    h[..4].copy_from_slice(&MAGIC);
    h[4..8].copy_from_slice(&spec.version.to_be_bytes());
    h[20..24].copy_from_slice(&spec.cluster_bits.to_be_bytes());
    h[24..32].copy_from_slice(&(disk.len() as u64).to_be_bytes());
    h[36..40].copy_from_slice(&(l1_size as u32).to_be_bytes());
    h[40..48].copy_from_slice(&l1.to_be_bytes());
    h[48..56].copy_from_slice(&refcount_table.to_be_bytes());
    h[56..60].copy_from_slice(&1u32.to_be_bytes());
    if spec.version == 3 {
        let mut incompatible = 0u64;
        if spec.compression == Some(Compression::Zstd) {
            incompatible |= 1 << 3;
            h[104] = 1;
        }
        if spec.extended_l2 {
            incompatible |= 1 << 4;
        }
        h[72..80].copy_from_slice(&incompatible.to_be_bytes());
        h[96..100].copy_from_slice(&4u32.to_be_bytes());
        h[100..104].copy_from_slice(&112u32.to_be_bytes());
        f.put(0, &h);
    } else {
        f.put(0, &h[..V2_HEADER_LEN]);
    }
    f.bytes
}

/// A disk in memory that checks every byte is written exactly once.
#[derive(Debug)]
struct Disk {
    data: Vec<u8>,
    written: Vec<bool>,
}

impl Disk {
    fn new(len: usize) -> Self {
        Self {
            data: vec![JUNK; len],
            written: vec![false; len],
        }
    }
    fn mark(&mut self, offset: u64, len: usize) -> Result<std::ops::Range<usize>, Error> {
        let range = offset as usize..offset as usize + len;
        assert!(
            range.end <= self.data.len(),
            "write past the disk: {range:?}"
        );
        assert!(
            self.written[range.clone()].iter().all(|w| !w),
            "written twice: {range:?}"
        );
        self.written[range.clone()].fill(true);
        Ok(range)
    }
}

impl Output for Disk {
    fn data(&mut self, offset: u64, data: &[u8]) -> Result<(), Error> {
        let range = self.mark(offset, data.len())?;
        self.data[range].copy_from_slice(data);
        Ok(())
    }
    fn zeroes(&mut self, offset: u64, len: u64) -> Result<(), Error> {
        let range = self.mark(offset, len as usize)?;
        self.data[range].fill(0);
        Ok(())
    }
}

/// Hands out `data` in chunks of at most `chunk` bytes.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.fill_buf()?.len().min(buf.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Chunked<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        Ok(&self.data[..self.data.len().min(self.chunk)])
    }
    fn consume(&mut self, amount: usize) {
        self.data = &self.data[amount..];
    }
}

fn run(image: &[u8], len: usize, chunk: usize, limits: Limits) -> Result<Disk, Error> {
    let mut disk = Disk::new(len);
    let size = convert(
        Chunked { data: image, chunk },
        &mut disk,
        Some(len as u64),
        limits,
    )?;
    assert_eq!(size, len as u64);
    Ok(disk)
}

/// Converts `spec`'s image of a disk of `len` bytes in several chunk sizes; checks the result.
fn round_trip(spec: Spec, len: usize) {
    let disk = guest(len);
    let image = build(&disk, spec);
    for chunk in [1 << 20, 65536, 4096, 777, 1] {
        if chunk == 1 && image.len() > 1 << 20 {
            continue;
        }
        let out = run(&image, len, chunk, Limits::default())
            .unwrap_or_else(|e| panic!("{spec:?}, chunks of {chunk}: {e}"));
        assert!(
            out.written.iter().all(|w| *w),
            "{spec:?}: bytes never written"
        );
        assert!(
            out.data == disk,
            "{spec:?}, chunks of {chunk}: content differs"
        );
    }
}

const LEN: usize = 300 * 1024 + 1000;

#[test]
fn every_layout_converts_to_the_same_disk() {
    for layout in [
        Layout::InOrder,
        Layout::TablesFirst,
        Layout::DataFirst,
        Layout::Reversed,
    ] {
        // 512-byte clusters: 64 entries per L2 table, so the disk needs ten of them.
        round_trip(Spec::new(9, layout), LEN);
        round_trip(Spec::new(16, layout), LEN);
    }
}

#[test]
fn version_2_converts() {
    round_trip(
        Spec {
            version: 2,
            ..Spec::new(12, Layout::InOrder)
        },
        LEN,
    );
}

#[test]
fn compressed_clusters_convert_in_any_layout() {
    for compression in [Compression::Deflate, Compression::Zstd] {
        for layout in [Layout::InOrder, Layout::DataFirst, Layout::Reversed] {
            for bits in [9, 12, 16] {
                round_trip(
                    Spec {
                        compression: Some(compression),
                        ..Spec::new(bits, layout)
                    },
                    LEN,
                );
            }
        }
    }
}

#[test]
fn extended_l2_subclusters_convert() {
    for layout in [Layout::InOrder, Layout::DataFirst] {
        round_trip(
            Spec {
                extended_l2: true,
                ..Spec::new(14, layout)
            },
            LEN,
        );
    }
}

#[test]
fn a_disk_size_that_is_not_a_cluster_multiple_is_cut_exactly() {
    round_trip(Spec::new(16, Layout::InOrder), 65536 * 3 + 5);
    round_trip(
        Spec {
            compression: Some(Compression::Deflate),
            ..Spec::new(16, Layout::InOrder)
        },
        65536 + 1,
    );
}

#[test]
fn out_of_order_beyond_the_limits_is_refused() {
    let disk = guest(LEN);
    let data_first = build(&disk, Spec::new(9, Layout::DataFirst));
    let tight = Limits {
        orphan_bytes: 64 * 1024,
        pending: 1 << 20,
    };
    match run(&data_first, LEN, 4096, tight) {
        Err(e @ Error::OutOfOrder(_)) => {
            assert!(e.to_string().contains("65536 bytes kept"), "{e}")
        }
        other => panic!("expected OutOfOrder, got {:?}", other.err()),
    }
    let tables_first = build(&disk, Spec::new(9, Layout::TablesFirst));
    let few = Limits {
        orphan_bytes: 64 << 20,
        pending: 100,
    };
    match run(&tables_first, LEN, 4096, few) {
        Err(e @ Error::OutOfOrder(_)) => assert!(e.to_string().contains("100 tables"), "{e}"),
        other => panic!("expected OutOfOrder, got {:?}", other.err()),
    }
    // In order, a handful of clusters is all it takes, compressed or not (the unused bytes
    // compressed clusters leave behind are dropped).
    let small = Limits {
        orphan_bytes: 4 * 512,
        pending: 80,
    };
    for compression in [None, Some(Compression::Deflate)] {
        let in_order = build(
            &disk,
            Spec {
                compression,
                ..Spec::new(9, Layout::InOrder)
            },
        );
        assert!(run(&in_order, LEN, 4096, small).unwrap().data == disk);
    }
}

#[test]
fn compressed_bytes_are_kept_only_until_decompressed() {
    // Until the last L2 table is read, bytes only a compressed cluster claims are kept (a
    // neighbour whose table comes later may share their sector), and dropped once decompressed.
    // The disk compresses everywhere, so the builder leaves unused bytes only before each of
    // the ten L2 tables.
    let disk: Vec<u8> = (0..LEN).map(|i| b"groundwork qcow2 "[i % 17]).collect();
    for compression in [Compression::Deflate, Compression::Zstd] {
        let image = build(
            &disk,
            Spec {
                compression: Some(compression),
                ..Spec::new(9, Layout::InOrder)
            },
        );
        let mut out = Disk::new(LEN);
        let mut reader = Reader::new(
            Header::parse(&image).unwrap(),
            &mut out,
            Limits::default(),
            512,
        );
        reader.start().unwrap();
        let mut most = 0;
        for chunk in image[512..].chunks(100) {
            reader.feed(chunk).unwrap();
            if !reader.mapped() {
                most = most.max(reader.orphans.cost());
            }
        }
        assert!(
            most > 0 && most < 12 * 512,
            "{compression:?}: {most} bytes kept"
        );
        assert_eq!(reader.dropped_below, 0);
        reader.finish().unwrap();
        assert!(out.data == disk);
    }
}

#[test]
fn a_truncated_image_is_corrupt() {
    let disk = guest(LEN);
    let image = build(&disk, Spec::new(12, Layout::InOrder));
    for cut in [50, 4096 + 8, image.len() / 2, image.len() - 1] {
        match run(&image[..cut], LEN, 65536, Limits::default()) {
            Err(e @ Error::Corrupt(_)) => eprintln!("cut at {cut}: {e}"),
            other => panic!("cut at {cut}: expected Corrupt, got {:?}", other.err()),
        }
    }
}

#[test]
fn a_corrupt_compressed_cluster_is_reported_with_its_offsets() {
    let disk = vec![b'x'; 65536];
    let mut image = build(
        &disk,
        Spec {
            compression: Some(Compression::Deflate),
            ..Spec::new(16, Layout::InOrder)
        },
    );
    let n = image.len();
    image[n - 20..].fill(0xFF);
    let err = run(&image, disk.len(), 4096, Limits::default()).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt(m) if m.contains("guest offset 0x0")),
        "{err}"
    );
}

#[test]
fn a_disk_larger_than_the_limit_is_refused_before_any_write() {
    let disk = guest(LEN);
    let image = build(&disk, Spec::new(16, Layout::InOrder));
    let mut out = Disk::new(LEN);
    let err = convert(
        &image[..],
        &mut out,
        Some(LEN as u64 - 1),
        Limits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { size, limit } if size == LEN as u64 && limit == LEN as u64 - 1)
    );
    assert!(out.written.iter().all(|w| !w));
}

#[test]
fn the_input_is_read_to_its_end() {
    let disk = guest(LEN);
    let mut image = build(&disk, Spec::new(16, Layout::InOrder));
    image.extend_from_slice(&[JUNK; 100_000]);
    let mut input = Chunked {
        data: &image,
        chunk: 4096,
    };
    let mut out = Disk::new(LEN);
    convert(&mut input, &mut out, None, Limits::default()).unwrap();
    assert!(input.data.is_empty());
    assert!(out.data == disk);
}

#[test]
fn a_compressed_cluster_must_fill_the_cluster() {
    let short = [7u8; 1000];
    let mut cluster = vec![0u8; 4096];
    let err = inflate(
        &mut Decompress::new(false),
        &compress(Compression::Deflate, &short),
        &mut cluster,
    )
    .unwrap_err();
    assert!(err.contains("ends after 1000 of 4096 bytes"), "{err}");
    let mut zstd = zstd::stream::raw::Decoder::new().unwrap();
    let err = unzstd(
        &mut zstd,
        &compress(Compression::Zstd, &short),
        &mut cluster,
    )
    .unwrap_err();
    assert!(err.contains("ends after 1000 of 4096 bytes"), "{err}");
    // A whole cluster: the input used is the compressed data, not what follows it.
    let whole = [9u8; 4096];
    let mut input = compress(Compression::Zstd, &whole);
    let len = input.len();
    input.extend_from_slice(&[JUNK; 300]);
    assert_eq!(unzstd(&mut zstd, &input, &mut cluster).unwrap(), len);
    assert!(cluster == whole);
}
