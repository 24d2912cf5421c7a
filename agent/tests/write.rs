//! The image writer against real peers: a Python HTTP server (or a raw TCP server that
//! misbehaves) over loopback, and real loop block devices. Needs root (losetup), python3,
//! gzip, zstd, sfdisk and qemu-img (qcow2 images made by QEMU itself), and the test OS image
//! (hack/boot/test-os.sh).
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
use common::{
    HttpServer, LoopDevice, MIB, TempDir, checksum_of, pattern, require_root, sha256, tool,
};
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

/// Something like an OS image: 64 KiB blocks, ~40% zeros, ~30% text-like (compressible),
/// the rest pseudo-random; `len` need not be a multiple of the sector size.
fn os_like_image(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let words: [&[u8]; 8] = [
        b"server ", b"rack ", b"image ", b"disk ", b"boot ", b"agent ", b"qcow2 ", b"\n",
    ];
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let n = (len - out.len()).min(64 * 1024);
        let end = out.len() + n;
        match next() % 10 {
            0..4 => out.resize(end, 0),
            4..7 => {
                while out.len() < end {
                    let word = words[(next() % 8) as usize];
                    out.extend_from_slice(&word[..word.len().min(end - out.len())]);
                }
            }
            _ => out.extend((0..n).map(|_| next() as u8)),
        }
    }
    out
}

/// `qemu-img convert -O qcow2 ARGS raw out`.
fn qemu_img_convert(raw: &Path, out: &Path, args: &[&str]) {
    let mut all = vec!["convert", "-q", "-f", "raw", "-O", "qcow2"];
    all.extend_from_slice(args);
    all.extend([raw.to_str().unwrap(), out.to_str().unwrap()]);
    qemu_img(&all);
}

