//! Read-only TFTP (RFC 1350, with the RFC 2347 option extension: `blksize` from RFC 2348,
//! `tsize` and `timeout` from RFC 2349) for the iPXE binaries. Only an allow-list of plain file
//! names, read into memory at start, is served: no request can name anything else. Each read
//! request gets its own socket (its transfer ID) and task, lock-step DATA/ACK with
//! retransmission on timeout.

use std::collections::HashMap;
use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout_at};
use tracing::{debug, info, warn};

use crate::metrics::{FileLabels, Metrics, ResultLabels};

const RRQ: u16 = 1;
const WRQ: u16 = 2;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;

const NOT_FOUND: u16 = 1;
const ACCESS_VIOLATION: u16 = 2;
const ILLEGAL_OPERATION: u16 = 4;
const UNKNOWN_TID: u16 = 5;

const DEFAULT_BLKSIZE: usize = 512;
/// The smallest block RFC 2348 allows; smaller requests are declined (default size).
const MIN_BLKSIZE: usize = 8;
/// Larger requests get this: the biggest block that fits an Ethernet frame unfragmented
/// (1500 - 20 IP - 8 UDP - 4 TFTP).
const MAX_BLKSIZE: usize = 1468;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Sends of one packet before the transfer is given up.
const TRIES: u32 = 5;
/// Requests are at most 512 bytes (RFC 2347), ACKs and ERRORs smaller.
const RECV_BUF: usize = 2048;

/// Errors building a [`TftpRoot`].
#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    /// An allow-listed name has a directory part or `..`.
    #[error("{0:?} is not a plain file name")]
    NotPlainName(String),
    /// An allow-listed file is missing or unreadable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// An allow-listed name is a directory or a device, not a regular file.
    #[error("{0} is not a regular file")]
    NotAFile(PathBuf),
}

/// The files TFTP serves: an allow-list of plain names in one directory, read at start.
pub struct TftpRoot {
    files: HashMap<String, Arc<[u8]>>,
}

impl TftpRoot {
    /// Reads `files` (plain names, no separators) from `dir`. Each must be a regular file;
    /// symlinks are followed (Debian links `/usr/lib/ipxe/ipxe.efi` to `/boot`).
    pub fn new(dir: PathBuf, files: &[&str]) -> Result<Self, TftpError> {
        let mut map = HashMap::new();
        for &name in files {
            if !is_plain_name(name) {
                return Err(TftpError::NotPlainName(name.to_string()));
            }
            let path = dir.join(name);
            let read_error = |source| TftpError::Read {
                path: path.clone(),
                source,
            };
            // Checked first: reading a FIFO or a device would never end.
            if !std::fs::metadata(&path).map_err(read_error)?.is_file() {
                return Err(TftpError::NotAFile(path));
            }
            let data = std::fs::read(&path).map_err(read_error)?;
            map.insert(name.to_string(), Arc::from(data));
        }
        Ok(Self { files: map })
    }
}

/// Serves read requests arriving on `socket` from `root`, forever. Each transfer runs in its
/// own task on a new socket bound to the listening socket's address, port 0.
pub async fn serve(socket: UdpSocket, root: Arc<TftpRoot>, metrics: Metrics) {
    let local_ip = match socket.local_addr() {
        Ok(addr) => addr.ip(),
        Err(error) => {
            warn!(%error, "TFTP socket has no local address, not serving");
            return;
        }
    };
    let netns = foreign_netns(&socket).map(Arc::new);
    let mut buf = vec![0; RECV_BUF];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(error) => {
                warn!(%error, "TFTP receive failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let request = match parse_request(&buf[..len]) {
            Ok(request) => request,
            Err(error) => {
                debug!(%peer, %error, "malformed TFTP request dropped");
                count(&metrics, "bad_request");
                continue;
            }
        };
        match decide(&root, &request) {
            Err(refusal) => {
                debug!(%peer, file = %request.filename, ?refusal, "TFTP request refused");
                count(&metrics, refusal.result);
                let packet = error_packet(refusal.code, refusal.message);
                if let Err(error) = socket.send_to(&packet, peer).await {
                    debug!(%peer, %error, "cannot send TFTP error");
                }
            }
            Ok((data, params)) => {
                tokio::spawn(run_transfer(
                    local_ip,
                    netns.clone(),
                    peer,
                    request.filename,
                    data,
                    params,
                    metrics.clone(),
                ));
            }
        }
    }
}

