//! Session status parsed from BIRD replies, and pure diagnosis of it.

use std::net::IpAddr;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::reply::Reply;

/// BGP finite state machine state, as BIRD reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BgpState {
    /// Idle (also BIRD's transient `Close`).
    Idle,
    /// Trying to open a TCP connection.
    Connect,
    /// Waiting for the neighbor to connect / retrying.
    Active,
    /// OPEN sent.
    OpenSent,
    /// OPEN received, waiting for KEEPALIVE.
    OpenConfirm,
    /// Up.
    Established,
    /// The protocol is down (disabled, or shut down by a limit or an error).
    Down,
}

impl BgpState {
    /// Parses BIRD's state name.
    pub fn parse(s: &str) -> Option<BgpState> {
        Some(match s.trim() {
            "Idle" | "Close" => BgpState::Idle,
            "Connect" => BgpState::Connect,
            "Active" => BgpState::Active,
            "OpenSent" => BgpState::OpenSent,
            "OpenConfirm" => BgpState::OpenConfirm,
            "Established" => BgpState::Established,
            "Down" => BgpState::Down,
            _ => return None,
        })
    }
}

/// BFD session state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BfdState {
    /// Administratively down.
    AdminDown,
    /// Down.
    Down,
    /// Initializing.
    Init,
    /// Up.
    Up,
}

impl BfdState {
    /// Parses BIRD's BFD state name.
    pub fn parse(s: &str) -> Option<BfdState> {
        Some(match s.trim() {
            "AdminDown" => BfdState::AdminDown,
            "Down" => BfdState::Down,
            "Init" => BfdState::Init,
            "Up" => BfdState::Up,
            _ => return None,
        })
    }
}

/// One BFD session row of `show bfd sessions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BfdSession {
    /// Neighbor address.
    pub address: IpAddr,
    /// Interface name.
    pub interface: String,
    /// State.
    pub state: BfdState,
    /// When it entered this state.
    pub since: Option<Timestamp>,
}

/// Route counters and state of one channel of a BGP protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChannelStatus {
    /// `ipv4` or `ipv6`.
    pub family: String,
    /// Channel state (`UP`, `DOWN`, ...).
    pub state: String,
    /// Routes accepted by the import filter.
    pub imported: u64,
    /// Routes exported to the neighbor.
    pub exported: u64,
    /// Imported routes that are the best ones.
    pub preferred: u64,
    /// The configured import limit, if any.
    pub import_limit: Option<u64>,
    /// Whether the import limit was hit.
    pub import_limit_hit: bool,
}

/// Observed status of one BGP protocol (one family of one link).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionStatus {
    /// BIRD protocol name.
    pub protocol: String,
    /// BIRD protocol state column (`up`, `start`, `down`, ...).
    pub proto_state: String,
    /// BGP state.
    pub state: BgpState,
    /// When the protocol entered its current state (for an established
    /// session: established since). A timestamp, never a ticking uptime.
    pub since: Option<Timestamp>,
    /// The info column (e.g. `Established`, `Active Socket: Connection refused`).
    pub info: String,
    /// BIRD's last error for this protocol, if any.
    pub last_error: Option<String>,
    /// Neighbor address.
    pub neighbor: Option<IpAddr>,
    /// Per-channel counters.
    pub channels: Vec<ChannelStatus>,
    /// BFD session state, when BFD runs for this neighbor.
    pub bfd: Option<BfdState>,
}

impl SessionStatus {
    /// True when established.
    pub fn is_established(&self) -> bool {
        self.state == BgpState::Established
    }

    /// True when any channel's import limit was hit.
    pub fn import_limit_hit(&self) -> bool {
        self.channels.iter().any(|c| c.import_limit_hit)
            || self
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("limit exceeded"))
            || self.info.contains("limit exceeded")
    }
}

/// Parses BIRD timestamps rendered with [`crate::render::BIRD_TIME_FORMAT`].
pub fn parse_bird_time(s: &str) -> Option<Timestamp> {
    jiff::fmt::strtime::parse("%Y-%m-%dT%H:%M:%S%.f%z", s.trim())
        .ok()?
        .to_timestamp()
        .ok()
}

/// Errors parsing a `show protocols all` reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StatusParseError {
    /// No protocol row (1002) in the reply.
    #[error("no protocol row in reply")]
    NoProtocolRow,
    /// The row was not a BGP protocol.
    #[error("protocol {0} is not a BGP protocol")]
    NotBgp(String),
}

