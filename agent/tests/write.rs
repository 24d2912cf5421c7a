//! The image writer against real peers: a Python HTTP server (or a raw TCP server that
//! misbehaves) over loopback, and real loop block devices. Needs root (losetup), python3,
//! gzip, zstd and sfdisk.
//!
//! Test code: panicking on an unexpected error is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent::image::{
    self, Checksum, ImageFormat, ImageSource, Phase, WriteError, WriteOptions, write_image,
};
use common::{HttpServer, LoopDevice, MIB, TempDir, checksum_of, pattern, require_root, sha256};
use proto::agent_v1::FailureReason;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// Peers and fixtures.

/// A server that answers every request with the first `send` bytes of `body`, then closes.
/// With `announce_length`, the headers promise the whole body.
async fn short_body_server(body: Vec<u8>, send: usize, announce_length: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = Arc::new(body);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let head = if announce_length {
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                } else {
                    "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_string()
                };
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body[..send]).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}/image")
}

/// Something like an OS image: 64 KiB blocks, ~40% zeros, the rest pseudo-random; `len`
/// need not be a multiple of the sector size.
fn os_like_image(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let n = (len - out.len()).min(64 * 1024);
        if next() % 10 < 4 {
            out.resize(out.len() + n, 0);
        } else {
            out.extend((0..n).map(|_| next() as u8));
        }
    }
    out
}

/// Runs a compressor CLI (`gzip`, `zstd`) on `input`, returns its output.
fn compress(tool: &str, args: &[&str], input: &Path) -> Vec<u8> {
    let out = Command::new(tool).args(args).arg(input).output().unwrap();
    assert!(out.status.success(), "{tool} failed");
    out.stdout
}

/// A loopback server, a loop device of `device_size` and an image of `image_size` on disk.
struct Fixture {
    dir: TempDir,
    server: HttpServer,
    device: LoopDevice,
    image: Vec<u8>,
}

impl Fixture {
    fn new(image_size: usize, device_size: usize) -> Self {
        require_root();
        let dir = TempDir::new();
        let served = dir.path("www");
        fs::create_dir(&served).unwrap();
        let image = os_like_image(image_size);
        fs::write(served.join("disk.raw"), &image).unwrap();
        let device = LoopDevice::new(&dir.path("disk.loop"), device_size);
        let server = HttpServer::serve(&served);
        Self {
            dir,
            server,
            device,
            image,
        }
    }
    /// Compresses disk.raw into `name` with `tool`, returns the artifact.
    fn add_compressed(&self, name: &str, tool: &str, args: &[&str]) -> Vec<u8> {
        let artifact = compress(tool, args, &self.dir.path("www/disk.raw"));
        fs::write(self.dir.path("www").join(name), &artifact).unwrap();
        artifact
    }
}

async fn write(
    url: String,
    checksum: Checksum,
    format: ImageFormat,
    device: &Path,
    options: &WriteOptions,
) -> Result<image::WriteReport, WriteError> {
    let client = image::default_client().unwrap();
    let source = ImageSource {
        url,
        checksum,
        format,
    };
    write_image(&client, &source, device, options, |_| {}).await
}

fn options() -> WriteOptions {
    WriteOptions {
        progress_interval: Duration::ZERO,
        ..WriteOptions::default()
    }
}

/// 6 MiB + 3077 bytes: several 4 MiB writes, and a tail that is not sector-aligned.
const IMAGE: usize = 6 * MIB + 3077;
const DEVICE: usize = 16 * MIB;

/// Writes `file` (of `format`) from a fresh fixture, checks the device holds exactly the raw
/// image followed by the untouched pattern.
async fn assert_written_identically(format: ImageFormat, compress_with: Option<(&str, &[&str])>) {
    let fx = Fixture::new(IMAGE, DEVICE);
    let (file, artifact) = match compress_with {
        None => ("disk.raw", fx.image.clone()),
        Some((tool, args)) => ("disk.img.c", fx.add_compressed("disk.img.c", tool, args)),
    };
    let phases = Arc::new(Mutex::new(Vec::new()));
    let seen = phases.clone();
    let client = image::default_client().unwrap();
    let source = ImageSource {
        url: fx.server.url(file),
        checksum: checksum_of(&artifact),
        format,
    };
    let report = write_image(
        &client,
        &source,
        fx.device.path(),
        &WriteOptions {
            progress_interval: Duration::from_millis(5),
            ..WriteOptions::default()
        },
        move |p| seen.lock().unwrap().push((p.phase, p.written)),
    )
    .await
    .unwrap();
    assert_eq!(report.image_size, IMAGE as u64);
    assert_eq!(report.downloaded, artifact.len() as u64);
    assert!(report.direct_io, "a loop device takes O_DIRECT");
    assert_eq!(report.digest, source.checksum.to_string());

    let on_disk = fx.device.read(DEVICE);
    assert_eq!(
        sha256(&on_disk[..IMAGE]),
        sha256(&fx.image),
        "image differs"
    );
    assert!(
        on_disk[IMAGE..] == pattern(DEVICE)[IMAGE..],
        "bytes past the image were touched"
    );
    let phases = phases.lock().unwrap();
    let n = phases.len();
    assert!(n >= 2);
    assert_eq!(phases[n - 2].0, Phase::Committing);
    assert_eq!(phases[n - 1], (Phase::Done, IMAGE as u64));
}