fn count(metrics: &Metrics, result: &'static str) {
    metrics
        .tftp_requests
        .get_or_create(&ResultLabels { result })
        .inc();
}

/// Why a transfer ended early.
#[derive(Debug, thiserror::Error)]
enum Failed {
    #[error("no acknowledgement after {TRIES} tries")]
    TimedOut,
    #[error("client sent error {code}: {message}")]
    Aborted { code: u16, message: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

async fn run_transfer(
    local_ip: IpAddr,
    netns: Option<Arc<Netns>>,
    peer: SocketAddr,
    file: String,
    data: Arc<[u8]>,
    params: Negotiated,
    metrics: Metrics,
) {
    let socket = match transfer_socket(local_ip, netns.as_deref()).await {
        Ok(socket) => socket,
        Err(error) => {
            warn!(%peer, %file, %error, "cannot open a TFTP transfer socket");
            return;
        }
    };
    // A clone shares the value; the family's lock is not held across awaits.
    let bytes = metrics
        .tftp_bytes
        .get_or_create(&FileLabels { file: file.clone() })
        .clone();
    match send_file(&socket, peer, &data, &params, &bytes).await {
        Ok(()) => {
            info!(%peer, %file, size = data.len(), blksize = params.blksize, "TFTP transfer done");
            count(&metrics, "ok");
        }
        Err(Failed::TimedOut) => {
            info!(%peer, %file, "TFTP transfer timed out");
            count(&metrics, "timeout");
        }
        // Not a request outcome the metrics know: the client gave up, or the socket broke.
        Err(error) => debug!(%peer, %file, %error, "TFTP transfer ended"),
    }
}

async fn send_file(
    socket: &UdpSocket,
    peer: SocketAddr,
    data: &[u8],
    params: &Negotiated,
    bytes: &Counter,
) -> Result<(), Failed> {
    if !params.accepted.is_empty() {
        let oack = oack_packet(&params.accepted);
        lockstep(socket, peer, &oack, 0, params.timeout).await?;
    }
    let mut n = 1;
    while let Some(payload) = block(data, params.blksize, n) {
        let number = wire_block(n);
        bytes.inc_by(payload.len() as u64);
        lockstep(
            socket,
            peer,
            &data_packet(number, payload),
            number,
            params.timeout,
        )
        .await?;
        n += 1;
    }
    Ok(())
}

/// Sends `packet` until `peer` acknowledges block `number`, resending on timeout. Duplicate
/// and old ACKs are ignored, not answered (answering them is the Sorcerer's Apprentice bug).
async fn lockstep(
    socket: &UdpSocket,
    peer: SocketAddr,
    packet: &[u8],
    number: u16,
    timeout: Duration,
) -> Result<(), Failed> {
    let mut buf = [0; RECV_BUF];
    for _ in 0..TRIES {
        socket.send_to(packet, peer).await?;
        // Fixed per send: packets from strangers must not keep the transfer alive.
        let deadline = Instant::now() + timeout;
        while let Ok(received) = timeout_at(deadline, socket.recv_from(&mut buf)).await {
            let (len, from) = received?;
            if from != peer {
                debug!(%from, %peer, "TFTP packet from an unknown transfer id");
                let error = error_packet(UNKNOWN_TID, "unknown transfer id");
                if let Err(error) = socket.send_to(&error, from).await {
                    debug!(%from, %error, "cannot send TFTP error");
                }
                continue;
            }
            match parse_reply(&buf[..len]) {
                Some(Reply::Ack(acked)) if acked == number => return Ok(()),
                Some(Reply::Ack(_)) => {}
                Some(Reply::Error(code, message)) => return Err(Failed::Aborted { code, message }),
                None => debug!(%peer, "malformed TFTP packet dropped"),
            }
        }
    }
    Err(Failed::TimedOut)
}

/// A network namespace held open, with a path [`crate::netns::within`] can enter.
struct Netns {
    _file: File,
    path: PathBuf,
}

/// The namespace of `socket` when it is not this thread's: the lab opens the listening socket
/// inside one ([`crate::netns`]) and transfer sockets must live there too. None when it is
/// ours, or when the kernel will not tell (SIOCGSKNS needs CAP_NET_ADMIN): then it is ours.
fn foreign_netns(socket: &UdpSocket) -> Option<Netns> {
    // SAFETY: SIOCGSKNS takes no argument and returns a new descriptor, or -1.
    let fd = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGSKNS as _) };
    if fd < 0 {
        let error = std::io::Error::last_os_error();
        debug!(%error, "cannot tell the TFTP socket's namespace, assuming ours");
        return None;
    }
    // SAFETY: `fd` was just opened for us and nothing else owns it.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let theirs = file.metadata().ok()?;
    let ours = std::fs::metadata("/proc/thread-self/ns/net").ok()?;
    if (theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino()) {
        return None;
    }
    let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    Some(Netns { _file: file, path })
}

