//! qcow2 → raw in one forward pass over the downloaded bytes, with bounded memory.
//!
//! # Why one pass, and how
//!
//! The writer downloads the artifact once, hashes exactly the bytes it received and never
//! holds the image: that rules out spooling it (a ramdisk has no room for a cloud image) and a
//! seekable HTTP range reader (a second download to hash, and servers without ranges). The
//! Rust qcow2 crates (`qcow`, `qcow2-rs`, `imago`) all need `Read + Seek` on the image file,
//! so this is a small reader of its own.
//!
//! qcow2 need not be laid out in guest order, but the output is a block device, which takes
//! writes at any offset. So this reader follows the file front to back and writes each guest
//! cluster where it belongs as soon as it knows where that is:
//!
//! - The header names the L1 table; the L1 table names the L2 tables; each L2 table names its
//!   data clusters. Every known but not yet reached table or cluster waits in a queue ordered
//!   by file offset ([`Limits::pending`] bounds it), and is read (tables, compressed clusters)
//!   or passed straight to the device (data clusters) when the stream reaches it.
//! - Ranges a table marks as unallocated or zero are written as zeroes at once (no backing
//!   file: they read as zeros), so every byte of the virtual disk is written exactly once.
//! - Bytes that stream past before any table read so far claims them (data written before its
//!   L2 table, which `qemu-img convert -c` does at each L2 boundary; compressed clusters,
//!   which may share a sector with such data; refcount blocks before the refcount table is
//!   known; snapshot tables; unused bytes between compressed clusters) are kept in memory
//!   until a table claims them or every L2 table of the active L1 has been read, after which
//!   nothing else can. Beyond [`Limits::orphan_bytes`] the oldest are dropped: images in guest
//!   order only ever look back a cluster or so, and an image that needs a dropped byte fails
//!   rather than guess.
//! - Refcount blocks, once the refcount table is read, are skipped without being kept.
//!
//! Images that `qemu-img convert` writes (tables before the data they map, data in guest
//! order) need a few clusters of memory; an image whose layout needs more than the bounds
//! fails with [`Error::OutOfOrder`] instead of using unbounded memory. Only the active L1
//! table matters: internal snapshots are ignored, as `qemu-img convert` does.
//!
//! Refused up front ([`Error::Unsupported`]): backing files, encryption, external data files,
//! unknown incompatible features. Supported: versions 2 and 3, cluster sizes 512 B–2 MiB,
//! zero clusters, extended L2 entries (subclusters), compressed clusters (deflate and zstd).

mod header;
mod orphans;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, BufRead};

use flate2::{Decompress, FlushDecompress};
use zstd::stream::raw::Operation as _;

use header::{Cluster, Compression, Header, be64};
use orphans::Orphans;

/// How much out-of-order layout the reader absorbs before giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// File bytes kept while no table read so far claims them (the oldest are dropped first;
    /// an image that then needs them fails).
    pub orphan_bytes: usize,
    /// Tables and clusters known but not yet reached by the stream (~32 bytes each).
    pub pending: usize,
}

impl Default for Limits {
    /// 64 MiB of orphaned bytes and 512 Ki pending clusters (16 MiB; 32 GiB of 64 KiB
    /// clusters mapped ahead of the stream).
    fn default() -> Self {
        Self {
            orphan_bytes: 64 << 20,
            pending: 512 << 10,
        }
    }
}

/// Why a qcow2 image could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A feature this reader does not handle (or that a stand-alone image cannot have).
    #[error("qcow2 images with {0} are not supported")]
    Unsupported(String),
    /// The image contradicts the format or itself.
    #[error("the qcow2 image is corrupt: {0}")]
    Corrupt(String),
    /// The layout needs more buffering than [`Limits`] allows.
    #[error(
        "the qcow2 image is laid out too far from guest order to stream with bounded memory ({0}); rewrite it with qemu-img convert -O qcow2"
    )]
    OutOfOrder(String),
    /// The virtual disk is larger than the device.
    #[error("the virtual disk ({size} bytes) is larger than the device ({limit} bytes)")]
    TooLarge {
        /// Virtual size from the header.
        size: u64,
        /// The size limit.
        limit: u64,
    },
    /// Reading the input failed.
    #[error("reading the image failed: {0}")]
    Read(#[source] io::Error),
    /// The output refused more data (the write stage stopped; its error is the one to report).
    #[error("the output stopped")]
    OutputClosed,
}

