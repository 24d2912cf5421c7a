//! Streaming an image from HTTP onto a disk.
//!
//! Four stages run at once, joined by bounded channels so network, CPU and disk overlap and
//! memory stays bounded:
//!
//! ```text
//! download (async) ──chunks──┬─> hash (thread): digest of the artifact as downloaded
//!                            └─> decode (thread) ──4 MiB aligned buffers──> write (thread)
//! ```
//!
//! The decode stage decompresses a raw image into buffers of consecutive bytes, or turns a
//! qcow2 image into buffers and zero ranges at their guest offsets ([`super::qcow2`]).
//!
//! The write stage holds back the first MiB ([`super::holdback`]). Only when the download
//! completed, the digest matched and every other byte is on the device does the coordinator
//! commit: sync, write the first MiB, sync. Every failure path drops the held-back head.

use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::{Client, Response};
use tokio::task::JoinHandle;

use super::buffer::AlignedBuf;
use super::checksum::Checksum;
use super::chunk_reader::ChunkReader;
use super::decompress::{self, ImageFormat};
use super::device::{Device, DirectIo};
use super::error::WriteError;
use super::fetch;
use super::holdback::{Holdback, HoldbackError};
use super::qcow2;

/// Network chunks queued towards each of the hash and decompress stages.
const CHUNK_QUEUE: usize = 256;

/// What to download and how to check it.
#[derive(Debug, Clone)]
pub struct ImageSource {
    /// HTTP(S) URL of the artifact.
    pub url: String,
    /// Expected digest of the artifact as served (compressed, for compressed formats).
    pub checksum: Checksum,
    /// Format of the artifact.
    pub format: ImageFormat,
}

/// Knobs of the writer; [`WriteOptions::default`] is what the agent uses.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Overwrite a device that holds a partition table (normally only after cleaning).
    pub allow_partitions: bool,
    /// Direct or buffered I/O.
    pub direct_io: DirectIo,
    /// Size of each write (a multiple of 4 KiB; 4 MiB by default).
    pub buffer_size: usize,
    /// Decompressed buffers queued towards the write stage.
    pub queue_depth: usize,
    /// Refuse images larger than this, in addition to the device size.
    pub size_limit: Option<u64>,
    /// Give up when the server sends nothing for this long.
    pub stall_timeout: Duration,
    /// How often the progress callback is called while writing (zero: only at the end).
    pub progress_interval: Duration,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            allow_partitions: false,
            direct_io: DirectIo::Auto,
            buffer_size: 4 << 20,
            queue_depth: 4,
            size_limit: None,
            stall_timeout: Duration::from_secs(60),
            progress_interval: Duration::from_secs(1),
        }
    }
}

/// Where the writer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Downloading, decompressing and writing everything but the first MiB.
    Streaming,
    /// Checksum verified: syncing, writing the first MiB, syncing.
    Committing,
    /// The image is on the device and durable.
    Done,
}

/// A progress report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Where the writer is.
    pub phase: Phase,
    /// Artifact bytes received.
    pub downloaded: u64,
    /// Artifact size announced by the server, if any.
    pub download_size: Option<u64>,
    /// Image bytes on the device (the held-back first MiB counts once committed).
    pub written: u64,
    /// Time since the write started.
    pub elapsed: Duration,
}

/// The outcome of a successful write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReport {
    /// Artifact bytes downloaded.
    pub downloaded: u64,
    /// Image bytes written to the device.
    pub image_size: u64,
    /// The verified digest of the artifact (`algo:hex`).
    pub digest: String,
    /// Whether the body went through O_DIRECT.
    pub direct_io: bool,
    /// Total time, from opening the device to the final sync.
    pub elapsed: Duration,
}

