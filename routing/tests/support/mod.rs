//! A lab of real BGP speakers in network namespaces, created and torn down by
//! the tests themselves: BIRD as our border router, GoBGP or FRR as the ISP.
//!
//! Everything is uniquely named (`gw-<pid>-<n>-<role>`) and removed in `Drop`
//! (processes killed by PID, namespaces deleted), also when a test panics.
//! Missing binaries or a non-root user make the tests fail loudly.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use routing::{BirdClient, SessionStatus};

#[path = "../../../tests/src/wait.rs"]
pub mod wait;

use wait::eventually_every;

static COUNTER: AtomicUsize = AtomicUsize::new(0);
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The GoBGP API port (each ISP namespace has its own loopback).
pub const GOBGP_PORT: u16 = 50051;

/// Runs lab tests one at a time: they measure timings on a 2-core machine.
/// (A tokio mutex: it is held across awaits and never poisoned by a failed test.)
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let dirs = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain(
            ["/usr/sbin", "/sbin", "/usr/lib/frr"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Path of a required binary; panics with the fix when missing.
pub fn binary(name: &str) -> PathBuf {
    find_binary(name).unwrap_or_else(|| {
        panic!("required binary `{name}` not found: run hack/deps/routing.sh (as root)")
    })
}

/// Panics unless running as root with every binary the lab needs.
pub fn require_lab() {
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "the BGP lab tests need root (network namespaces); run as root"
    );
    for b in [
        "ip", "bird", "birdc", "gobgpd", "gobgp", "nft", "zebra", "bgpd", "bfdd", "vtysh",
    ] {
        binary(b);
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &[&str]) {
    run(Command::new(binary("ip")).args(args));
}

/// How often the lab polls its peers: convergence is timed to the millisecond here.
pub const POLL: Duration = Duration::from_millis(10);

/// One lab: namespaces, processes and a scratch directory, all removed on drop.
pub struct Lab {
    pub id: String,
    pub dir: PathBuf,
    namespaces: Vec<String>,
    children: Vec<(String, Child)>,
}

/// A running BIRD.
#[derive(Clone, Debug)]
pub struct Bird {
    pub ns: String,
    pub socket: PathBuf,
    pub dir: PathBuf,
    pub name: String,
}

/// A running GoBGP.
#[derive(Clone, Debug)]
pub struct Gobgp {
    pub ns: String,
    pub name: String,
}

/// A running FRR (zebra + bfdd + bgpd).
#[derive(Clone, Debug)]
pub struct Frr {
    pub ns: String,
    pub dir: PathBuf,
    pub names: Vec<String>,
}

/// A GoBGP neighbor.
pub struct GobgpNeighbor {
    pub address: IpAddr,
    pub peer_as: u32,
}

impl Lab {
    /// A new, empty lab.
    pub fn new() -> Lab {
        require_lab();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("gw-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&id);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Lab {
            id,
            dir,
            namespaces: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Creates namespace `<id>-<role>` with loopback up.
    pub fn netns(&mut self, role: &str) -> String {
        let ns = format!("{}-{role}", self.id);
        ip(&["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// A veth pair between two namespaces, created directly inside them (no
    /// names in the root namespace), with addresses (IPv6 without DAD).
    pub fn veth(&mut self, a: (&str, &str, &[&str]), b: (&str, &str, &[&str])) {
        ip(&[
            "link", "add", a.1, "netns", a.0, "type", "veth", "peer", "name", b.1, "netns", b.0,
        ]);
        for (ns, ifname, addrs) in [a, b] {
            for addr in addrs {
                if addr.contains(':') {
                    ip(&["-n", ns, "addr", "add", addr, "dev", ifname, "nodad"]);
                } else {
                    ip(&["-n", ns, "addr", "add", addr, "dev", ifname]);
                }
            }
            ip(&["-n", ns, "link", "set", ifname, "up"]);
        }
    }

    fn spawn(&mut self, name: &str, ns: &str, program: &Path, args: &[String]) {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new(binary("ip"))
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        self.children.push((name.to_string(), child));
    }

    /// Kills one named process (SIGKILL), e.g. to simulate an ISP crash.
    pub fn kill(&mut self, name: &str) {
        if let Some(pos) = self.children.iter().position(|(n, _)| n == name) {
            let (_, mut child) = self.children.remove(pos);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts BIRD in `ns` with a minimal configuration; returns once its
    /// control socket answers.
    pub async fn start_bird(&mut self, ns: &str, router_id: &str) -> Bird {
        let dir = self.dir.join(format!("bird-{ns}"));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("bird.conf");
        std::fs::write(
            &conf,
            format!("router id {router_id};\nprotocol device gw_device {{\n  scan time 10;\n}}\n"),
        )
        .unwrap();
        let socket = dir.join("bird.ctl");
        let name = format!("bird-{ns}");
        let args = vec![
            "-f".to_string(),
            "-s".into(),
            socket.display().to_string(),
            "-c".into(),
            conf.display().to_string(),
            "-P".into(),
            dir.join("bird.pid").display().to_string(),
        ];
        self.spawn(&name, ns, &binary("bird"), &args);
        let s = socket.clone();
        eventually_every(POLL, Duration::from_secs(10), "BIRD control socket", || {
            let s = s.clone();
            async move { BirdClient::connect(&s).await.ok().map(|_| ()) }
        })
        .await;
        Bird {
            ns: ns.to_string(),
            socket,
            dir,
            name,
        }
    }

    /// Starts GoBGP in `ns` with the given neighbors; returns once its API answers.
    pub async fn start_gobgp(
        &mut self,
        ns: &str,
        asn: u32,
        router_id: &str,
        neighbors: &[GobgpNeighbor],
    ) -> Gobgp {
        let mut toml =
            format!("[global.config]\n  as = {asn}\n  router-id = \"{router_id}\"\n  port = 179\n");
        for n in neighbors {
            let afi = if n.address.is_ipv4() {
                "ipv4-unicast"
            } else {
                "ipv6-unicast"
            };
            toml.push_str(&format!(
                "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}\n  [neighbors.timers.config]\n    hold-time = 3\n    keepalive-interval = 1\n    connect-retry = 1\n  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{afi}\"\n",
                n.address, n.peer_as
            ));
        }
        let path = self.dir.join(format!("gobgp-{ns}.toml"));
        std::fs::write(&path, toml).unwrap();
        let name = format!("gobgpd-{ns}");
        let args = vec![
            "-f".to_string(),
            path.display().to_string(),
            format!("--api-hosts=127.0.0.1:{GOBGP_PORT}"),
            "--pprof-disable".into(),
            "-p".into(),
        ];
        self.spawn(&name, ns, &binary("gobgpd"), &args);
        let g = Gobgp {
            ns: ns.to_string(),
            name,
        };
        let g2 = g.clone();
        eventually_every(POLL, Duration::from_secs(10), "GoBGP API", || {
            let g = g2.clone();
            async move { g.try_cli(&["global"]).map(|_| ()) }
        })
        .await;
        g
    }

    /// Starts FRR (zebra, bfdd, bgpd) in `ns` and loads `config` with vtysh.
    pub async fn start_frr(&mut self, ns: &str, config: &str) -> Frr {
        let dir = self.dir.join(format!("frr-{ns}"));
        std::fs::create_dir_all(&dir).unwrap();
        run(Command::new("chown").args(["frr:frr"]).arg(&dir));
        let mut names = Vec::new();
        for daemon in ["zebra", "bfdd", "bgpd"] {
            let mut args = vec![
                "-N".to_string(),
                ns.to_string(),
                "-u".into(),
                "frr".into(),
                "-g".into(),
                "frr".into(),
                "-i".into(),
                dir.join(format!("{daemon}.pid")).display().to_string(),
                "-z".into(),
                dir.join("zserv.api").display().to_string(),
                "--vty_socket".into(),
                dir.display().to_string(),
                "-P".into(),
                "0".into(),
            ];
            if daemon == "bfdd" {
                args.push("--bfdctl".into());
                args.push(dir.join("bfdd.sock").display().to_string());
            }
            let name = format!("{daemon}-{ns}");
            self.spawn(&name, ns, &binary(daemon), &args);
            names.push(name);
            let vty = dir.join(format!("{daemon}.vty"));
            eventually_every(
                POLL,
                Duration::from_secs(10),
                &format!("{daemon} vty"),
                || {
                    let vty = vty.clone();
                    async move { vty.exists().then_some(()) }
                },
            )
            .await;
        }
        let frr = Frr {
            ns: ns.to_string(),
            dir,
            names,
        };
        let conf = frr.dir.join("frr.conf");
        std::fs::write(&conf, config).unwrap();
        run(Command::new(binary("vtysh"))
            .arg("--vty_socket")
            .arg(&frr.dir)
            .arg("-f")
            .arg(&conf));
        frr
    }

    /// Drops every packet in and out of `ns` (a silent cut) with nftables.
    pub fn nft_drop_all(&self, ns: &str) {
        let rules = "table inet gwcut {\n  chain in { type filter hook input priority -300; policy drop; }\n  chain out { type filter hook output priority -300; policy drop; }\n}\n";
        let path = self.dir.join(format!("cut-{ns}.nft"));
        std::fs::write(&path, rules).unwrap();
        run(Command::new(binary("ip"))
            .args(["netns", "exec", ns])
            .arg(binary("nft"))
            .arg("-f")
            .arg(&path));
    }

    /// Prints the lab's logs (for failed tests).
    pub fn dump_logs(&self) {
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if e.path().extension().is_some_and(|x| x == "log") {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(20).collect();
                    eprintln!("--- {} (last lines)", e.path().display());
                    for l in tail.iter().rev() {
                        eprintln!("{l}");
                    }
                }
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for (_, child) in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Gobgp {
    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let port = GOBGP_PORT.to_string();
        let out = Command::new(binary("ip"))
            .args(["netns", "exec", &self.ns])
            .arg(binary("gobgp"))
            .args(["-u", "127.0.0.1", "-p", &port])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a gobgp CLI command; panics on failure.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("gobgp {args:?} failed in {}", self.ns))
    }

    /// The ISP's RIB for a family (`ipv4` / `ipv6`).
    pub fn rib(&self, family: &str) -> Vec<RibRoute> {
        let text = self.cli(&["global", "rib", "-a", family, "-j"]);
        parse_gobgp_rib(&text)
    }

    /// The RIB entry for one prefix, if present.
    pub fn route(&self, prefix: &str) -> Option<RibRoute> {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        self.rib(family).into_iter().find(|r| r.prefix == prefix)
    }

    /// Waits until the ISP has `prefix` (polling every [`POLL`]), or panics after `timeout`.
    pub async fn wait_route(&self, prefix: &str, timeout: Duration) -> RibRoute {
        let what = format!("{prefix} at the ISP");
        eventually_every(POLL, timeout, &what, || {
            let r = self.route(prefix);
            async move { r }
        })
        .await
    }

    /// Waits until the ISP no longer has `prefix`, or panics after `timeout`.
    pub async fn wait_gone(&self, prefix: &str, timeout: Duration) {
        let what = format!("{prefix} gone at the ISP");
        eventually_every(POLL, timeout, &what, || {
            let gone = self.route(prefix).is_none();
            async move { gone.then_some(()) }
        })
        .await
    }

    /// Announces a prefix from the ISP.
    pub fn announce(&self, prefix: &str) {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        self.cli(&["global", "rib", "add", prefix, "-a", family]);
    }
}

/// One route in GoBGP's RIB (best path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RibRoute {
    pub prefix: String,
    pub as_path: Vec<u32>,
    /// Standard communities as (high, low).
    pub communities: Vec<(u16, u16)>,
    pub large_communities: Vec<(u32, u32, u32)>,
}

fn parse_gobgp_rib(text: &str) -> Vec<RibRoute> {
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or(serde_json::Value::Null);
    let Some(map) = v.as_object() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (prefix, paths) in map {
        let Some(paths) = paths.as_array() else {
            continue;
        };
        let best = paths.iter().find(|p| p["best"] == true).or(paths.first());
        let Some(best) = best else { continue };
        let mut r = RibRoute {
            prefix: prefix.clone(),
            as_path: vec![],
            communities: vec![],
            large_communities: vec![],
        };
        for attr in best["attrs"].as_array().into_iter().flatten() {
            match attr["type"].as_u64() {
                Some(2) => {
                    for seg in attr["as_paths"].as_array().into_iter().flatten() {
                        for a in seg["asns"].as_array().into_iter().flatten() {
                            r.as_path.push(a.as_u64().unwrap_or(0) as u32);
                        }
                    }
                }
                Some(8) => {
                    for c in attr["communities"].as_array().into_iter().flatten() {
                        let c = c.as_u64().unwrap_or(0) as u32;
                        r.communities.push(((c >> 16) as u16, (c & 0xffff) as u16));
                    }
                }
                Some(32) => {
                    for c in attr["value"].as_array().into_iter().flatten() {
                        let g = |k: &str| c[k].as_u64().unwrap_or(0) as u32;
                        r.large_communities
                            .push((g("ASN"), g("LocalData1"), g("LocalData2")));
                    }
                }
                _ => {}
            }
        }
        out.push(r);
    }
    out
}

impl Frr {
    /// Runs a vtysh command and returns its output.
    pub fn vtysh(&self, cmd: &str) -> String {
        run(Command::new(binary("vtysh"))
            .arg("--vty_socket")
            .arg(&self.dir)
            .args(["-c", cmd]))
    }

    /// FRR's BGP state for a neighbor (`Established`, `Active`, ...).
    pub fn bgp_state(&self, neighbor: &str) -> String {
        let text = self.vtysh(&format!("show bgp neighbors {neighbor} json"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        v[neighbor]["bgpState"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl Bird {
    /// A fresh control-socket client.
    pub async fn client(&self) -> BirdClient {
        BirdClient::connect(&self.socket).await.unwrap()
    }

    /// Status of one protocol.
    pub async fn status(&self, protocol: &str) -> SessionStatus {
        self.client().await.session_status(protocol).await.unwrap()
    }

    /// Waits until `protocol` is Established and returns its status.
    pub async fn wait_established(&self, protocol: &str, timeout: Duration) -> SessionStatus {
        let this = self.clone();
        let p = protocol.to_string();
        eventually_every(POLL, timeout, &format!("{protocol} Established"), || {
            let this = this.clone();
            let p = p.clone();
            async move {
                let mut c = BirdClient::connect(&this.socket).await.ok()?;
                let s = c.session_status(&p).await.ok()?;
                s.is_established().then_some(s)
            }
        })
        .await
    }
}