/// Where the raw disk goes. Ranges never overlap; together they cover the virtual disk once.
pub trait Output {
    /// Guest bytes at guest `offset`.
    fn data(&mut self, offset: u64, data: &[u8]) -> Result<(), Error>;
    /// `len` zero bytes at guest `offset`.
    fn zeroes(&mut self, offset: u64, len: u64) -> Result<(), Error>;
}

/// Reads a whole qcow2 image from `input` and writes the virtual disk to `out`; returns its
/// size. Refuses a virtual disk larger than `size_limit` before writing anything.
///
/// Reads `input` to its end even when everything is written earlier (the caller hashes the
/// same stream).
pub fn convert<R: BufRead, O: Output>(
    mut input: R,
    out: &mut O,
    size_limit: Option<u64>,
    limits: Limits,
) -> Result<u64, Error> {
    let start = read_start(&mut input)?;
    let header = Header::parse(&start)?;
    if let Some(limit) = size_limit
        && header.virtual_size > limit
    {
        return Err(Error::TooLarge {
            size: header.virtual_size,
            limit,
        });
    }
    let cluster_size = header.cluster_size();
    let pos = cluster_size.min(start.len() as u64);
    let mut reader = Reader::new(header, out, limits, pos);
    reader.start()?;
    reader.feed(&start[pos as usize..])?;
    loop {
        let chunk = match input.fill_buf() {
            Ok([]) => break,
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Read(e)),
        };
        let n = chunk.len();
        reader.feed(chunk)?;
        input.consume(n);
    }
    reader.finish()
}

/// The first 4 KiB (or the whole file if shorter): the header, and usually its extensions and
/// backing file name.
fn read_start<R: BufRead>(input: &mut R) -> Result<Vec<u8>, Error> {
    let mut start = Vec::with_capacity(4096);
    while start.len() < 4096 {
        let chunk = match input.fill_buf() {
            Ok([]) => break,
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Read(e)),
        };
        let n = chunk.len().min(4096 - start.len());
        start.extend_from_slice(&chunk[..n]);
        input.consume(n);
    }
    Ok(start)
}

/// Something the reader will read (or skip) when the stream reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Need {
    /// File offset (first, so the queue is ordered by it).
    start: u64,
    len: u32,
    kind: Kind,
}

impl Need {
    fn end(&self) -> u64 {
        self.start + u64::from(self.len)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Metadata of no use here (the rest of the header cluster, refcount blocks).
    Skip,
    L1,
    RefcountTable,
    /// The L2 table of L1 entry `index`.
    L2 {
        index: u64,
    },
    /// A data cluster of guest offset `guest`, passed through as it streams.
    Data {
        guest: u64,
        allocated: u32,
    },
    /// A compressed cluster of guest offset `guest`.
    Compressed {
        guest: u64,
    },
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Skip => "metadata",
            Kind::L1 => "L1 table",
            Kind::RefcountTable => "refcount table",
            Kind::L2 { .. } => "L2 table",
            Kind::Data { .. } => "data cluster",
            Kind::Compressed { .. } => "compressed cluster",
        }
    }

    /// Whether its bytes are collected (tables, compressed data) rather than passed on.
    /// Whether the image is incomplete without it (refcounts are of no use here).
    fn required(self) -> bool {
        !matches!(self, Kind::Skip | Kind::RefcountTable)
    }

    fn buffered(self) -> bool {
        matches!(
            self,
            Kind::L1 | Kind::RefcountTable | Kind::L2 { .. } | Kind::Compressed { .. }
        )
    }
}

/// A [`Need`] the stream is inside of.
struct Active {
    need: Need,
    /// Bytes of it seen so far.
    got: u64,
    /// Its bytes, for buffered kinds.
    buf: Vec<u8>,
}

/// Decoders kept across clusters.
enum Decoder {
    Deflate(Decompress),
    Zstd(Box<zstd::stream::raw::Decoder<'static>>),
}

struct Reader<'o, O> {
    h: Header,
    out: &'o mut O,
    limits: Limits,
    /// File offset of the next byte.
    pos: u64,
    pending: BinaryHeap<Reverse<Need>>,
    active: Vec<Active>,
    orphans: Orphans,
    /// Kept bytes below this offset were dropped to stay within [`Limits::orphan_bytes`].
    dropped_below: u64,
    l1_read: bool,
    l2_unread: u64,
    decoder: Option<Decoder>,
    cluster: Vec<u8>,
}

impl<'o, O: Output> Reader<'o, O> {
    fn new(h: Header, out: &'o mut O, limits: Limits, pos: u64) -> Self {
        Self {
            h,
            out,
            limits,
            pos,
            pending: BinaryHeap::new(),
            active: Vec::new(),
            orphans: Orphans::default(),
            dropped_below: 0,
            l1_read: false,
            l2_unread: 0,
            decoder: None,
            cluster: Vec::new(),
        }
    }