async fn transfer_socket(ip: IpAddr, netns: Option<&Netns>) -> std::io::Result<UdpSocket> {
    let addr = SocketAddr::new(ip, 0);
    let Some(netns) = netns else {
        return UdpSocket::bind(addr).await;
    };
    let path = netns.path.clone();
    let socket = tokio::task::spawn_blocking(move || {
        crate::netns::within(Some(&path), move || std::net::UdpSocket::bind(addr))
    })
    .await
    .map_err(std::io::Error::other)?
    .map_err(std::io::Error::other)??;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

/// A plain file name: no directory part, nothing that could climb out of the root.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\\', '\0']) && !name.contains("..")
}

/// A read or write request (RFC 1350 section 5, options RFC 2347).
#[derive(Debug, PartialEq, Eq)]
struct Request {
    write: bool,
    filename: String,
    /// Lowercase.
    mode: String,
    /// Names lowercase, in the order sent.
    options: Vec<(String, String)>,
}

/// Why a datagram on the listening socket is not a request.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum Malformed {
    #[error("shorter than an opcode")]
    Short,
    #[error("opcode {0} is not a request")]
    NotRequest(u16),
    #[error("not NUL-terminated")]
    Unterminated,
    #[error("no mode")]
    NoMode,
    #[error("a field is not UTF-8")]
    NotUtf8,
    #[error("option {0:?} has no value")]
    NoValue(String),
}

fn parse_request(packet: &[u8]) -> Result<Request, Malformed> {
    let (opcode, rest) = split_u16(packet).ok_or(Malformed::Short)?;
    let write = match opcode {
        RRQ => false,
        WRQ => true,
        other => return Err(Malformed::NotRequest(other)),
    };
    let body = rest.strip_suffix(&[0]).ok_or(Malformed::Unterminated)?;
    let mut fields = body
        .split(|&b| b == 0)
        .map(|field| std::str::from_utf8(field).map_err(|_| Malformed::NotUtf8));
    let filename = fields.next().ok_or(Malformed::NoMode)??.to_string();
    let mode = fields
        .next()
        .ok_or(Malformed::NoMode)??
        .to_ascii_lowercase();
    let mut options = Vec::new();
    while let Some(name) = fields.next() {
        let name = name?;
        // Some firmware pads its requests with NULs.
        if name.is_empty() {
            break;
        }
        let value = fields
            .next()
            .ok_or_else(|| Malformed::NoValue(name.to_string()))??;
        options.push((name.to_ascii_lowercase(), value.to_string()));
    }
    Ok(Request {
        write,
        filename,
        mode,
        options,
    })
}

/// Why a request is not served: the TFTP error sent back and the metrics outcome.
#[derive(Debug, PartialEq, Eq)]
struct Refusal {
    code: u16,
    message: &'static str,
    result: &'static str,
}

fn decide(root: &TftpRoot, request: &Request) -> Result<(Arc<[u8]>, Negotiated), Refusal> {
    if request.write || !is_plain_name(&request.filename) {
        return Err(Refusal {
            code: ACCESS_VIOLATION,
            message: "access violation",
            result: "refused",
        });
    }
    // netascii is served as octet: the files are binaries.
    if !matches!(request.mode.as_str(), "octet" | "netascii") {
        return Err(Refusal {
            code: ILLEGAL_OPERATION,
            message: "unsupported mode",
            result: "bad_request",
        });
    }
    let data = root.files.get(&request.filename).ok_or(Refusal {
        code: NOT_FOUND,
        message: "file not found",
        result: "not_found",
    })?;
    Ok((data.clone(), negotiate(&request.options, data.len())))
}

