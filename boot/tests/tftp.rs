//! The TFTP server against a real client, curl (hack/deps/boot.sh installs it; the tests fail
//! without it), plus a bare client for what curl cannot do: downloads with and without
//! options, block-number wraparound, traversal and unknown names refused, uploads refused,
//! garbage survived, strangers and retransmission, and a listening socket inside a network
//! namespace (needs root, like the other labs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use boot::metrics::{FileLabels, Metrics, ResultLabels};
use boot::tftp::{TftpRoot, serve};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

const UNDI: &str = "undionly.kpxe";
const BIG: &str = "big.bin";
/// 3 MiB: a multiple of 512, so with the default block size the last block is empty.
const BIG_SIZE: usize = 3 << 20;

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

fn unique() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    )
}

/// A temp dir holding the served files, removed on drop.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("gw-tftp-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(Path::new("/usr/lib/ipxe").join(UNDI), dir.join(UNDI))
            .expect("/usr/lib/ipxe/undionly.kpxe is required: run hack/deps/boot.sh");
        let big: Vec<u8> = (0..BIG_SIZE).map(|i| (i * 7 + i / 4099) as u8).collect();
        std::fs::write(dir.join(BIG), big).unwrap();
        Self { dir }
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server task on its own socket, with its own metrics.
struct Server {
    addr: SocketAddr,
    metrics: Metrics,
    files: Files,
    task: JoinHandle<()>,
}

impl Server {
    async fn start() -> Self {
        Self::on(UdpSocket::bind("127.0.0.1:0").await.unwrap())
    }