/// Runs one `qemu-io` command on a qcow2 image (Debian package qemu-utils).
fn qemu_io(image: &Path, command: &str) {
    let out = tool(
        "qemu-io",
        &["-f", "qcow2", "-c", command, image.to_str().unwrap()],
        None,
    );
    assert!(
        out.status.success(),
        "qemu-io {command} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs qemu-img (Debian package qemu-utils).
fn qemu_img(args: &[&str]) {
    let out = tool("qemu-img", args, None);
    assert!(
        out.status.success(),
        "qemu-img {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    /// Converts disk.raw into the qcow2 image `name` with `qemu-img convert ARGS`, returns it.
    fn add_qcow2(&self, name: &str, args: &[&str]) -> Vec<u8> {
        let out = self.dir.path("www").join(name);
        qemu_img_convert(&self.dir.path("www/disk.raw"), &out, args);
        fs::read(out).unwrap()
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
    let image = fx.image.clone();
    assert_artifact_written_identically(&fx.server, file, &artifact, format, &fx.device, &image)
        .await;
}

/// Converts a fresh fixture's image with `qemu-img convert -O qcow2 ARGS`, writes it, checks
/// the device holds the raw image (padded to whole sectors, as qemu-img sizes the virtual
/// disk) followed by the untouched pattern.
async fn assert_qcow2_written_identically(args: &[&str]) {
    let fx = Fixture::new(IMAGE, DEVICE);
    let artifact = fx.add_qcow2("disk.qcow2", args);
    let mut image = fx.image.clone();
    image.resize(IMAGE.next_multiple_of(512), 0);
    assert_artifact_written_identically(
        &fx.server,
        "disk.qcow2",
        &artifact,
        ImageFormat::Qcow2,
        &fx.device,
        &image,
    )
    .await;
}

/// Writes `file` (`artifact`, of `format`) onto `device`; checks the device holds exactly
/// `image` followed by the untouched pattern, and the progress reports.
async fn assert_artifact_written_identically(
    server: &HttpServer,
    file: &str,
    artifact: &[u8],
    format: ImageFormat,
    device: &LoopDevice,
    image: &[u8],
) {
    let phases = Arc::new(Mutex::new(Vec::new()));
    let seen = phases.clone();
    let client = image::default_client().unwrap();
    let source = ImageSource {
        url: server.url(file),
        checksum: checksum_of(artifact),
        format,
    };
    let report = write_image(
        &client,
        &source,
        device.path(),
        &WriteOptions {
            progress_interval: Duration::from_millis(5),
            ..WriteOptions::default()
        },
        move |p| seen.lock().unwrap().push((p.phase, p.written)),
    )
    .await
    .unwrap();
    let size = image.len();
    assert_eq!(report.image_size, size as u64);
    assert_eq!(report.downloaded, artifact.len() as u64);
    assert!(report.direct_io, "a loop device takes O_DIRECT");
    assert_eq!(report.digest, source.checksum.to_string());

    let device_size = fs::metadata(device.backing()).unwrap().len() as usize;
    let on_disk = device.read(device_size);
    assert_eq!(sha256(&on_disk[..size]), sha256(image), "image differs");
    assert!(
        on_disk[size..] == pattern(device_size)[size..],
        "bytes past the image were touched"
    );
    let phases = phases.lock().unwrap();
    let n = phases.len();
    assert!(n >= 2);
    assert_eq!(phases[n - 2].0, Phase::Committing);
    assert_eq!(phases[n - 1], (Phase::Done, size as u64));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qcow2_image_is_written_byte_identical() {
    assert_qcow2_written_identically(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qcow2_version_2_image_is_written_byte_identical() {
    assert_qcow2_written_identically(&["-o", "compat=0.10"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_qcow2_images_are_written_byte_identical() {
    assert_qcow2_written_identically(&["-c"]).await;
    assert_qcow2_written_identically(&["-c", "-o", "compression_type=zstd"]).await;
    // 4 KiB clusters: an L2 table per 2 MiB, so the compressed data qemu-img puts before
    // each new L2 table (in the cluster it was filling) comes several times.
    assert_qcow2_written_identically(&["-c", "-o", "cluster_size=4096"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qcow2_with_subclusters_is_written_byte_identical() {
    let fx = Fixture::new(IMAGE, DEVICE);
    let artifact = fx.add_qcow2("disk.qcow2", &["-o", "extended_l2=on,cluster_size=16384"]);
    // Zero 4 KiB inside each data cluster, as a guest would: with subclusters, QEMU marks
    // those subclusters zero and leaves the old data in the file under them.
    let mut image = fx.image.clone();
    image.resize(IMAGE.next_multiple_of(512), 0);
    let path = fx.dir.path("www/disk.qcow2");
    let mut zeroed = 0;
    for cluster in (0..IMAGE / 16384).map(|c| c * 16384) {
        let part = &mut image[cluster + 4096..cluster + 8192];
        if part.iter().all(|b| *b == 0) {
            continue;
        }
        part.fill(0);
        let command = format!("write -z {} 4096", cluster + 4096);
        qemu_io(&path, &command);
        zeroed += 1;
    }
    assert!(zeroed > 10);
    let after = fs::read(&path).unwrap();
    assert_eq!(after.len(), artifact.len(), "zeroing allocated nothing");
    assert_artifact_written_identically(
        &fx.server,
        "disk.qcow2",
        &after,
        ImageFormat::Qcow2,
        &fx.device,
        &image,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_os_as_compressed_qcow2_is_written_byte_identical() {
    require_root();
    let dir = TempDir::new();
    let raw = dir.path("test-os.raw");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/boot/test-os.sh");
    let out = Command::new(&script).arg(&raw).output().unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let image = fs::read(&raw).unwrap();
    fs::create_dir(dir.path("www")).unwrap();
    let qcow2 = dir.path("www/test-os.qcow2");
    qemu_img_convert(&raw, &qcow2, &["-c"]);
    let artifact = fs::read(&qcow2).unwrap();
    assert!(
        artifact.len() < image.len() / 2,
        "qemu-img -c did not compress"
    );
    let server = HttpServer::serve(&dir.path("www"));
    let device = LoopDevice::new(&dir.path("disk.loop"), image.len() + 8 * MIB);
    assert_artifact_written_identically(
        &server,
        "test-os.qcow2",
        &artifact,
        ImageFormat::Qcow2,
        &device,
        &image,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qcow2_with_a_bad_checksum_never_writes_the_first_mib() {
    let fx = Fixture::new(IMAGE, DEVICE);
    fx.add_qcow2("disk.qcow2", &["-c"]);
    assert_eq!(
        refusal(
            fx.server.url("disk.qcow2"),
            checksum_of(b"some other image"),
            ImageFormat::Qcow2,
            &fx.device
        )
        .await,
        "ChecksumMismatch"
    );
    // The rest of the disk was written as it streamed: only the head was held back.
    assert!(fx.device.read(IMAGE)[MIB..] == fx.image[MIB..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_qcow2_is_refused_as_corrupt() {
    let fx = Fixture::new(IMAGE, DEVICE);
    let artifact = fx.add_qcow2("disk.qcow2", &[]);
    let cut = &artifact[..artifact.len() * 2 / 3];
    fs::write(fx.dir.path("www/cut.qcow2"), cut).unwrap();
    // The checksum matches what is served: only the qcow2 reader can tell.
    assert_eq!(
        refusal(
            fx.server.url("cut.qcow2"),
            checksum_of(cut),
            ImageFormat::Qcow2,
            &fx.device
        )
        .await,
        "DecompressFailed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qcow2_that_is_not_stand_alone_is_refused_before_writing() {
    let fx = Fixture::new(IMAGE, DEVICE);
    fx.add_qcow2("base.qcow2", &[]);
    let www = fx.dir.path("www");
    let (base, overlay, luks) = (
        www.join("base.qcow2"),
        www.join("overlay.qcow2"),
        www.join("luks.qcow2"),
    );
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "qcow2",
        "-b",
        base.to_str().unwrap(),
        overlay.to_str().unwrap(),
    ]);
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "--object",
        "secret,id=sec0,data=groundwork",
        "-o",
        "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10",
        luks.to_str().unwrap(),
        "8M",
    ]);
    for (file, what) in [
        ("overlay.qcow2", "backing file"),
        ("luks.qcow2", "encryption (LUKS)"),
    ] {
        let artifact = fs::read(www.join(file)).unwrap();
        let err = write(
            fx.server.url(file),
            checksum_of(&artifact),
            ImageFormat::Qcow2,
            fx.device.path(),
            &options(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.reason(), FailureReason::UnsupportedFormat, "{err}");
        assert!(err.to_string().contains(what), "{err}");
        assert!(
            fx.device.read(DEVICE) == pattern(DEVICE),
            "a refused image was written"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qcow2_larger_than_the_device_is_refused_before_writing() {
    let fx = Fixture::new(MIB, DEVICE);
    let big = fx.dir.path("www/big.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", big.to_str().unwrap(), "1G"]);
    let artifact = fs::read(&big).unwrap();
    let err = write(
        fx.server.url("big.qcow2"),
        checksum_of(&artifact),
        ImageFormat::Qcow2,
        fx.device.path(),
        &options(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, WriteError::ImageTooLarge { device_size, image_size }
            if device_size == DEVICE as u64 && image_size == 1 << 30),
        "{err}"
    );
    assert!(
        fx.device.read(DEVICE) == pattern(DEVICE),
        "a refused device was written"
    );
}
