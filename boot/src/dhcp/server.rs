//! The DHCP sockets: one per provisioning interface (bound to the device, so the arrival
//! interface is known and replies leave through it), on port 67 and on 4011 for proxyDHCP.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket as StdUdpSocket};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use dhcproto::{Encodable, Encoder};
use ipnet::Ipv4Net;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::client::BootServer;
use super::decide::{Destination, Outcome, answer};
use super::site::{Ingress, Leases, Mac, RackNet, Site};
use crate::metrics::Metrics;

/// Errors setting up the sockets.
#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    /// A socket call failed.
    #[error("DHCP socket on {interface}: {source}")]
    Socket {
        /// Interface name.
        interface: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The interface has no IPv4 address.
    #[error("interface {0} has no IPv4 address")]
    NoAddress(String),
}

/// The site view the sockets answer from; the controller swaps in a new one on every change.
pub type SiteHandle = Arc<RwLock<Arc<Site>>>;

/// A reply the sockets sent, for boot-step reporting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Client MAC.
    pub mac: Mac,
    /// Rack that answered.
    pub rack: String,
    /// `offer` or `ack`.
    pub sent: &'static str,
    /// Address given.
    pub address: Ipv4Addr,
    /// Firmware kind.
    pub firmware: &'static str,
}

/// Sockets bound on one interface (create them inside the interface's namespace).
pub struct Bound {
    interface: String,
    addrs: Vec<Ipv4Net>,
    dhcp: StdUdpSocket,
    proxy: StdUdpSocket,
}

/// Binds ports 67 and 4011 on `interface` and reads its IPv4 addresses.
pub fn bind(interface: &str) -> Result<Bound, DhcpError> {
    let err = |source| DhcpError::Socket {
        interface: interface.to_string(),
        source,
    };
    let addrs = interface_addrs(interface).map_err(err)?;
    if addrs.is_empty() {
        return Err(DhcpError::NoAddress(interface.to_string()));
    }
    let open = |port: u16| -> std::io::Result<StdUdpSocket> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.set_broadcast(true)?;
        s.bind_device(Some(interface.as_bytes()))?;
        s.set_nonblocking(true)?;
        s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())?;
        Ok(s.into())
    };
    Ok(Bound {
        interface: interface.to_string(),
        addrs,
        dhcp: open(67).map_err(err)?,
        proxy: open(4011).map_err(err)?,
    })
}

/// How the sockets describe our boot services.
#[derive(Clone, Debug)]
pub struct Advertise {
    /// Port of the HTTP boot service.
    pub http_port: u16,
    /// Our address for racks reached through relays (none: the arrival interface's address).
    pub address: Option<Ipv4Addr>,
}

