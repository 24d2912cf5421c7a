//! Select stage (pure): which Server a GroundworkMachine claims, strictly inside its Machine's
//! failure domain, or why none fits.

use std::collections::BTreeMap;

use crds::provider::HardwareRequirements;
use crds::{Server, ServerState};
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

const GIB: u64 = 1 << 30;

/// What a Machine asks of its Server.
pub struct Request<'a> {
    /// The GroundworkMachine's UID (a Server it already claimed is its Server).
    pub uid: &'a str,
    /// The Machine's failure domain; `None` places it in any Rack of the site.
    pub failure_domain: Option<&'a str>,
    /// Labels the Server must carry.
    pub selector: Option<&'a Selector>,
    /// Hardware minimums.
    pub hardware: Option<&'a HardwareRequirements>,
    /// Servers already claimed by this Machine's peers (same MachineDeployment or MachineSet),
    /// per failure domain: a Machine without a failure domain goes where its peers are fewest.
    pub peers: &'a BTreeMap<String, usize>,
}

/// Why one Server does not fit (counted per reason in the condition message).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Miss {
    /// Claimed by another consumer.
    Claimed,
    /// Not `Available` (the state it is in).
    NotAvailable(String),
    /// Its labels do not match the selector.
    Labels,
    /// Never inspected, so no hardware to compare.
    NotInspected,
    /// Fewer CPUs.
    Cpus(u32),
    /// Less memory (GiB asked).
    Memory(u32),
    /// No disk this large (GiB asked).
    Disk(u32),
    /// Fewer NICs.
    Nics(u32),
}

impl Miss {
    fn describe(&self) -> String {
        match self {
            Self::Claimed => "claimed by another consumer".into(),
            Self::NotAvailable(state) => format!("{state}, not Available"),
            Self::Labels => "not matching serverSelector".into(),
            Self::NotInspected => "not inspected (no hardware inventory)".into(),
            Self::Cpus(n) => format!("with < {n} CPUs"),
            Self::Memory(n) => format!("with < {n} GiB memory"),
            Self::Disk(n) => format!("without a disk ≥ {n} GiB"),
            Self::Nics(n) => format!("with < {n} NICs"),
        }
    }
}

/// Why no Server fits: the message names the failure domain and what was missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoFit {
    /// `failure domain a02: 0 of 3 Servers fit: 2 with < 64 GiB memory, 1 claimed by another consumer`.
    pub message: String,
}

/// The failure domain of each Rack, by Rack name.
pub type Domains = BTreeMap<String, String>;

/// The Server claimed for `request`: the one it already claimed, else the best fit among
/// `servers` in its failure domain — in the domain with the fewest of its peers (which spreads
/// a MachineDeployment without a failure domain across racks), warm (`Standby`: provisioned
/// without a power cycle), inspected, then the smallest
/// that meets the minimums (large machines stay free for large asks), then the one free the
/// longest (a server just released, e.g. fenced after a failure, is not the first picked
/// again), then by name. Servers of
/// other failure domains are never chosen.
pub fn select<'a>(
    request: &Request<'_>,
    servers: &[&'a Server],
    domains: &Domains,
) -> Result<&'a Server, NoFit> {
    if let Some(mine) = servers.iter().find(|s| claimed_by(s, request.uid)) {
        return Ok(mine);
    }
    let in_domain: Vec<&&Server> = servers
        .iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .filter(|s| match request.failure_domain {
            None => true,
            Some(fd) => domain_of(s, domains) == Some(fd),
        })
        .collect();
    let mut misses: BTreeMap<Miss, usize> = BTreeMap::new();
    let mut fits: Vec<&Server> = Vec::new();
    for server in &in_domain {
        match fit(request, server) {
            Ok(()) => fits.push(server),
            Err(miss) => *misses.entry(miss).or_default() += 1,
        }
    }
    fits.sort_by_key(|s| {
        let hw = s.status.as_ref().and_then(|st| st.hardware.as_ref());
        let crowd = domain_of(s, domains)
            .and_then(|d| request.peers.get(d))
            .copied()
            .unwrap_or_default();
        let cold = s.status.as_ref().and_then(|st| st.state) != Some(ServerState::Standby);
        (
            crowd,
            cold,
            hw.is_none(),
            hw.map(|h| h.memory_bytes).unwrap_or_default(),
            hw.map(|h| h.cpu_count).unwrap_or_default(),
            s.status
                .as_ref()
                .and_then(|st| st.state_since.as_ref())
                .map(|t| t.0),
            s.name_any(),
        )
    });
    fits.first().copied().ok_or_else(|| {
        let scope = match request.failure_domain {
            Some(fd) => format!("failure domain {fd}"),
            None => "site".to_string(),
        };
        let why: Vec<String> = misses
            .iter()
            .map(|(miss, n)| format!("{n} {}", miss.describe()))
            .collect();
        let message = if in_domain.is_empty() {
            format!("{scope}: no Servers")
        } else {
            format!(
                "{scope}: 0 of {} Servers fit: {}",
                in_domain.len(),
                why.join(", ")
            )
        };
        NoFit { message }
    })
}