/// Transfer parameters after option negotiation.
#[derive(Debug, PartialEq, Eq)]
struct Negotiated {
    blksize: usize,
    timeout: Duration,
    /// The options accepted, with the values answered in the OACK (none: no OACK).
    accepted: Vec<(&'static str, String)>,
}

/// Accepts `blksize` (capped at [`MAX_BLKSIZE`]), `tsize` (answered with `size`) and
/// `timeout` (1 to 255 s); ignores invalid values and anything else (RFC 2347 lets a server
/// decline options by leaving them out of the OACK).
fn negotiate(options: &[(String, String)], size: usize) -> Negotiated {
    let mut params = Negotiated {
        blksize: DEFAULT_BLKSIZE,
        timeout: DEFAULT_TIMEOUT,
        accepted: Vec::new(),
    };
    for (name, value) in options {
        let Ok(value) = value.parse::<u64>() else {
            continue;
        };
        if params.accepted.iter().any(|(seen, _)| seen == name) {
            continue;
        }
        match name.as_str() {
            "blksize" if value >= MIN_BLKSIZE as u64 => {
                params.blksize = value.min(MAX_BLKSIZE as u64) as usize;
                params
                    .accepted
                    .push(("blksize", params.blksize.to_string()));
            }
            "tsize" => params.accepted.push(("tsize", size.to_string())),
            "timeout" if (1..=255).contains(&value) => {
                params.timeout = Duration::from_secs(value);
                params.accepted.push(("timeout", value.to_string()));
            }
            _ => {}
        }
    }
    params
}

/// Payload of block `n` (counted from 1, never wrapping) of `data` cut in `blksize` pieces:
/// the last one is short, empty when the size is a multiple of `blksize`. None past the end.
fn block(data: &[u8], blksize: usize, n: usize) -> Option<&[u8]> {
    let start = n.checked_sub(1)?.checked_mul(blksize)?;
    data.get(start..data.len().min(start.saturating_add(blksize)))
}

/// Block `n`'s number on the wire: 16 bits, so big files wrap from 65535 to 0.
fn wire_block(n: usize) -> u16 {
    (n % 0x1_0000) as u16
}

/// What a client sends during a transfer.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Ack(u16),
    Error(u16, String),
}

fn parse_reply(packet: &[u8]) -> Option<Reply> {
    let (opcode, rest) = split_u16(packet)?;
    let (number, rest) = split_u16(rest)?;
    match opcode {
        ACK => Some(Reply::Ack(number)),
        ERROR => {
            let message = rest.split(|&b| b == 0).next().unwrap_or_default();
            Some(Reply::Error(
                number,
                String::from_utf8_lossy(message).into_owned(),
            ))
        }
        _ => None,
    }
}

fn split_u16(bytes: &[u8]) -> Option<(u16, &[u8])> {
    match bytes {
        [hi, lo, rest @ ..] => Some((u16::from_be_bytes([*hi, *lo]), rest)),
        _ => None,
    }
}