/// Answers on every bound interface until the task is dropped.
pub async fn serve(
    bound: Vec<Bound>,
    site: SiteHandle,
    advertise: Advertise,
    metrics: Metrics,
    seen: mpsc::Sender<Seen>,
) -> Result<(), DhcpError> {
    let leases = Arc::new(Mutex::new(Leases::default()));
    let mut tasks = tokio::task::JoinSet::new();
    for b in bound {
        for (std_socket, proxy_port) in [(b.dhcp, false), (b.proxy, true)] {
            let socket = UdpSocket::from_std(std_socket).map_err(|source| DhcpError::Socket {
                interface: b.interface.clone(),
                source,
            })?;
            let ingress = Ingress {
                interface: b.addrs.clone(),
                proxy_port,
            };
            info!(interface = %b.interface, addresses = ?b.addrs, port = if proxy_port { 4011 } else { 67 }, "DHCP listening");
            tasks.spawn(listen(
                socket,
                ingress,
                site.clone(),
                advertise.clone(),
                leases.clone(),
                metrics.clone(),
                seen.clone(),
            ));
        }
    }
    if tasks.is_empty() {
        // No DHCP interface: nothing to answer, but the other boot services keep running.
        return std::future::pending().await;
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn listen(
    socket: UdpSocket,
    ingress: Ingress,
    site: SiteHandle,
    advertise: Advertise,
    leases: Arc<Mutex<Leases>>,
    metrics: Metrics,
    seen: mpsc::Sender<Seen>,
) {
    let mut buf = vec![0u8; 1500];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "DHCP receive failed");
                continue;
            }
        };
        let current = match site.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        };
        // A safety net below the framing check: a decoder panic on some packet nobody has
        // thought of costs that packet, never the socket.
        let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut leases = match leases.lock() {
                Ok(l) => l,
                Err(p) => p.into_inner(),
            };
            let server_for = |rack: &RackNet| server_for(rack, &ingress, &advertise);
            answer(
                &buf[..n],
                &ingress,
                &current,
                server_for,
                &mut leases,
                Instant::now(),
            )
        }));
        let Ok(outcome) = answered else {
            metrics.dropped("", "internal_error");
            warn!(%from, bytes = n, "DHCP packet dropped: answering it panicked");
            continue;
        };
        match outcome {
            Outcome::Dropped {
                rack,
                received,
                reason,
            } => {
                let rack = rack.unwrap_or_default();
                if let Some(r) = received {
                    metrics.dhcp(&rack, r);
                }
                metrics.dropped(&rack, reason.label());
                debug!(%from, rack, reason = reason.label(), "DHCP packet dropped");
            }
            Outcome::Reply {
                rack,
                received,
                sent,
                reply,
                to,
                client,
                address,
                firmware,
            } => {
                metrics.dhcp(&rack, received);
                let mut out = Vec::with_capacity(512);
                if let Err(e) = reply.encode(&mut Encoder::new(&mut out)) {
                    warn!(error = %e, "DHCP reply could not be encoded");
                    continue;
                }
                let dest = match to {
                    Destination::Broadcast => {
                        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::BROADCAST, 68))
                    }
                    Destination::Relay(giaddr) => SocketAddr::V4(SocketAddrV4::new(giaddr, 67)),
                    Destination::Sender => from,
                };
                match socket.send_to(&out, dest).await {
                    Ok(_) => {
                        metrics.dhcp(&rack, sent);
                        debug!(%client, %address, rack, received, sent, firmware, %dest, "DHCP reply");
                        // Never block answering on reporting.
                        let _ = seen.try_send(Seen {
                            mac: client,
                            rack,
                            sent,
                            address,
                            firmware,
                        });
                    }
                    Err(e) => warn!(%dest, error = %e, "DHCP reply not sent"),
                }
            }
        }
    }
}

/// Our address and boot URLs as seen from `rack`: the arrival interface's address in the rack's
/// subnet when directly attached, else the advertised (or first) address.
fn server_for(rack: &RackNet, ingress: &Ingress, advertise: &Advertise) -> Option<BootServer> {
    let address = ingress
        .interface
        .iter()
        .map(Ipv4Net::addr)
        .find(|a| rack.subnet.contains(a))
        .or(advertise.address)
        .or_else(|| ingress.interface.first().map(Ipv4Net::addr))?;
    Some(BootServer {
        address,
        http_base: format!("http://{address}:{}", advertise.http_port),
    })
}

/// IPv4 addresses of `interface`, read with getifaddrs(3) in the caller's namespace.
pub fn interface_addrs(interface: &str) -> std::io::Result<Vec<Ipv4Net>> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below; we only read it.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_netmask.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        // SAFETY: ifa_addr is non-null and points at a sockaddr.
        let family = unsafe { (*ifa.ifa_addr).sa_family };
        if name.to_bytes() != interface.as_bytes() || i32::from(family) != libc::AF_INET {
            continue;
        }
        // SAFETY: AF_INET addresses are sockaddr_in.
        let (addr, mask) = unsafe {
            let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
            let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
            (
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                Ipv4Addr::from(u32::from_be(m.sin_addr.s_addr)),
            )
        };
        if let Ok(net) = Ipv4Net::with_netmask(addr, mask) {
            out.push(net);
        }
    }
    // SAFETY: `head` came from getifaddrs.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}