    /// Queues what the header names.
    fn start(&mut self) -> Result<(), Error> {
        let cluster_size = self.h.cluster_size();
        if self.pos < cluster_size {
            self.register(Need {
                start: self.pos,
                len: (cluster_size - self.pos) as u32,
                kind: Kind::Skip,
            })?;
        }
        let l1_end = self.h.l1_table_offset + u64::from(self.h.l1_size) * 8;
        self.register(Need {
            start: self.h.l1_table_offset,
            len: self.h.l1_size * 8,
            kind: Kind::L1,
        })?;
        if !l1_end.is_multiple_of(cluster_size) {
            self.register(Need {
                start: l1_end,
                len: (cluster_size - l1_end % cluster_size) as u32,
                kind: Kind::Skip,
            })?;
        }
        // QEMU's limit is 8 MiB; a larger table is left unread (its blocks just get buffered).
        let refcount_table = u64::from(self.h.refcount_table_clusters) * cluster_size;
        if self.h.refcount_table_offset != 0 && refcount_table <= 8 << 20 {
            self.register(Need {
                start: self.h.refcount_table_offset,
                len: refcount_table as u32,
                kind: Kind::RefcountTable,
            })?;
        }
        Ok(())
    }

    /// Every L2 table of the active L1 has been read: unclaimed bytes are of no use.
    fn mapped(&self) -> bool {
        self.l1_read && self.l2_unread == 0
    }