    fn on(socket: UdpSocket) -> Self {
        let files = Files::new();
        let root = Arc::new(TftpRoot::new(files.dir.clone(), &[UNDI, BIG]).unwrap());
        let metrics = Metrics::default();
        let addr = socket.local_addr().unwrap();
        let task = tokio::spawn(serve(socket, root, metrics.clone()));
        Self {
            addr,
            metrics,
            files,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("tftp://{}/{path}", self.addr)
    }

    fn requests(&self, result: &'static str) -> u64 {
        let labels = ResultLabels { result };
        self.metrics.tftp_requests.get_or_create(&labels).get()
    }

    fn bytes(&self, file: &str) -> u64 {
        let labels = FileLabels {
            file: file.to_string(),
        };
        self.metrics.tftp_bytes.get_or_create(&labels).get()
    }

    /// Waits until `result` reaches `expected` (a transfer is counted when its last ACK
    /// arrives, maybe after curl exits), then checks it is exactly that.
    async fn expect_requests(&self, result: &'static str, expected: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.requests(result) < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(self.requests(result), expected, "{result} requests");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs curl (in `netns` when given), body on stdout.
async fn curl_in(netns: Option<&str>, args: &[&str]) -> Output {
    let mut command = match netns {
        Some(ns) => {
            let mut c = tokio::process::Command::new("ip");
            c.args(["netns", "exec", ns, "curl"]);
            c
        }
        None => tokio::process::Command::new("curl"),
    };
    command
        .args(["--silent", "--show-error", "--max-time", "20"])
        .args(args)
        .output()
        .await
        .expect("curl is required: run hack/deps/boot.sh")
}

async fn curl(args: &[&str]) -> Output {
    curl_in(None, args).await
}

fn assert_downloaded(out: &Output, expected: &[u8], what: &str) {
    assert!(
        out.status.success(),
        "{what}: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == expected, "{what}: the bytes differ");
}

/// curl's exit codes for TFTP errors 1 (not found) and 2 (access violation).
const CURL_TFTP_NOTFOUND: i32 = 68;
const CURL_TFTP_PERM: i32 = 69;

fn request(opcode: u8, fields: &[&str]) -> Vec<u8> {
    let mut packet = vec![0, opcode];
    for field in fields {
        packet.extend_from_slice(field.as_bytes());
        packet.push(0);
    }
    packet
}

fn ack(number: u16) -> Vec<u8> {
    let mut packet = vec![0, 4];
    packet.extend_from_slice(&number.to_be_bytes());
    packet
}

async fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0; 70_000];
    let (len, from) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("no packet within 5 s")
        .unwrap();
    buf.truncate(len);
    (buf, from)
}

async fn nothing_within(socket: &UdpSocket, wait: Duration) {
    let mut buf = vec![0; 2048];
    if let Ok(got) = tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
        let (len, from) = got.unwrap();
        panic!("unexpected packet from {from}: {:?}", &buf[..len]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn downloads_match_the_files_with_and_without_options() {
    let server = Server::start().await;
    let undi = server.files.read(UNDI);
    let big = server.files.read(BIG);
    let cases: [(&[&str], &str, &[u8]); 5] = [
        // curl sends tsize, blksize 512 and timeout: OACK, then DATA.
        (&[], UNDI, &undi),
        (&["--tftp-no-options"], UNDI, &undi),
        (&["--tftp-blksize", "1468"], UNDI, &undi),
        // A multiple of 512: ends with an empty block.
        (&[], BIG, &big),
        (&["--tftp-blksize", "1468"], BIG, &big),
    ];
    for (args, file, expected) in cases {
        let url = server.url(file);
        let out = curl(&[args, &[url.as_str()]].concat()).await;
        assert_downloaded(&out, expected, &format!("{file} {args:?}"));
    }
    server.expect_requests("ok", 5).await;
    assert_eq!(server.bytes(UNDI), 3 * undi.len() as u64);
    assert_eq!(server.bytes(BIG), 2 * big.len() as u64);
    for other in ["not_found", "refused", "bad_request", "timeout"] {
        assert_eq!(server.requests(other), 0, "{other}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn block_numbers_wrap_around_for_big_files() {
    let server = Server::start().await;
    let big = server.files.read(BIG);
    // 3 MiB in 40-byte blocks: 78644 blocks, so numbers go past 65535 and on from 0.
    let out = curl(&["--tftp-blksize", "40", &server.url(BIG)]).await;
    assert_downloaded(&out, &big, "40-byte blocks");
    server.expect_requests("ok", 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn traversal_and_unknown_names_are_refused() {
    let server = Server::start().await;
    // --path-as-is: curl would otherwise resolve the dots itself ("sub/../../x" -> "x").
    let escapes = [
        "../etc/passwd",
        "/etc/passwd",
        "..%2f..%2fetc/passwd",
        "sub/../../x",
        "..%5c..%5cwin.ini",
        "etc/passwd",
    ];
    for path in escapes {
        let out = curl(&["--path-as-is", &server.url(path)]).await;
        assert_eq!(out.status.code(), Some(CURL_TFTP_PERM), "{path}");
        assert!(out.stdout.is_empty(), "{path}");
    }
    let out = curl(&[&server.url("ipxe.efi")]).await;
    assert_eq!(out.status.code(), Some(CURL_TFTP_NOTFOUND));
    assert_eq!(server.requests("refused"), escapes.len() as u64);
    assert_eq!(server.requests("not_found"), 1);
    assert_eq!(server.requests("ok"), 0);
    assert_eq!(server.bytes(UNDI), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_are_refused() {
    let server = Server::start().await;
    let upload = server.files.dir.join("upload.bin");
    std::fs::write(&upload, b"overwrite attempt").unwrap();
    let original = server.files.read(UNDI);
    for target in [UNDI, "new.bin"] {
        let out = curl(&["-T", upload.to_str().unwrap(), &server.url(target)]).await;
        assert_eq!(out.status.code(), Some(CURL_TFTP_PERM), "{target}");
    }
    assert_eq!(server.requests("refused"), 2);
    assert_eq!(server.files.read(UNDI), original);
    assert!(!server.files.dir.join("new.bin").exists());
    // Still serving what it loaded.
    let out = curl(&[&server.url(UNDI)]).await;
    assert_downloaded(&out, &original, "after the uploads");
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_is_dropped_and_the_server_keeps_serving() {
    let server = Server::start().await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0, 9],
        ack(1),
        vec![0, 3, 0, 1, 1, 2, 3],
        b"\0\x01undionly.kpxe".to_vec(),
        b"\0\x01undionly.kpxe\0".to_vec(),
        b"\0\x01\xff\xfe\0octet\0".to_vec(),
        request(1, &[UNDI, "octet", "blksize"]),
        // Longer than the receive buffer: truncated, so unterminated.
        [request(1, &[UNDI, "octet"]), vec![b'x'; 4000], vec![0]].concat(),
    ];
    garbage.push((0..1400u32).map(|i| (i * 31 % 251) as u8).collect());
    for packet in &garbage {
        client.send_to(packet, server.addr).await.unwrap();
    }
    // Sent last: its answer, the only one, proves the garbage before it was dropped silently.
    client
        .send_to(&request(1, &[UNDI, "mail"]), server.addr)
        .await
        .unwrap();
    let (reply, from) = recv(&client).await;
    assert_eq!(from, server.addr);
    assert_eq!(&reply[..4], &[0, 5, 0, 4], "ERROR 4 (illegal operation)");
    assert_eq!(server.requests("bad_request"), garbage.len() as u64 + 1);

    let out = curl(&[&server.url(UNDI)]).await;
    assert_downloaded(&out, &server.files.read(UNDI), "after the garbage");
    server.expect_requests("ok", 1).await;
    nothing_within(&client, Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stranger_gets_unknown_transfer_id_and_the_transfer_goes_on() {
    let server = Server::start().await;
    let undi = server.files.read(UNDI);
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client
        .send_to(&request(1, &[UNDI, "octet"]), server.addr)
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut number = 1u16;
    let (mut packet, tid) = recv(&client).await;
    assert_eq!(tid.ip(), server.addr.ip());
    assert_ne!(tid.port(), server.addr.port(), "a new transfer id");
    loop {
        assert_eq!(
            &packet[..4],
            &[&[0, 3][..], &number.to_be_bytes()].concat()[..]
        );
        received.extend_from_slice(&packet[4..]);
        if number == 1 {
            stranger.send_to(&ack(1), tid).await.unwrap();
            let (error, from) = recv(&stranger).await;
            assert_eq!(from, tid);
            assert_eq!(&error[..4], &[0, 5, 0, 5], "ERROR 5 (unknown transfer id)");
            // Garbage and a stale ACK from the client itself are ignored.
            client.send_to(&[0xff], tid).await.unwrap();
            client.send_to(&ack(0), tid).await.unwrap();
        }
        client.send_to(&ack(number), tid).await.unwrap();
        if packet.len() < 4 + 512 {
            break;
        }
        number += 1;
        let (next, from) = recv(&client).await;
        assert_eq!(from, tid);
        packet = next;
    }
    assert!(received == undi, "the bytes differ");
    server.expect_requests("ok", 1).await;
    nothing_within(&stranger, Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unacknowledged_blocks_are_resent_then_the_transfer_times_out() {
    let server = Server::start().await;
    let undi = server.files.read(UNDI);
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let options = [
        UNDI, "octet", "blksize", "9000", "tsize", "0", "timeout", "1",
    ];
    client
        .send_to(&request(1, &options), server.addr)
        .await
        .unwrap();
    let (oack, tid) = recv(&client).await;
    let size = undi.len().to_string();
    let expected = request(6, &["blksize", "1468", "tsize", &size, "timeout", "1"]);
    assert_eq!(oack, expected, "OACK: blksize capped, tsize, timeout");
    client.send_to(&ack(0), tid).await.unwrap();
    let started = Instant::now();
    let first = [&[0, 3, 0, 1][..], &undi[..1468]].concat();
    for _ in 0..5 {
        let (packet, from) = recv(&client).await;
        assert_eq!(from, tid);
        assert!(packet == first, "DATA 1, 1468 bytes");
    }
    nothing_within(&client, Duration::from_millis(1500)).await;
    server.expect_requests("timeout", 1).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(4),
        "resent too fast: {elapsed:?}"
    );
    // Sent five times, counted once.
    assert_eq!(server.bytes(UNDI), 1468);
    assert_eq!(server.requests("ok"), 0);
}

/// A named network namespace with its loopback up, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Self {
        let uid = std::process::Command::new("id").arg("-u").output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "the namespace test needs root; run as root"
        );
        let ns = Self(format!("gw-tftp-{}", unique()));
        for args in [
            &["netns", "add", &ns.0][..],
            &["-n", &ns.0, "link", "set", "lo", "up"],
        ] {
            let status = std::process::Command::new("ip").args(args).status();
            assert!(status.unwrap().success(), "ip {args:?}");
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn transfers_run_in_the_listening_sockets_namespace() {
    let ns = Netns::new();
    let path = boot::netns::named(&ns.0);
    let socket = boot::netns::within(Some(&path), || std::net::UdpSocket::bind("127.0.0.1:0"))
        .unwrap()
        .unwrap();
    socket.set_nonblocking(true).unwrap();
    let server = Server::on(UdpSocket::from_std(socket).unwrap());
    let out = curl_in(Some(&ns.0), &[&server.url(UNDI)]).await;
    assert_downloaded(&out, &server.files.read(UNDI), "inside the namespace");
    server.expect_requests("ok", 1).await;
}