/// The first MiB of the device still holds the pattern.
/// Writes with the default options expecting a refusal that left the first MiB alone; returns
/// the refusal's reason.
async fn refusal(
    url: String,
    checksum: Checksum,
    format: ImageFormat,
    device: &LoopDevice,
) -> &'static str {
    let err = write(url, checksum, format, device.path(), &options())
        .await
        .unwrap_err();
    assert_first_mib_untouched(device);
    eprintln!("refused as expected: {err}");
    err.reason().condition_reason().unwrap_or("Unspecified")
}

fn assert_first_mib_untouched(device: &LoopDevice) {
    assert!(
        device.read(MIB) == pattern(DEVICE)[..MIB],
        "the first MiB of the device was written"
    );
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_image_is_written_byte_identical() {
    assert_written_identically(ImageFormat::Raw, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_image_is_written_byte_identical() {
    assert_written_identically(ImageFormat::RawGzip, Some(("gzip", &["-c", "-6"]))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_image_is_written_byte_identical() {
    assert_written_identically(
        ImageFormat::RawZstd,
        Some(("zstd", &["-q", "-c", "-3", "-T0"])),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_checksum_never_writes_the_first_mib() {
    let fx = Fixture::new(IMAGE, DEVICE);
    let wrong = checksum_of(b"some other image");
    assert_eq!(
        refusal(
            fx.server.url("disk.raw"),
            wrong,
            ImageFormat::Raw,
            &fx.device
        )
        .await,
        "ChecksumMismatch"
    );
    // The body streamed to disk: the held-back head is what keeps the disk unbootable.
    assert!(fx.device.read(IMAGE)[MIB..] == fx.image[MIB..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_shorter_than_its_content_length_is_a_download_failure() {
    let fx = Fixture::new(IMAGE, DEVICE);
    let url = short_body_server(fx.image.clone(), IMAGE / 2, true).await;
    assert_eq!(
        refusal(url, checksum_of(&fx.image), ImageFormat::Raw, &fx.device).await,
        "DownloadFailed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_stream_without_length_is_a_checksum_mismatch() {
    let fx = Fixture::new(IMAGE, DEVICE);
    let artifact = fx.add_compressed("disk.raw.zst", "zstd", &["-q", "-c", "-3"]);
    let url = short_body_server(artifact.clone(), artifact.len() * 2 / 3, false).await;
    // The decoder also fails on the cut frame; the checksum is the cause to report.
    assert_eq!(
        refusal(
            url,
            checksum_of(&artifact),
            ImageFormat::RawZstd,
            &fx.device
        )
        .await,
        "ChecksumMismatch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_is_image_not_found() {
    let fx = Fixture::new(MIB, DEVICE);
    assert_eq!(
        refusal(
            fx.server.url("no-such-image.raw"),
            checksum_of(&fx.image),
            ImageFormat::Raw,
            &fx.device
        )
        .await,
        "ImageNotFound"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_larger_than_the_device_is_refused() {
    // A 12 MiB image on an 8 MiB device.
    let fx = Fixture::new(12 * MIB, 8 * MIB);
    let artifact = fx.add_compressed("big.raw.zst", "zstd", &["-q", "-c", "-3"]);
    let started = Instant::now();
    // Uncompressed, the announced length is enough to refuse before writing anything.
    let err = write(
        fx.server.url("disk.raw"),
        checksum_of(&fx.image),
        ImageFormat::Raw,
        fx.device.path(),
        &options(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason(), FailureReason::ImageTooLarge, "{err}");
    assert!(
        fx.device.read(8 * MIB) == pattern(8 * MIB),
        "a refused device was written"
    );
    // Compressed, only the stream can tell: refused when it passes the device size.
    let err = write(
        fx.server.url("big.raw.zst"),
        checksum_of(&artifact),
        ImageFormat::RawZstd,
        fx.device.path(),
        &options(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, WriteError::ImageTooLarge { device_size, image_size }
            if device_size == 8 * MIB as u64 && image_size > device_size),
        "{err}"
    );
    assert_first_mib_untouched(&fx.device);
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_with_a_partition_table_is_refused_unless_allowed() {
    let fx = Fixture::new(IMAGE, DEVICE);
    let mut sfdisk = Command::new("sfdisk")
        .args(["-q", "--no-reread", &fx.device.name])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("sfdisk is needed (Debian package fdisk)");
    std::io::Write::write_all(&mut sfdisk.stdin.take().unwrap(), b"label: gpt\n,4MiB,L\n").unwrap();
    assert!(sfdisk.wait().unwrap().success());
    let before = fx.device.read(DEVICE);
    assert!(before[512..520] == *b"EFI PART");

    let err = write(
        fx.server.url("disk.raw"),
        checksum_of(&fx.image),
        ImageFormat::Raw,
        fx.device.path(),
        &options(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.reason(), FailureReason::DeviceHasPartitions, "{err}");
    assert!(
        fx.device.read(DEVICE) == before,
        "a refused device was written"
    );

    let report = write(
        fx.server.url("disk.raw"),
        checksum_of(&fx.image),
        ImageFormat::Raw,
        fx.device.path(),
        &WriteOptions {
            allow_partitions: true,
            ..options()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.image_size, IMAGE as u64);
    assert_eq!(sha256(&fx.device.read(IMAGE)), sha256(&fx.image));
}