    /// The next bytes of the file.
    fn feed(&mut self, mut data: &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            while let Some(Reverse(next)) = self.pending.peek()
                && next.start <= self.pos
            {
                let need = *next;
                self.pending.pop();
                self.active.push(Active {
                    need,
                    got: 0,
                    buf: Vec::new(),
                });
            }
            // Up to the next place where something starts or ends.
            let mut n = data.len() as u64;
            if let Some(Reverse(next)) = self.pending.peek() {
                n = n.min(next.start - self.pos);
            }
            for a in &self.active {
                n = n.min(a.need.end() - self.pos);
            }
            let (chunk, rest) = data.split_at(n as usize);
            // Compressed clusters may share their first and last sectors with a cluster whose
            // L2 table comes later: keep those bytes too until the cluster is decompressed.
            let claimed = self
                .active
                .iter()
                .any(|a| !matches!(a.need.kind, Kind::Compressed { .. }));
            if !claimed && !self.mapped() {
                self.orphans.push(self.pos, chunk);
                // The oldest go first: an image written in guest order needs only recent ones.
                while self.orphans.cost() > self.limits.orphan_bytes {
                    let Some(end) = self.orphans.drop_first() else {
                        break;
                    };
                    self.dropped_below = self.dropped_below.max(end);
                }
            }
            for a in &mut self.active {
                match a.need.kind {
                    Kind::Data { guest, allocated } => {
                        emit(&self.h, &mut *self.out, guest, allocated, a.got, chunk)?;
                    }
                    kind if kind.buffered() => a.buf.extend_from_slice(chunk),
                    _ => {}
                }
                a.got += n;
            }
            self.pos += n;
            data = rest;
            let mut i = 0;
            while i < self.active.len() {
                if self.active[i].need.end() <= self.pos {
                    let done = self.active.swap_remove(i);
                    self.complete(done)?;
                } else {
                    i += 1;
                }
            }
        }
        Ok(())
    }

    /// Queues `need`, or reads it from the kept bytes when the stream has passed its start.
    fn register(&mut self, need: Need) -> Result<(), Error> {
        if need.start >= self.pos {
            if need.len == 0 {
                return self.complete(Active {
                    need,
                    got: 0,
                    buf: Vec::new(),
                });
            }
            if self.pending.len() >= self.limits.pending {
                return Err(Error::OutOfOrder(format!(
                    "more than {} tables and clusters are mapped ahead of the stream at file offset {:#x}",
                    self.limits.pending, self.pos
                )));
            }
            self.pending.push(Reverse(need));
            return Ok(());
        }
        let past = need.end().min(self.pos) - need.start;
        if need.kind == Kind::Skip {
            self.orphans.remove(need.start, past);
            if need.end() > self.pos {
                self.pending.push(Reverse(Need {
                    start: self.pos,
                    len: (need.end() - self.pos) as u32,
                    kind: Kind::Skip,
                }));
            }
            return Ok(());
        }
        let bytes = self.orphans.get(need.start, past);
        let compressed = matches!(need.kind, Kind::Compressed { .. });
        let missing = need.start + bytes.len() as u64;
        // A compressed range may reach into the next compressed cluster, which may be gone
        // already; only the data it really uses has to be there.
        if missing < need.start + past
            && (!compressed || bytes.is_empty() || missing < self.dropped_below)
        {
            let why = if missing < self.dropped_below {
                format!(
                    "more than the {} bytes kept for such data streamed past meanwhile",
                    self.limits.orphan_bytes
                )
            } else {
                "another table or cluster claimed its bytes".to_string()
            };
            return Err(Error::OutOfOrder(format!(
                "the {} at file offset {:#x} is mapped only at file offset {:#x}, and {why}",
                need.kind.name(),
                need.start,
                self.pos
            )));
        }
        if !compressed {
            self.orphans.remove(need.start, past);
        }
        let mut active = Active {
            need,
            got: past,
            buf: Vec::new(),
        };
        match need.kind {
            Kind::Data { guest, allocated } => {
                emit(&self.h, &mut *self.out, guest, allocated, 0, &bytes)?;
            }
            _ => active.buf = bytes,
        }
        if need.end() <= self.pos || (compressed && (active.buf.len() as u64) < past) {
            self.complete(active)
        } else {
            self.active.push(active);
            Ok(())
        }
    }

    /// Acts on a complete (or, for a compressed cluster, final) table or cluster.
    fn complete(&mut self, done: Active) -> Result<(), Error> {
        match done.need.kind {
            Kind::Skip | Kind::Data { .. } => {}
            Kind::L1 => {
                self.read_l1(&done.buf)?;
                self.l1_read = true;
            }
            Kind::RefcountTable => {
                for entry in done.buf.chunks_exact(8) {
                    // A broken refcount table does not matter here: its blocks are then kept
                    // like any unclaimed bytes.
                    if let Ok(Some(block)) = self.h.refcount_table_entry(be64(entry, 0)) {
                        self.register(Need {
                            start: block,
                            len: self.h.cluster_size() as u32,
                            kind: Kind::Skip,
                        })?;
                    }
                }
            }
            Kind::L2 { index } => {
                self.read_l2(index, &done.buf)?;
                self.l2_unread -= 1;
            }
            Kind::Compressed { guest } => {
                self.decompress(done.need.start, guest, &done.buf)?;
            }
        }
        if self.mapped() {
            self.orphans.clear();
        }
        Ok(())
    }

    fn read_l1(&mut self, table: &[u8]) -> Result<(), Error> {
        let span = self.h.l2_span();
        for index in 0..self.h.l1_entries_needed() {
            let raw = be64(table, index as usize * 8);
            match self.h.l1_entry(raw)? {
                None => {
                    let guest = index * span;
                    let len = span.min(self.h.virtual_size - guest);
                    self.out.zeroes(guest, len)?;
                }
                Some(l2) => {
                    self.l2_unread += 1;
                    self.register(Need {
                        start: l2,
                        len: self.h.cluster_size() as u32,
                        kind: Kind::L2 { index },
                    })?;
                }
            }
        }
        Ok(())
    }

    fn read_l2(&mut self, index: u64, table: &[u8]) -> Result<(), Error> {
        let entries = self.h.l2_entries();
        let entry_size = self.h.l2_entry_size();
        let cluster_size = self.h.cluster_size();
        for i in 0..entries {
            let guest = (index * entries + i) << self.h.cluster_bits;
            if guest >= self.h.virtual_size {
                break;
            }
            let at = i as usize * entry_size;
            let raw = be64(table, at);
            let bitmap = if self.h.extended_l2 {
                be64(table, at + 8)
            } else {
                0
            };
            match self.h.l2_entry(raw, bitmap)? {
                Cluster::Zero { host } => {
                    let len = cluster_size.min(self.h.virtual_size - guest);
                    self.out.zeroes(guest, len)?;
                    if host != 0 {
                        // Preallocated: its bytes are not data, no need to keep them.
                        self.register(Need {
                            start: host,
                            len: cluster_size as u32,
                            kind: Kind::Skip,
                        })?;
                    }
                }
                Cluster::Data { host, allocated } => self.register(Need {
                    start: host,
                    len: cluster_size as u32,
                    kind: Kind::Data { guest, allocated },
                })?,
                Cluster::Compressed { host, len } => self.register(Need {
                    start: host,
                    len: len as u32,
                    kind: Kind::Compressed { guest },
                })?,
            }
        }
        Ok(())
    }

    fn decompress(&mut self, host: u64, guest: u64, input: &[u8]) -> Result<(), Error> {
        let cluster_size = self.h.cluster_size() as usize;
        self.cluster.resize(cluster_size, 0);
        let decoder = match &mut self.decoder {
            Some(d) => d,
            None => self.decoder.insert(match self.h.compression {
                Compression::Deflate => Decoder::Deflate(Decompress::new(false)),
                Compression::Zstd => Decoder::Zstd(Box::new(
                    zstd::stream::raw::Decoder::new()
                        .map_err(|e| Error::Corrupt(format!("starting the zstd decoder: {e}")))?,
                )),
            }),
        };
        let used = match decoder {
            Decoder::Deflate(d) => inflate(d, input, &mut self.cluster),
            Decoder::Zstd(d) => unzstd(d, input, &mut self.cluster),
        }
        .map_err(|e| {
            Error::Corrupt(format!(
                "the compressed cluster at file offset {host:#x} (guest offset {guest:#x}): {e}"
            ))
        })?;
        self.orphans.remove(host, used as u64);
        let len = (cluster_size as u64).min(self.h.virtual_size - guest) as usize;
        self.out.data(guest, &self.cluster[..len])
    }

    /// End of the file: whatever is still awaited is missing.
    fn finish(mut self) -> Result<u64, Error> {
        // A compressed range may run past the end of the file; its data need not.
        for done in std::mem::take(&mut self.active) {
            match done.need.kind {
                Kind::Compressed { .. } => self.complete(done)?,
                kind if kind.required() => return Err(past_end(done.need, self.pos)),
                _ => {}
            }
        }
        if let Some(need) = self
            .pending
            .iter()
            .map(|n| n.0)
            .filter(|n| n.kind.required())
            .min()
        {
            return Err(past_end(need, self.pos));
        }
        Ok(self.h.virtual_size)
    }
}

