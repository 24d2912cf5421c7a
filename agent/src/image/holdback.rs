//! Holding back the start of the image until the artifact's checksum has verified.
//!
//! Everything past the first [`HOLDBACK_BYTES`] goes to the device as it comes in (in order
//! for raw images, anywhere for qcow2); the first
//! MiB (partition table, boot loader, GPT header) stays in memory and is written only by
//! [`Holdback::commit`], which the writer calls after the download completed and the checksum
//! matched. A bad, truncated or oversized image therefore never leaves a new partition table on
//! the disk.

use std::io;

use super::buffer::AlignedBuf;

/// Bytes held back from the start of the image: 1 MiB.
pub const HOLDBACK_BYTES: usize = 1 << 20;

/// Where image bytes go: a block device, a file, or memory in tests.
pub trait Sink {
    /// Writes all of `data` at byte `offset`.
    fn write_at(&mut self, data: &[u8], offset: u64) -> io::Result<()>;
    /// Makes everything written so far durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Makes `len` bytes at `offset` read as zeros, by default by writing `zeros` (a zeroed
    /// buffer) over them.
    fn write_zeroes(&mut self, offset: u64, len: u64, zeros: &[u8]) -> io::Result<()> {
        write_zero_buffers(self, offset, len, zeros)
    }
}

/// Writes `len` zero bytes at `offset`, `zeros.len()` at a time.
pub fn write_zero_buffers<S: Sink + ?Sized>(
    sink: &mut S,
    offset: u64,
    len: u64,
    zeros: &[u8],
) -> io::Result<()> {
    let mut done = 0;
    while done < len {
        let n = (len - done).min(zeros.len() as u64);
        sink.write_at(&zeros[..n as usize], offset + done)?;
        done += n;
    }
    Ok(())
}

/// Size of the zero buffer for [`Sink::write_zeroes`] (allocated when first needed).
const ZEROS: usize = 1 << 20;

/// Why a push or commit failed.
#[derive(Debug, thiserror::Error)]
pub enum HoldbackError {
    /// The stream went past the size limit (the device size).
    #[error("image is larger than the device ({limit} bytes): at least {at_least} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
        /// Image bytes seen so far, including the buffer that crossed the limit.
        at_least: u64,
    },
    /// The sink refused a write.
    #[error("write at offset {offset} failed: {source}")]
    Write {
        /// Byte offset of the failed write.
        offset: u64,
        /// The I/O error.
        source: io::Error,
    },
    /// The sink could not sync.
    #[error("sync failed: {0}")]
    Sync(io::Error),
}

/// Image bytes on their way to a sink, first MiB held back.
pub struct Holdback<S: Sink> {
    sink: S,
    head: AlignedBuf,
    head_len: usize,
    /// End of the furthest byte received.
    received: u64,
    written: u64,
    limit: Option<u64>,
    zeros: Option<AlignedBuf>,
}

impl<S: Sink> Holdback<S> {
    /// Holds back the first [`HOLDBACK_BYTES`]; refuses to go past `limit` bytes if given.
    pub fn new(sink: S, limit: Option<u64>) -> Self {
        Self::with_holdback(sink, HOLDBACK_BYTES, limit)
    }

    /// Like [`Holdback::new`] with another holdback size (tests, devices with large sectors).
    pub fn with_holdback(sink: S, holdback: usize, limit: Option<u64>) -> Self {
        Self {
            sink,
            head: AlignedBuf::new(holdback),
            head_len: 0,
            received: 0,
            written: 0,
            limit,
            zeros: None,
        }
    }

    /// Appends the next bytes of the image.
    ///
    /// For direct I/O, pass buffers whose start is aligned and whose length is a multiple of
    /// the block size, except for the last one.
    pub fn push(&mut self, data: &[u8]) -> Result<(), HoldbackError> {
        self.write_at(self.received, data)
    }