/// Parses the reply of `show protocols all "<name>"` for one BGP protocol.
pub fn parse_protocol_status(reply: &Reply) -> Result<SessionStatus, StatusParseError> {
    let row = reply
        .texts(1002)
        .next()
        .ok_or(StatusParseError::NoProtocolRow)?;
    let cols: Vec<&str> = row.split_whitespace().collect();
    let get = |i: usize| cols.get(i).copied().unwrap_or_default().to_string();
    let protocol = get(0);
    if get(1) != "BGP" {
        return Err(StatusParseError::NotBgp(protocol));
    }
    let proto_state = get(3);
    let since = parse_bird_time(&get(4));
    let info = cols.get(5..).map(|r| r.join(" ")).unwrap_or_default();

    let mut state = None;
    let mut last_error = None;
    let mut neighbor = None;
    let mut channels: Vec<ChannelStatus> = Vec::new();
    for text in reply.texts(1006) {
        let t = text.trim();
        if let Some(ch) = t.strip_prefix("Channel ") {
            channels.push(ChannelStatus {
                family: ch.trim().to_string(),
                ..Default::default()
            });
            continue;
        }
        let Some((key, value)) = t.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match (key.trim(), channels.last_mut()) {
            ("BGP state", None) => state = BgpState::parse(value),
            ("Neighbor address", None) => neighbor = value.parse().ok(),
            ("Last error", None) => last_error = Some(value.to_string()),
            ("State", Some(c)) => c.state = value.to_string(),
            ("Import limit", Some(c)) => {
                c.import_limit = value.split_whitespace().next().and_then(|n| n.parse().ok());
                c.import_limit_hit = value.contains("[HIT]");
            }
            ("Routes", Some(c)) => {
                for part in value.split(',') {
                    let mut it = part.split_whitespace();
                    let (Some(n), Some(what)) = (it.next(), it.next()) else {
                        continue;
                    };
                    let n: u64 = n.parse().unwrap_or(0);
                    match what {
                        "imported" => c.imported = n,
                        "exported" => c.exported = n,
                        "preferred" => c.preferred = n,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let state = state.unwrap_or(if proto_state == "down" {
        BgpState::Down
    } else {
        BgpState::Idle
    });
    Ok(SessionStatus {
        protocol,
        proto_state,
        state,
        since,
        info,
        last_error,
        neighbor,
        channels,
        bfd: None,
    })
}

/// Parses the reply of `show bfd sessions`.
pub fn parse_bfd_sessions(reply: &Reply) -> Vec<BfdSession> {
    reply
        .texts(1020)
        .filter_map(|t| {
            let cols: Vec<&str> = t.split_whitespace().collect();
            let address: IpAddr = cols.first()?.parse().ok()?;
            Some(BfdSession {
                address,
                interface: (*cols.get(1)?).to_string(),
                state: BfdState::parse(cols.get(2)?)?,
                since: cols.get(3).and_then(|s| parse_bird_time(s)),
            })
        })
        .collect()
}

/// A diagnosis of a session, for the UpstreamLink's conditions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// Stable CamelCase reason.
    pub reason: &'static str,
    /// Human-readable message (never contains secrets).
    pub message: String,
}

/// Turns a status into a reason (pure).
///
/// BIRD gives no direct sign of a TCP-MD5 mismatch: the session just sits in
/// Connect/Active with an unrelated last error. So when a password is set and
/// the session has not been established for longer than `password_grace`
/// (measured from the protocol's `since`), the reason is
/// `WrongPasswordSuspected`.
pub fn diagnose(
    status: &SessionStatus,
    password_set: bool,
    now: Timestamp,
    password_grace: Duration,
) -> Diagnosis {
    let d = |reason, message: String| Diagnosis { reason, message };
    if status.is_established() {
        return d(
            "Established",
            format!("session {} established", status.protocol),
        );
    }
    if status.import_limit_hit() {
        return d(
            "MaxPrefixExceeded",
            format!(
                "session {} shut down: max-prefix limit exceeded",
                status.protocol
            ),
        );
    }
    if status.proto_state == "down"
        && (status.info.contains("Disabled") || status.last_error.is_none())
    {
        return d(
            "AdminDown",
            format!("session {} is disabled", status.protocol),
        );
    }
    let stuck_for = status.since.and_then(|since| {
        let secs = now.duration_since(since).as_secs_f64();
        (secs >= 0.0).then(|| Duration::from_secs_f64(secs))
    });
    if password_set
        && matches!(
            status.state,
            BgpState::Connect | BgpState::Active | BgpState::Idle
        )
        && stuck_for.is_some_and(|s| s > password_grace)
    {
        return d(
            "WrongPasswordSuspected",
            format!(
                "session {} not established for over {} s with a TCP-MD5 password set; check the password on both sides",
                status.protocol,
                password_grace.as_secs()
            ),
        );
    }
    let err = status.last_error.as_deref().unwrap_or("no error reported");
    d(
        "NotEstablished",
        format!("session {} is {:?}: {err}", status.protocol, status.state),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ESTABLISHED: &str = "\
2002-Name       Proto      Table      State  Since         Info
1002-gw_isp1_v4 BGP        ---        up     2026-11-26T01:07:31.862+0000  Established   
1006-  BGP state:          Established
         Neighbor address: 192.0.2.2
         Neighbor AS:      64500
       Channel ipv4
         State:          UP
         Table:          master4
         Import limit:   5
           Action:       disable
         Routes:         2 imported, 1 exported, 1 preferred
     
0000 
";

    const LIMIT_HIT: &str = "\
2002-Name       Proto      Table      State  Since         Info
1002-gw_isp1_v4 BGP        ---        down   2026-11-26T01:07:41.979+0000  Automatic shutdown: Route limit exceeded
1006-  BGP state:          Down
         Neighbor address: 192.0.2.2
         Last error:       Automatic shutdown: Route limit exceeded
       Channel ipv4
         State:          DOWN
         Import limit:   5 [HIT]
           Action:       disable
0000 
";

    const ACTIVE: &str = "\
2002-Name       Proto      Table      State  Since         Info
1002-gw_isp1_v4 BGP        ---        start  2026-11-26T01:07:31.000+0000  Active        Socket: Connection closed
1006-  BGP state:          Active
         Neighbor address: 192.0.2.2
         Last error:       Socket: Connection closed
0000 
";

    fn status(text: &str) -> SessionStatus {
        let (reply, done) = Reply::parse(text);
        assert!(done);
        parse_protocol_status(&reply).unwrap()
    }

    #[test]
    fn parses_established() {
        let s = status(ESTABLISHED);
        assert_eq!(s.state, BgpState::Established);
        assert_eq!(s.since, Some("2026-11-26T01:07:31.862Z".parse().unwrap()));
        assert_eq!(s.neighbor, Some("192.0.2.2".parse().unwrap()));
        assert_eq!(s.channels.len(), 1);
        let c = &s.channels[0];
        assert_eq!((c.imported, c.exported, c.preferred), (2, 1, 1));
        assert_eq!(c.import_limit, Some(5));
        assert!(!c.import_limit_hit);
        assert_eq!(
            diagnose(&s, true, Timestamp::now(), Duration::from_secs(5)).reason,
            "Established"
        );
    }

    #[test]
    fn parses_limit_hit() {
        let s = status(LIMIT_HIT);
        assert_eq!(s.state, BgpState::Down);
        assert!(s.import_limit_hit());
        assert_eq!(
            s.last_error.as_deref(),
            Some("Automatic shutdown: Route limit exceeded")
        );
        assert_eq!(
            diagnose(&s, false, Timestamp::now(), Duration::from_secs(5)).reason,
            "MaxPrefixExceeded"
        );
    }

    #[test]
    fn suspects_wrong_password_only_after_grace() {
        let s = status(ACTIVE);
        let since = s.since.unwrap();
        let grace = Duration::from_secs(10);
        let soon = since + jiff::SignedDuration::from_secs(5);
        let late = since + jiff::SignedDuration::from_secs(11);
        assert_eq!(diagnose(&s, true, soon, grace).reason, "NotEstablished");
        assert_eq!(
            diagnose(&s, true, late, grace).reason,
            "WrongPasswordSuspected"
        );
        assert_eq!(diagnose(&s, false, late, grace).reason, "NotEstablished");
    }

    #[test]
    fn parses_bfd_rows() {
        let text = "1020-gw_bfd:\n     IP address                Interface  State      Since         Interval  Timeout\n     192.0.2.2                 up1        Up         2026-11-26T01:07:31.862+0000    0.100    0.300\n0000 \n";
        let (r, _) = Reply::parse(text);
        let rows = parse_bfd_sessions(&r);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].state, BfdState::Up);
        assert_eq!(rows[0].interface, "up1");
    }

    #[test]
    fn parses_time_format() {
        assert_eq!(
            parse_bird_time("2024-05-01T14:00:00.250+0200"),
            Some("2024-05-01T12:00:00.25Z".parse().unwrap())
        );
        assert_eq!(parse_bird_time("garbage"), None);
    }
}