fn data_packet(number: u16, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(4 + payload.len());
    packet.extend_from_slice(&DATA.to_be_bytes());
    packet.extend_from_slice(&number.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

fn error_packet(code: u16, message: &str) -> Vec<u8> {
    let mut packet = Vec::with_capacity(5 + message.len());
    packet.extend_from_slice(&ERROR.to_be_bytes());
    packet.extend_from_slice(&code.to_be_bytes());
    packet.extend_from_slice(message.as_bytes());
    packet.push(0);
    packet
}

fn oack_packet(options: &[(&str, String)]) -> Vec<u8> {
    let mut packet = OACK.to_be_bytes().to_vec();
    for (name, value) in options {
        for field in [name.as_bytes(), value.as_bytes()] {
            packet.extend_from_slice(field);
            packet.push(0);
        }
    }
    packet
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrq(fields: &[&str]) -> Vec<u8> {
        let mut packet = RRQ.to_be_bytes().to_vec();
        for field in fields {
            packet.extend_from_slice(field.as_bytes());
            packet.push(0);
        }
        packet
    }

    fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn request(filename: &str, mode: &str) -> Request {
        Request {
            write: false,
            filename: filename.to_string(),
            mode: mode.to_string(),
            options: Vec::new(),
        }
    }

    fn root() -> TftpRoot {
        let data: Arc<[u8]> = Arc::from(vec![7; 1000]);
        TftpRoot {
            files: HashMap::from([("undionly.kpxe".to_string(), data)]),
        }
    }

    #[test]
    fn requests_parse_with_lowercased_mode_and_option_names() {
        let packet = rrq(&["undionly.kpxe", "OCTET", "TSize", "0", "blksize", "1468"]);
        assert_eq!(
            parse_request(&packet),
            Ok(Request {
                write: false,
                filename: "undionly.kpxe".to_string(),
                mode: "octet".to_string(),
                options: options(&[("tsize", "0"), ("blksize", "1468")]),
            })
        );
        let mut wrq = rrq(&["x", "octet"]);
        wrq[1] = WRQ as u8;
        assert!(parse_request(&wrq).unwrap().write);
        // Trailing NUL padding is tolerated.
        let mut padded = rrq(&["x", "octet"]);
        padded.extend_from_slice(&[0, 0, 0]);
        assert_eq!(parse_request(&padded), Ok(request("x", "octet")));
    }

    #[test]
    fn malformed_requests_are_errors() {
        assert_eq!(parse_request(&[]), Err(Malformed::Short));
        assert_eq!(parse_request(&[0]), Err(Malformed::Short));
        assert_eq!(
            parse_request(&[0, 4, 0, 1]),
            Err(Malformed::NotRequest(ACK))
        );
        assert_eq!(
            parse_request(b"\0\x01x\0octet"),
            Err(Malformed::Unterminated)
        );
        assert_eq!(parse_request(b"\0\x01"), Err(Malformed::Unterminated));
        assert_eq!(parse_request(b"\0\x01x\0"), Err(Malformed::NoMode));
        assert_eq!(
            parse_request(b"\0\x01\xff\0octet\0"),
            Err(Malformed::NotUtf8)
        );
        assert_eq!(
            parse_request(&rrq(&["x", "octet", "blksize"])),
            Err(Malformed::NoValue("blksize".to_string()))
        );
    }

    #[test]
    fn only_plain_names_pass() {
        for ok in ["undionly.kpxe", "ipxe.efi", "a", ".hidden"] {
            assert!(is_plain_name(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../etc/passwd",
            "sub/../../x",
            "sub/x",
            "a\\b",
            "..\\x",
            "a\0b",
            "..",
            "x..y",
        ] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn decisions_refuse_writes_paths_modes_and_unknown_names() {
        let root = root();
        let violation = Err(Refusal {
            code: ACCESS_VIOLATION,
            message: "access violation",
            result: "refused",
        });
        for name in ["/undionly.kpxe", "../undionly.kpxe", "a/undionly.kpxe"] {
            assert_eq!(decide(&root, &request(name, "octet")), violation, "{name}");
        }
        let write = Request {
            write: true,
            ..request("undionly.kpxe", "octet")
        };
        assert_eq!(decide(&root, &write), violation);
        let mail = decide(&root, &request("undionly.kpxe", "mail")).unwrap_err();
        assert_eq!((mail.code, mail.result), (ILLEGAL_OPERATION, "bad_request"));
        let missing = decide(&root, &request("ipxe.efi", "octet")).unwrap_err();
        assert_eq!((missing.code, missing.result), (NOT_FOUND, "not_found"));
        for mode in ["octet", "netascii"] {
            let (data, params) = decide(&root, &request("undionly.kpxe", mode)).unwrap();
            assert_eq!(data.len(), 1000);
            assert!(params.accepted.is_empty());
        }
    }

    #[test]
    fn no_options_means_defaults_and_no_oack() {
        assert_eq!(
            negotiate(&[], 10),
            Negotiated {
                blksize: 512,
                timeout: Duration::from_secs(1),
                accepted: Vec::new(),
            }
        );
    }

    #[test]
    fn options_are_honoured_capped_or_declined() {
        let params = negotiate(
            &options(&[
                ("tsize", "0"),
                ("blksize", "1024"),
                ("timeout", "3"),
                ("windowsize", "4"),
            ]),
            74213,
        );
        assert_eq!(params.blksize, 1024);
        assert_eq!(params.timeout, Duration::from_secs(3));
        assert_eq!(
            params.accepted,
            vec![
                ("tsize", "74213".to_string()),
                ("blksize", "1024".to_string()),
                ("timeout", "3".to_string()),
            ]
        );
        for (asked, got) in [("1468", 1468), ("1469", 1468), ("65464", 1468), ("8", 8)] {
            let params = negotiate(&options(&[("blksize", asked)]), 1);
            assert_eq!(params.blksize, got, "{asked}");
            assert_eq!(params.accepted, vec![("blksize", got.to_string())]);
        }
        for declined in [
            ("blksize", "7"),
            ("blksize", "0"),
            ("blksize", "big"),
            ("blksize", "99999999999999999999999"),
            ("timeout", "0"),
            ("timeout", "256"),
            ("tsize", "-1"),
        ] {
            let params = negotiate(&options(&[declined]), 1);
            assert_eq!(params, negotiate(&[], 1), "{declined:?}");
        }
        // A repeated option counts once, the first wins.
        let params = negotiate(&options(&[("blksize", "600"), ("blksize", "900")]), 1);
        assert_eq!(params.blksize, 600);
        assert_eq!(params.accepted.len(), 1);
    }

    #[test]
    fn blocks_end_short_or_empty() {
        let data = [1u8; 1024];
        assert_eq!(block(&data, 512, 0), None);
        assert_eq!(block(&data, 512, 1).unwrap().len(), 512);
        assert_eq!(block(&data, 512, 2).unwrap().len(), 512);
        assert_eq!(block(&data, 512, 3), Some(&[][..]));
        assert_eq!(block(&data, 512, 4), None);
        assert_eq!(block(&data[..1000], 512, 2).unwrap().len(), 488);
        assert_eq!(block(&data[..1000], 512, 3), None);
        assert_eq!(block(&[], 512, 1), Some(&[][..]));
        assert_eq!(block(&data, 512, usize::MAX), None);
    }

    #[test]
    fn block_numbers_wrap_past_65535() {
        // 65536 full blocks of 8 bytes and a short one: the last two go out as 0 and 1.
        let data = vec![0u8; 65536 * 8 + 3];
        assert_eq!(wire_block(65535), 65535);
        assert_eq!(wire_block(65536), 0);
        assert_eq!(wire_block(65537), 1);
        assert_eq!(block(&data, 8, 65536).unwrap().len(), 8);
        assert_eq!(block(&data, 8, 65537).unwrap().len(), 3);
        assert_eq!(block(&data, 8, 65538), None);
        let sent: usize = (1..=65537).map(|n| block(&data, 8, n).unwrap().len()).sum();
        assert_eq!(sent, data.len());
    }

    #[test]
    fn packets_encode_and_replies_parse() {
        assert_eq!(data_packet(0x0102, b"ab"), b"\0\x03\x01\x02ab");
        assert_eq!(error_packet(2, "no"), b"\0\x05\0\x02no\0");
        assert_eq!(
            oack_packet(&[("tsize", "5".to_string()), ("blksize", "8".to_string())]),
            b"\0\x06tsize\x005\0blksize\x008\0"
        );
        assert_eq!(parse_reply(b"\0\x04\xff\xff"), Some(Reply::Ack(65535)));
        assert_eq!(
            parse_reply(b"\0\x05\0\x08bad option\0"),
            Some(Reply::Error(8, "bad option".to_string()))
        );
        assert_eq!(
            parse_reply(b"\0\x05\0\x00"),
            Some(Reply::Error(0, String::new()))
        );
        assert_eq!(parse_reply(b"\0\x04\0"), None);
        assert_eq!(parse_reply(b"\0\x03\0\x01data"), None);
        assert_eq!(parse_reply(b""), None);
    }

    #[test]
    fn roots_hold_only_plain_existing_regular_files() {
        let dir = std::env::temp_dir().join(format!("gw-tftp-unit-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a.efi"), b"abc").unwrap();
        let root = TftpRoot::new(dir.clone(), &["a.efi"]).unwrap();
        assert_eq!(root.files["a.efi"][..], b"abc"[..]);
        assert!(matches!(
            TftpRoot::new(dir.clone(), &["../a.efi"]),
            Err(TftpError::NotPlainName(_))
        ));
        assert!(matches!(
            TftpRoot::new(dir.clone(), &["missing"]),
            Err(TftpError::Read { .. })
        ));
        assert!(matches!(
            TftpRoot::new(dir.clone(), &["sub"]),
            Err(TftpError::NotAFile(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_socket_in_our_namespace_needs_no_switch() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert!(foreign_netns(&socket).is_none());
    }
}