    /// Writes image bytes at `offset`; the part in the first MiB is held back.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), HoldbackError> {
        let (held, offset) = self.hold(offset, data.len() as u64)?;
        self.head.as_mut_slice()[held.clone()].copy_from_slice(&data[..held.len()]);
        let rest = &data[held.len()..];
        if !rest.is_empty() {
            self.sink
                .write_at(rest, offset)
                .map_err(|source| HoldbackError::Write { offset, source })?;
            self.written += rest.len() as u64;
        }
        Ok(())
    }

    /// Makes `len` image bytes at `offset` zeros; the part in the first MiB is held back.
    pub fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<(), HoldbackError> {
        let (held, offset) = self.hold(offset, len)?;
        self.head.as_mut_slice()[held.clone()].fill(0);
        let rest = len - held.len() as u64;
        if rest > 0 {
            let zeros = self.zeros.get_or_insert_with(|| AlignedBuf::new(ZEROS));
            self.sink
                .write_zeroes(offset, rest, zeros.as_slice())
                .map_err(|source| HoldbackError::Write { offset, source })?;
            self.written += rest;
        }
        Ok(())
    }

    /// Checks `[offset, offset + len)` against the limit and accounts for it; returns the part
    /// of the head it covers and where the rest starts.
    fn hold(
        &mut self,
        offset: u64,
        len: u64,
    ) -> Result<(std::ops::Range<usize>, u64), HoldbackError> {
        let end = offset + len;
        if let Some(limit) = self.limit
            && end > limit
        {
            return Err(HoldbackError::TooLarge {
                limit,
                at_least: end.max(self.received),
            });
        }
        let head_cap = self.head.capacity() as u64;
        let held = if offset < head_cap {
            offset as usize..end.min(head_cap) as usize
        } else {
            0..0
        };
        self.head_len = self.head_len.max(held.end);
        self.received = self.received.max(end);
        let rest_at = offset + held.len() as u64;
        Ok((held, rest_at))
    }

    /// End of the furthest image byte received: the image size once all of it is in.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Bytes already on the sink (everything received except the held-back head).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Bytes currently held back in memory.
    pub fn held_back(&self) -> usize {
        self.head_len
    }

    /// Makes the image complete: syncs the body, writes the held-back head, syncs again.
    ///
    /// Call only once the download completed and its checksum matched. Returns the sink and
    /// the image size.
    pub fn commit(mut self) -> Result<(S, u64), HoldbackError> {
        // The body is durable before the head makes the disk look bootable.
        self.sink.sync().map_err(HoldbackError::Sync)?;
        if self.head_len > 0 {
            self.sink
                .write_at(&self.head.as_slice()[..self.head_len], 0)
                .map_err(|source| HoldbackError::Write { offset: 0, source })?;
        }
        self.sink.sync().map_err(HoldbackError::Sync)?;
        Ok((self.sink, self.received))
    }

    /// Gives up without ever writing the head; returns the sink.
    pub fn abandon(self) -> S {
        self.sink
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum Event {
        Write { offset: u64, len: usize },
        Sync,
    }

    /// A device in memory, pre-filled with a pattern, that records what happened.
    struct MemSink {
        data: Vec<u8>,
        events: Vec<Event>,
    }

    impl MemSink {
        fn new(size: usize) -> Self {
            Self {
                data: (0..size).map(|i| 0xA0 ^ (i % 251) as u8).collect(),
                events: Vec::new(),
            }
        }
    }

    impl Sink for MemSink {
        fn write_at(&mut self, data: &[u8], offset: u64) -> io::Result<()> {
            let at = offset as usize;
            if at + data.len() > self.data.len() {
                return Err(io::Error::other("past the end"));
            }
            self.data[at..at + data.len()].copy_from_slice(data);
            self.events.push(Event::Write {
                offset,
                len: data.len(),
            });
            Ok(())
        }
        fn sync(&mut self) -> io::Result<()> {
            self.events.push(Event::Sync);
            Ok(())
        }
    }

    const MIB: usize = 1 << 20;

    fn image(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 256) as u8 ^ 0x5C).collect()
    }

    #[test]
    fn head_is_written_only_on_commit_and_last() {
        let img = image(3 * MIB + 12_345);
        let sink = MemSink::new(4 * MIB);
        let before = sink.data.clone();
        let mut hb = Holdback::new(sink, Some(4 * MIB as u64));
        for part in img.chunks(300 * 1024) {
            hb.push(part).unwrap();
        }
        assert_eq!(hb.received(), img.len() as u64);
        assert_eq!(hb.written(), (img.len() - MIB) as u64);
        assert_eq!(hb.held_back(), MIB);
        assert!(hb.sink.events.iter().all(|e| match e {
            Event::Write { offset, .. } => *offset >= MIB as u64,
            Event::Sync => false,
        }));
        assert_eq!(hb.sink.data[..MIB], before[..MIB], "head written early");
        assert_eq!(hb.sink.data[MIB..img.len()], img[MIB..]);

        let (sink, size) = hb.commit().unwrap();
        assert_eq!(size, img.len() as u64);
        assert_eq!(sink.data[..img.len()], img[..]);
        assert_eq!(sink.data[img.len()..], before[img.len()..]);
        let n = sink.events.len();
        assert_eq!(
            sink.events[n - 3..],
            [
                Event::Sync,
                Event::Write {
                    offset: 0,
                    len: MIB
                },
                Event::Sync
            ]
        );
    }

    #[test]
    fn abandon_never_writes_the_head() {
        let img = image(2 * MIB);
        let sink = MemSink::new(4 * MIB);
        let before = sink.data.clone();
        let mut hb = Holdback::new(sink, None);
        hb.push(&img).unwrap();
        let sink = hb.abandon();
        assert_eq!(sink.data[..MIB], before[..MIB]);
        assert!(
            !sink
                .events
                .iter()
                .any(|e| matches!(e, Event::Write { offset: 0, .. } | Event::Sync))
        );
    }

    #[test]
    fn too_large_is_refused_before_writing_the_crossing_buffer() {
        let sink = MemSink::new(4 * MIB);
        let mut hb = Holdback::new(sink, Some(2 * MIB as u64));
        hb.push(&image(MIB)).unwrap();
        hb.push(&image(MIB)).unwrap();
        let err = hb.push(&[1u8]).unwrap_err();
        assert!(
            matches!(err, HoldbackError::TooLarge { limit, at_least } if limit == 2 * MIB as u64 && at_least == 2 * MIB as u64 + 1)
        );
        assert_eq!(hb.written(), MIB as u64);
    }

    #[test]
    fn image_smaller_than_the_holdback_is_written_whole_on_commit() {
        let img = image(5000);
        let sink = MemSink::new(MIB);
        let mut hb = Holdback::new(sink, None);
        hb.push(&img[..100]).unwrap();
        hb.push(&img[100..]).unwrap();
        assert!(hb.sink.events.is_empty());
        let (sink, size) = hb.commit().unwrap();
        assert_eq!(size, 5000);
        assert_eq!(sink.data[..5000], img[..]);
        assert_eq!(
            sink.events,
            [
                Event::Sync,
                Event::Write {
                    offset: 0,
                    len: 5000
                },
                Event::Sync
            ]
        );
    }

    #[test]
    fn a_buffer_straddling_the_boundary_is_split() {
        let img = image(MIB + 4096);
        let sink = MemSink::new(2 * MIB);
        let mut hb = Holdback::new(sink, None);
        hb.push(&img[..MIB - 4096]).unwrap();
        hb.push(&img[MIB - 4096..]).unwrap();
        assert_eq!(
            hb.sink.events,
            [Event::Write {
                offset: MIB as u64,
                len: 4096
            }]
        );
    }

    #[test]
    fn writes_anywhere_and_zeroes_are_held_back_in_the_head_too() {
        let img = image(3 * MIB);
        let sink = MemSink::new(4 * MIB);
        let before = sink.data.clone();
        let mut hb = Holdback::new(sink, Some(4 * MIB as u64));
        // Out of order, as a qcow2 image comes: the end, the start, zeros over a range
        // across the head's end, then the rest.
        hb.write_at(2 * MIB as u64, &img[2 * MIB..]).unwrap();
        hb.write_at(0, &img[..MIB]).unwrap();
        hb.write_zeroes(MIB as u64 - 4096, 8192).unwrap();
        hb.write_at(MIB as u64 + 4096, &img[MIB + 4096..2 * MIB])
            .unwrap();
        assert_eq!(hb.received(), 3 * MIB as u64);
        assert_eq!(hb.written(), 2 * MIB as u64);
        assert_eq!(hb.held_back(), MIB);
        assert_eq!(hb.sink.data[..MIB], before[..MIB], "head written early");
        assert!(hb.sink.data[MIB..MIB + 4096].iter().all(|b| *b == 0));

        let (sink, size) = hb.commit().unwrap();
        assert_eq!(size, 3 * MIB as u64);
        let mut expected = img.clone();
        expected[MIB - 4096..MIB + 4096].fill(0);
        assert!(sink.data[..3 * MIB] == expected[..]);
        assert_eq!(sink.data[3 * MIB..], before[3 * MIB..]);
    }

    #[test]
    fn zeroes_past_the_limit_are_refused() {
        let sink = MemSink::new(4 * MIB);
        let mut hb = Holdback::new(sink, Some(2 * MIB as u64));
        hb.write_zeroes(0, 2 * MIB as u64).unwrap();
        let err = hb.write_zeroes(2 * MIB as u64 - 1, 2).unwrap_err();
        assert!(
            matches!(err, HoldbackError::TooLarge { limit, at_least } if limit == 2 * MIB as u64 && at_least == 2 * MIB as u64 + 1)
        );
    }
}