/// Whether `server` is claimed by the consumer with `uid`.
pub fn claimed_by(server: &Server, uid: &str) -> bool {
    server
        .spec
        .consumer_ref
        .as_ref()
        .is_some_and(|c| c.uid == uid)
}

/// The failure domain of the Rack `server` is mounted in.
pub fn domain_of<'d>(server: &Server, domains: &'d Domains) -> Option<&'d str> {
    let rack = server.spec.rack_ref.as_ref()?;
    domains.get(&rack.name).map(String::as_str)
}

fn fit(request: &Request<'_>, server: &Server) -> Result<(), Miss> {
    if server.spec.consumer_ref.is_some() {
        return Err(Miss::Claimed);
    }
    let status = server.status.as_ref();
    let state = status.and_then(|s| s.state).unwrap_or_default();
    if !matches!(state, ServerState::Available | ServerState::Standby)
        || server.spec.image.is_some()
    {
        return Err(Miss::NotAvailable(state.as_str().into()));
    }
    if let Some(selector) = request.selector
        && !selector.matches(server.labels())
    {
        return Err(Miss::Labels);
    }
    let Some(want) = request.hardware else {
        return Ok(());
    };
    let Some(hw) = status.and_then(|s| s.hardware.as_ref()) else {
        return Err(Miss::NotInspected);
    };
    if let Some(n) = want.min_cpus
        && hw.cpu_count < n
    {
        return Err(Miss::Cpus(n));
    }
    if let Some(n) = want.min_memory_gigabytes
        && hw.memory_bytes < u64::from(n) * GIB
    {
        return Err(Miss::Memory(n));
    }
    if let Some(n) = want.min_disk_gigabytes
        && !hw.disks.iter().any(|d| d.size_bytes >= u64::from(n) * GIB)
    {
        return Err(Miss::Disk(n));
    }
    if let Some(n) = want.min_nics
        && hw.nics.len() < n as usize
    {
        return Err(Miss::Nics(n));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::server::{ConsumerRef, Disk, HardwareInventory, RackRef, ServerSpec, ServerStatus};

    fn server(name: &str, rack: &str, state: ServerState, memory_gib: u64) -> Server {
        let mut s = Server::new(
            name,
            ServerSpec {
                rack_ref: Some(RackRef { name: rack.into() }),
                rack_unit: Some(1),
                height_u: 1,
                bmc: None,
                boot_mac_address: None,
                online: false,
                boot_mode: Default::default(),
                image: None,
                root_device_hints: None,
                user_data: None,
                network_data: None,
                cleaning: Default::default(),
                externally_provisioned: false,
                max_power_watts: None,
                standby: None,
                node: None,
                consumer_ref: None,
            },
        );
        s.status = Some(ServerStatus {
            state: Some(state),
            hardware: Some(HardwareInventory {
                cpu_count: 8,
                memory_bytes: memory_gib * GIB,
                disks: vec![Disk {
                    name: "/dev/vda".into(),
                    size_bytes: 100 * GIB,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        });
        s
    }

    fn domains() -> Domains {
        [("a01", "a01"), ("a02", "a02")]
            .into_iter()
            .map(|(r, d)| (r.to_string(), d.to_string()))
            .collect()
    }

    fn request<'a>(fd: Option<&'a str>, hw: Option<&'a HardwareRequirements>) -> Request<'a> {
        Request {
            uid: "m-1",
            failure_domain: fd,
            selector: None,
            hardware: hw,
            peers: &NO_PEERS,
        }
    }

    static NO_PEERS: BTreeMap<String, usize> = BTreeMap::new();

    #[test]
    fn the_server_free_the_longest_goes_first() {
        let since = |s: &mut Server, t: &str| {
            s.status.as_mut().unwrap().state_since = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t.parse().unwrap()),
            );
        };
        let mut just_fenced = server("a01-u01", "a01", ServerState::Available, 64);
        since(&mut just_fenced, "2026-12-05T10:05:00Z");
        let mut idle = server("a01-u02", "a01", ServerState::Available, 64);
        since(&mut idle, "2026-12-05T10:00:00Z");
        let got = select(&request(None, None), &[&just_fenced, &idle], &domains()).unwrap();
        assert_eq!(got.name_any(), "a01-u02");
    }

    #[test]
    fn a_warm_server_goes_before_a_smaller_cold_one() {
        let cold = server("a01-u01", "a01", ServerState::Available, 64);
        let warm = server("a01-u02", "a01", ServerState::Standby, 128);
        let got = select(&request(None, None), &[&cold, &warm], &domains()).unwrap();
        assert_eq!(got.name_any(), "a01-u02");
    }

    #[test]
    fn without_a_failure_domain_goes_where_its_peers_are_fewest() {
        let a = server("a01-u01", "a01", ServerState::Available, 64);
        let b = server("a02-u01", "a02", ServerState::Available, 128);
        // Alone: the smaller server wins, wherever it is.
        assert_eq!(
            select(&request(None, None), &[&a, &b], &domains())
                .unwrap()
                .name_any(),
            "a01-u01"
        );
        // A peer already in a01: a02, though its server is larger.
        let peers = BTreeMap::from([("a01".to_string(), 1)]);
        let req = Request {
            peers: &peers,
            ..request(None, None)
        };
        assert_eq!(
            select(&req, &[&a, &b], &domains()).unwrap().name_any(),
            "a02-u01"
        );
        // Inside a failure domain peers change nothing: a01 is asked for, a01 it is.
        let req = Request {
            peers: &peers,
            ..request(Some("a01"), None)
        };
        assert_eq!(
            select(&req, &[&a, &b], &domains()).unwrap().name_any(),
            "a01-u01"
        );
    }

    #[test]
    fn never_leaves_the_failure_domain() {
        let a = server("a01-u01", "a01", ServerState::Available, 64);
        let b = server("a02-u01", "a02", ServerState::Provisioned, 64);
        let err = select(&request(Some("a02"), None), &[&a, &b], &domains()).unwrap_err();
        assert_eq!(
            err.message,
            "failure domain a02: 0 of 1 Servers fit: 1 Provisioned, not Available"
        );
        let got = select(&request(Some("a01"), None), &[&a, &b], &domains()).unwrap();
        assert_eq!(got.name_any(), "a01-u01");
    }

    #[test]
    fn names_what_was_missing() {
        let want = HardwareRequirements {
            min_memory_gigabytes: Some(64),
            ..Default::default()
        };
        let small = server("a02-u01", "a02", ServerState::Available, 32);
        let small2 = server("a02-u02", "a02", ServerState::Available, 16);
        let mut taken = server("a02-u03", "a02", ServerState::Available, 128);
        taken.spec.consumer_ref = Some(ConsumerRef {
            uid: "other".into(),
            ..Default::default()
        });
        let err = select(
            &request(Some("a02"), Some(&want)),
            &[&small, &small2, &taken],
            &domains(),
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "failure domain a02: 0 of 3 Servers fit: 1 claimed by another consumer, 2 with < 64 GiB memory"
        );
        let none = select(&request(Some("b09"), None), &[&small], &domains()).unwrap_err();
        assert_eq!(none.message, "failure domain b09: no Servers");
    }

    #[test]
    fn prefers_inspected_then_the_smallest_fit() {
        let want = HardwareRequirements {
            min_cpus: Some(4),
            ..Default::default()
        };
        let big = server("a01-u01", "a01", ServerState::Available, 256);
        let fit = server("a01-u02", "a01", ServerState::Available, 64);
        let got = select(&request(None, Some(&want)), &[&big, &fit], &domains()).unwrap();
        assert_eq!(got.name_any(), "a01-u02");
        let mut uninspected = server("a01-u00", "a01", ServerState::Available, 0);
        uninspected.status.as_mut().unwrap().hardware = None;
        let got = select(&request(None, None), &[&uninspected, &big], &domains()).unwrap();
        assert_eq!(got.name_any(), "a01-u01", "an inspected server first");
        let err = select(&request(None, Some(&want)), &[&uninspected], &domains()).unwrap_err();
        assert!(err.message.contains("1 not inspected"), "{}", err.message);
    }

    #[test]
    fn a_server_it_already_claimed_is_its_own() {
        let mut mine = server("a02-u07", "a02", ServerState::Provisioning, 8);
        mine.spec.consumer_ref = Some(ConsumerRef {
            uid: "m-1".into(),
            ..Default::default()
        });
        let other = server("a01-u01", "a01", ServerState::Available, 64);
        let got = select(&request(Some("a01"), None), &[&other, &mine], &domains()).unwrap();
        assert_eq!(got.name_any(), "a02-u07");
    }

    #[test]
    fn selector_and_disks_and_nics() {
        let selector: Selector =
            Selector::from_iter([kube::core::Expression::Equal("class".into(), "gpu".into())]);
        let plain = server("a01-u01", "a01", ServerState::Available, 64);
        let mut req = request(None, None);
        req.selector = Some(&selector);
        let err = select(&req, &[&plain], &domains()).unwrap_err();
        assert!(err.message.contains("1 not matching serverSelector"));
        let want = HardwareRequirements {
            min_disk_gigabytes: Some(200),
            min_nics: Some(1),
            ..Default::default()
        };
        let err = select(&request(None, Some(&want)), &[&plain], &domains()).unwrap_err();
        assert!(
            err.message.contains("without a disk ≥ 200 GiB"),
            "{}",
            err.message
        );
    }
}