/// Streams `source` onto `device` (a block device or a file).
///
/// Returns only after the data is durable. On any error the first MiB of the device is left as
/// it was, so a failed write never yields a disk with a new partition table.
pub async fn write_image<P>(
    client: &Client,
    source: &ImageSource,
    device: &Path,
    options: &WriteOptions,
    progress: P,
) -> Result<WriteReport, WriteError>
where
    P: Fn(&Progress) + Send + Sync + 'static,
{
    let started = Instant::now();
    if options.buffer_size == 0 || !options.buffer_size.is_multiple_of(4096) {
        return Err(WriteError::Internal(format!(
            "buffer size {} is not a positive multiple of 4096",
            options.buffer_size
        )));
    }
    let device_name = device.display().to_string();

    let target = {
        let device = device.to_path_buf();
        let direct_io = options.direct_io;
        let allow_partitions = options.allow_partitions;
        tokio::task::spawn_blocking(move || {
            let target = Device::open(&device, direct_io)?;
            if !allow_partitions && let Some(table) = target.partition_table()? {
                return Err(WriteError::DeviceHasPartitions {
                    device: device.display().to_string(),
                    table,
                });
            }
            Ok(target)
        })
        .await
        .map_err(join_error)??
    };
    let direct_io = target.uses_direct_io();
    let limit = match (target.size(), options.size_limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };

    let mut response = fetch::get(client, &source.url).await?;
    let download_size = response.content_length();
    if let (ImageFormat::Raw, Some(size), Some(limit)) = (source.format, download_size, limit)
        && size > limit
    {
        return Err(WriteError::ImageTooLarge {
            device_size: limit,
            image_size: size,
        });
    }
    tracing::info!(url = %source.url, device = %device_name, format = %source.format,
        ?download_size, direct_io, "writing image");

    let counters = Arc::new(Counters::default());
    let progress = Arc::new(progress);
    let snapshot = {
        let counters = counters.clone();
        move |phase| Progress {
            phase,
            downloaded: counters.downloaded.load(Ordering::Relaxed),
            download_size,
            written: counters.written.load(Ordering::Relaxed),
            elapsed: started.elapsed(),
        }
    };
    let reporter = (!options.progress_interval.is_zero()).then(|| {
        let progress = progress.clone();
        let snapshot = snapshot.clone();
        let period = options.progress_interval;
        AbortOnDrop(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                progress(&snapshot(Phase::Streaming));
            }
        }))
    });

    let (hash_tx, mut hash_rx) = tokio::sync::mpsc::channel::<Bytes>(CHUNK_QUEUE);
    let (decode_tx, decode_rx) = tokio::sync::mpsc::channel::<Bytes>(CHUNK_QUEUE);
    let (filled_tx, filled_rx) = std::sync::mpsc::sync_channel::<Piece>(options.queue_depth);
    let (pool_tx, pool_rx) = std::sync::mpsc::channel::<AlignedBuf>();

    let algorithm = source.checksum.algorithm();
    let hasher = tokio::task::spawn_blocking(move || {
        let mut hasher = algorithm.hasher();
        while let Some(chunk) = hash_rx.blocking_recv() {
            hasher.update(&chunk);
        }
        hasher.finalize()
    });
    let pool = BufferPool {
        returned: pool_rx,
        allocated: 0,
        max: options.queue_depth + 2,
        size: options.buffer_size,
    };
    let format = source.format;
    let decoder = tokio::task::spawn_blocking(move || {
        let input = ChunkReader::new(decode_rx);
        match format {
            ImageFormat::Qcow2 => qcow2_stage(input, filled_tx, pool, limit),
            _ => decompress_stage(format, input, filled_tx, pool),
        }
    });
    let writer = {
        let counters = counters.clone();
        let holdback = Holdback::new(target, limit);
        tokio::task::spawn_blocking(move || write_stage(holdback, filled_rx, pool_tx, &counters))
    };

    let download = download_stage(
        &mut response,
        hash_tx,
        decode_tx,
        &counters,
        options.stall_timeout,
    )
    .await;
    drop(response);
    let digest = hasher.await.map_err(join_error)?;
    let decoded = decoder.await.map_err(join_error)?;
    let written = writer.await.map_err(join_error)?;

    let write_error = |e: HoldbackError| match e {
        HoldbackError::TooLarge { limit, at_least } => WriteError::ImageTooLarge {
            device_size: limit,
            image_size: at_least,
        },
        HoldbackError::Write { offset, source } => WriteError::WriteFailed {
            device: device_name.clone(),
            offset,
            source,
        },
        HoldbackError::Sync(source) => WriteError::WriteFailed {
            device: device_name.clone(),
            offset: 0,
            source,
        },
    };
    let decode_error = |e: StageStop| match e {
        StageStop::Io(source) => WriteError::DecompressFailed { format, source },
        StageStop::Qcow2(qcow2::Error::Unsupported(detail)) => {
            WriteError::UnsupportedFormat { format, detail }
        }
        StageStop::Qcow2(e @ qcow2::Error::OutOfOrder(_)) => WriteError::UnsupportedFormat {
            format,
            detail: e.to_string(),
        },
        StageStop::Qcow2(qcow2::Error::TooLarge { size, limit }) => WriteError::ImageTooLarge {
            device_size: limit,
            image_size: size,
        },
        StageStop::Qcow2(e) => WriteError::DecompressFailed {
            format,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        },
        StageStop::Cancelled => {
            WriteError::Internal("the write stage stopped without an error".into())
        }
    };

    // Causes before effects: a failed download explains a short stream; a wrong artifact
    // explains a decoder error; a write error or an oversized image cancels the download.
    let holdback = match download {
        DownloadEnd::Failed(detail) => {
            return Err(WriteError::DownloadFailed {
                url: source.url.clone(),
                detail,
            });
        }
        DownloadEnd::Cancelled => {
            written.map_err(write_error)?;
            decoded.map_err(decode_error)?;
            return Err(WriteError::Internal(
                "the download was cancelled without a cause".into(),
            ));
        }
        DownloadEnd::Complete => {
            if !source.checksum.matches(&digest) {
                return Err(WriteError::ChecksumMismatch {
                    expected: source.checksum.to_string(),
                    actual: format!("{}:{}", algorithm, hex::encode(&digest)),
                });
            }
            let holdback = written.map_err(write_error)?;
            decoded.map_err(decode_error)?;
            holdback
        }
    };
    if holdback.received() == 0 {
        return Err(WriteError::ImageEmpty);
    }

    if let Some(reporter) = reporter {
        reporter.stop().await;
    }
    progress(&snapshot(Phase::Committing));
    let (target, image_size) = tokio::task::spawn_blocking(move || holdback.commit())
        .await
        .map_err(join_error)?
        .map_err(write_error)?;
    counters.written.store(image_size, Ordering::Relaxed);
    let direct_io = target.uses_direct_io() && direct_io;
    drop(target);
    progress(&snapshot(Phase::Done));

    let report = WriteReport {
        downloaded: counters.downloaded.load(Ordering::Relaxed),
        image_size,
        digest: format!("{}:{}", algorithm, hex::encode(&digest)),
        direct_io,
        elapsed: started.elapsed(),
    };
    tracing::info!(device = %device_name, image_size, downloaded = report.downloaded,
        elapsed_ms = report.elapsed.as_millis() as u64, "image written and verified");
    Ok(report)
}

