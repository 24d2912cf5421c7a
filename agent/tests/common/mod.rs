//! Helpers shared by the agent's integration tests: root check, temporary directories, loop
//! devices, a Python HTTP server, the fill pattern and checksums.
//!
//! Test code: panicking on an unexpected error is the point.
// Each test binary compiles this module and uses only some of it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use agent::image::Checksum;
use sha2::{Digest, Sha256};

/// One mebibyte.
pub const MIB: usize = 1 << 20;

pub fn require_root() {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    assert_eq!(
        uid, "0",
        "the image writer tests attach loop devices and must run as root"
    );
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "agent-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A loop device over a file pre-filled with a recognisable pattern; detached on drop.
pub struct LoopDevice {
    /// `/dev/loopN`.
    pub name: String,
    backing: PathBuf,
}

/// `losetup -f` picks and claims in two steps; parallel tests take turns.
pub static LOSETUP: Mutex<()> = Mutex::new(());

impl LoopDevice {
    pub fn new(backing: &Path, size: usize) -> Self {
        require_root();
        fs::write(backing, pattern(size)).unwrap();
        let _turn = LOSETUP.lock().unwrap_or_else(|e| e.into_inner());
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(backing)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "losetup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let name = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert!(
            name.starts_with("/dev/loop"),
            "unexpected losetup output {name:?}"
        );
        Self {
            name,
            backing: backing.to_path_buf(),
        }
    }
    pub fn path(&self) -> &Path {
        Path::new(&self.name)
    }
    /// The file behind the device.
    pub fn backing(&self) -> &Path {
        &self.backing
    }
    pub fn read(&self, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        fs::File::open(&self.name)
            .unwrap()
            .read_exact(&mut buf)
            .unwrap();
        buf
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.name]).status();
    }
}

/// `python3 -m http.server` on 127.0.0.1 (port chosen by the kernel), serving `dir`.
pub struct HttpServer {
    child: Child,
    /// The port it listens on.
    pub port: u16,
}

impl HttpServer {
    pub fn serve(dir: &Path) -> Self {
        let mut child = Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected http.server banner {line:?}"));
        Self { child, port }
    }
    pub fn url(&self, file: &str) -> String {
        format!("http://127.0.0.1:{}/{file}", self.port)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the loop files hold before a test: every sector filled with its own non-zero byte.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i / 512 % 199) as u8 + 17).collect()
}

pub fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn checksum_of(data: &[u8]) -> Checksum {
    format!("sha256:{}", sha256(data)).parse().unwrap()
}

/// Runs `tool args`, failing the test with a clear message when it is not installed.
pub fn tool(tool: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool} is needed for this test: {e}"));
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        std::io::Write::write_all(&mut input, text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// `blkid -p -O offset device`: the low-level probe's output at a byte offset.
pub fn blkid_at(device: &Path, offset: u64) -> String {
    let out = tool(
        "blkid",
        &["-p", "-O", &offset.to_string(), device.to_str().unwrap()],
        None,
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