fn past_end(need: Need, size: u64) -> Error {
    Error::Corrupt(format!(
        "the {} at file offset {:#x} ({} bytes) is not within the file ({size} bytes)",
        need.kind.name(),
        need.start,
        need.len
    ))
}

/// Writes the bytes at offset `rel` of a data cluster for guest offset `guest`: allocated
/// subclusters as data, the others as zeros, nothing past the virtual disk.
fn emit<O: Output>(
    h: &Header,
    out: &mut O,
    guest: u64,
    allocated: u32,
    rel: u64,
    mut chunk: &[u8],
) -> Result<(), Error> {
    let subcluster = h.subcluster_size();
    let mut at = guest + rel;
    while !chunk.is_empty() && at < h.virtual_size {
        let len = if allocated == u32::MAX {
            chunk.len() as u64
        } else {
            (subcluster - (at - guest) % subcluster).min(chunk.len() as u64)
        }
        .min(h.virtual_size - at);
        let index = (at - guest) / subcluster;
        if allocated & (1 << index) != 0 {
            out.data(at, &chunk[..len as usize])?;
        } else {
            out.zeroes(at, len)?;
        }
        chunk = &chunk[len as usize..];
        at += len;
    }
    Ok(())
}

/// Inflates raw deflate `input` into the whole of `out`; returns the input bytes used.
fn inflate(d: &mut Decompress, input: &[u8], out: &mut [u8]) -> Result<usize, String> {
    d.reset(false);
    d.decompress(input, out, FlushDecompress::Finish)
        .map_err(|e| format!("deflate: {e}"))?;
    if d.total_out() != out.len() as u64 {
        return Err(format!(
            "deflate data ends after {} of {} bytes",
            d.total_out(),
            out.len()
        ));
    }
    Ok(d.total_in() as usize)
}

/// Decodes zstd frames from `input` into the whole of `out`; returns the input bytes used.
fn unzstd(
    d: &mut zstd::stream::raw::Decoder<'static>,
    input: &[u8],
    out: &mut [u8],
) -> Result<usize, String> {
    d.reinit().map_err(|e| format!("zstd: {e}"))?;
    let (mut read, mut written) = (0, 0);
    while written < out.len() {
        let status = d
            .run_on_buffers(&input[read..], &mut out[written..])
            .map_err(|e| format!("zstd: {e}"))?;
        if status.bytes_read == 0 && status.bytes_written == 0 {
            return Err(format!(
                "zstd data ends after {written} of {} bytes",
                out.len()
            ));
        }
        read += status.bytes_read;
        written += status.bytes_written;
    }
    Ok(read)
}

#[cfg(test)]
mod tests;