#[derive(Debug, Default)]
struct Counters {
    downloaded: AtomicU64,
    written: AtomicU64,
}

/// Aborts a background task when the writer returns, on every path.
struct AbortOnDrop(JoinHandle<()>);

impl AbortOnDrop {
    /// Aborts the task and waits until it no longer runs.
    async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn join_error(e: tokio::task::JoinError) -> WriteError {
    WriteError::Internal(format!("a writer stage died: {e}"))
}

enum DownloadEnd {
    /// The body ended normally.
    Complete,
    /// Connection error, stall, or a body shorter than its Content-Length.
    Failed(String),
    /// A downstream stage stopped reading.
    Cancelled,
}

async fn download_stage(
    response: &mut Response,
    hash_tx: tokio::sync::mpsc::Sender<Bytes>,
    decode_tx: tokio::sync::mpsc::Sender<Bytes>,
    counters: &Counters,
    stall_timeout: Duration,
) -> DownloadEnd {
    loop {
        let chunk = match tokio::time::timeout(stall_timeout, response.chunk()).await {
            Err(_) => {
                return DownloadEnd::Failed(format!(
                    "no data received for {}s",
                    stall_timeout.as_secs()
                ));
            }
            Ok(Err(e)) => return DownloadEnd::Failed(fetch::chain(&e)),
            Ok(Ok(None)) => return DownloadEnd::Complete,
            Ok(Ok(Some(chunk))) => chunk,
        };
        counters
            .downloaded
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if hash_tx.send(chunk.clone()).await.is_err() || decode_tx.send(chunk).await.is_err() {
            return DownloadEnd::Cancelled;
        }
    }
}

/// What the decode stage hands to the write stage.
enum Piece {
    /// The first `len` bytes of `buf`, for image offset `offset`.
    Data {
        buf: AlignedBuf,
        len: usize,
        offset: u64,
    },
    /// `len` zero bytes at image offset `offset`.
    Zeroes { offset: u64, len: u64 },
}

/// Why the decode stage stopped early.
enum StageStop {
    /// The decoder failed (corrupt or truncated stream).
    Io(std::io::Error),
    /// The qcow2 reader refused the image.
    Qcow2(qcow2::Error),
    /// The write stage is gone (it failed; its error is the one to report).
    Cancelled,
}

/// Recycles write buffers so the steady state allocates nothing.
struct BufferPool {
    returned: Receiver<AlignedBuf>,
    allocated: usize,
    max: usize,
    size: usize,
}

impl BufferPool {
    /// A free buffer, or `None` when the write stage is gone.
    fn take(&mut self) -> Option<AlignedBuf> {
        match self.returned.try_recv() {
            Ok(buf) => return Some(buf),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {}
        }
        if self.allocated < self.max {
            self.allocated += 1;
            return Some(AlignedBuf::new(self.size));
        }
        self.returned.recv().ok()
    }
}

fn decompress_stage(
    format: ImageFormat,
    input: ChunkReader,
    output: SyncSender<Piece>,
    mut pool: BufferPool,
) -> Result<u64, StageStop> {
    let mut decoder = decompress::decoder(format, input).map_err(StageStop::Io)?;
    let mut total = 0u64;
    loop {
        let mut buf = pool.take().ok_or(StageStop::Cancelled)?;
        let capacity = buf.capacity();
        let space = buf.as_mut_slice();
        let mut len = 0;
        while len < capacity {
            match decoder.read(&mut space[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(StageStop::Io(e)),
            }
        }
        if len == 0 {
            return Ok(total);
        }
        output
            .send(Piece::Data {
                buf,
                len,
                offset: total,
            })
            .map_err(|_| StageStop::Cancelled)?;
        total += len as u64;
        if len < capacity {
            return Ok(total);
        }
    }
}

fn qcow2_stage(
    input: ChunkReader,
    output: SyncSender<Piece>,
    pool: BufferPool,
    limit: Option<u64>,
) -> Result<u64, StageStop> {
    let mut pieces = Pieces {
        output,
        pool,
        data: None,
        zeroes: None,
    };
    let stop = |e: qcow2::Error| match e {
        qcow2::Error::OutputClosed => StageStop::Cancelled,
        e => StageStop::Qcow2(e),
    };
    let size = qcow2::convert(input, &mut pieces, limit, qcow2::Limits::default()).map_err(stop)?;
    pieces.flush().map_err(stop)?;
    Ok(size)
}

/// Gathers the qcow2 reader's output into write-sized pieces: adjacent data into one buffer,
/// adjacent zero ranges into one range.
struct Pieces {
    output: SyncSender<Piece>,
    pool: BufferPool,
    /// Data being gathered: buffer, bytes in it, image offset of its start.
    data: Option<(AlignedBuf, usize, u64)>,
    /// A zero range being gathered: offset, length.
    zeroes: Option<(u64, u64)>,
}

impl Pieces {
    fn send(&self, piece: Piece) -> Result<(), qcow2::Error> {
        self.output
            .send(piece)
            .map_err(|_| qcow2::Error::OutputClosed)
    }

    fn flush_data(&mut self) -> Result<(), qcow2::Error> {
        match self.data.take() {
            Some((buf, len, offset)) => self.send(Piece::Data { buf, len, offset }),
            None => Ok(()),
        }
    }

    fn flush(&mut self) -> Result<(), qcow2::Error> {
        self.flush_data()?;
        match self.zeroes.take() {
            Some((offset, len)) => self.send(Piece::Zeroes { offset, len }),
            None => Ok(()),
        }
    }
}

impl qcow2::Output for Pieces {
    fn data(&mut self, offset: u64, mut data: &[u8]) -> Result<(), qcow2::Error> {
        let mut offset = offset;
        while !data.is_empty() {
            let (buf, len, start) = match self.data.take() {
                Some((buf, len, start)) if start + len as u64 == offset && len < buf.capacity() => {
                    (buf, len, start)
                }
                other => {
                    if let Some((buf, len, start)) = other {
                        self.send(Piece::Data {
                            buf,
                            len,
                            offset: start,
                        })?;
                    }
                    let buf = self.pool.take().ok_or(qcow2::Error::OutputClosed)?;
                    (buf, 0, offset)
                }
            };
            let mut buf = buf;
            let n = (buf.capacity() - len).min(data.len());
            buf.as_mut_slice()[len..len + n].copy_from_slice(&data[..n]);
            self.data = Some((buf, len + n, start));
            data = &data[n..];
            offset += n as u64;
        }
        Ok(())
    }

    fn zeroes(&mut self, offset: u64, len: u64) -> Result<(), qcow2::Error> {
        match &mut self.zeroes {
            Some((start, n)) if *start + *n == offset => *n += len,
            _ => {
                if let Some((start, n)) = self.zeroes.replace((offset, len)) {
                    self.send(Piece::Zeroes {
                        offset: start,
                        len: n,
                    })?;
                }
            }
        }
        Ok(())
    }
}

fn write_stage(
    mut holdback: Holdback<Device>,
    input: Receiver<Piece>,
    pool: Sender<AlignedBuf>,
    counters: &Counters,
) -> Result<Holdback<Device>, HoldbackError> {
    for piece in input {
        match piece {
            Piece::Data { buf, len, offset } => {
                holdback.write_at(offset, &buf.as_slice()[..len])?;
                // The decode stage may have finished; then the buffer is simply freed.
                let _ = pool.send(buf);
            }
            Piece::Zeroes { offset, len } => holdback.write_zeroes(offset, len)?,
        }
        counters
            .written
            .store(holdback.written(), Ordering::Relaxed);
    }
    Ok(holdback)
}
