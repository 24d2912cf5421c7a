//! Network namespaces, bridges, taps and the real processes of the boot tests (QEMU through
//! an IPMI BMC simulator, busybox udhcpc, ISC dhcrelay, dnsmasq sending router adverts).
//! Everything is named `gwb<pid><n>…`, and removed in `Drop` by PID and by name, also when a
//! test panics. Missing binaries or a non-root user fail the test.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Runs a command, panicking with its output when it fails.
pub fn run(cmd: &mut Command) -> String {
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
    run(Command::new("ip").args(args));
}

/// Panics unless `name` is an executable on PATH or in /usr/sbin.
pub fn require(name: &str) -> PathBuf {
    let dirs = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("required binary `{name}` not found: run hack/deps/boot.sh"))
}

/// A lab of namespaces and processes, torn down on drop.
pub struct NetLab {
    id: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    pidfiles: Vec<PathBuf>,
    /// Scratch directory (logs, key, artifacts); removed on drop unless the test failed.
    pub dir: PathBuf,
    /// The address the IPMI BMC simulators listen on (127.0.0.1 unless a test's controllers run
    /// in another network namespace).
    pub bmc_address: String,
}

impl NetLab {
    /// A new, empty lab. Panics unless root with `ip` present.
    pub fn new() -> Self {
        let uid = run(Command::new("id").arg("-u"));
        assert_eq!(
            uid.trim(),
            "0",
            "the boot tests need root (network namespaces)"
        );
        require("ip");
        let id = format!(
            "gwb{}{}",
            std::process::id() % 100_000,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(&id);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            id,
            namespaces: Vec::new(),
            children: Vec::new(),
            pidfiles: Vec::new(),
            dir,
            bmc_address: "127.0.0.1".into(),
        }
    }

    /// Creates a namespace (loopback up) and returns its name.
    pub fn netns(&mut self, role: &str) -> String {
        let name = format!("{}-{role}", self.id);
        ip(&["netns", "add", &name]);
        self.namespaces.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// A bridge in `ns` with `cidr` (e.g. `10.61.1.2/24`) and an IPv6 address, up.
    pub fn bridge(&self, ns: &str, name: &str, cidr: &str) {
        ip(&["-n", ns, "link", "add", name, "type", "bridge"]);
        ip(&["-n", ns, "addr", "add", cidr, "dev", name]);
        ip(&["-n", ns, "link", "set", name, "up"]);
    }

    /// A tap device in `ns` attached to `bridge`.
    pub fn tap(&self, ns: &str, bridge: &str, name: &str) {
        ip(&["-n", ns, "tuntap", "add", "dev", name, "mode", "tap"]);
        ip(&["-n", ns, "link", "set", name, "master", bridge, "up"]);
    }

    /// A veth pair: `a` in `ns_a` (attached to `bridge_a` if given, else addressed with
    /// `addr_a`), `b` in `ns_b` with MAC `mac_b` and address `addr_b` (both optional).
    #[allow(clippy::too_many_arguments)]
    pub fn veth(
        &self,
        ns_a: &str,
        a: &str,
        bridge_a: Option<&str>,
        addr_a: Option<&str>,
        ns_b: &str,
        b: &str,
        mac_b: Option<&str>,
        addr_b: Option<&str>,
    ) {
        ip(&[
            "-n", ns_a, "link", "add", a, "type", "veth", "peer", "name", b, "netns", ns_b,
        ]);
        if let Some(br) = bridge_a {
            ip(&["-n", ns_a, "link", "set", a, "master", br]);
        }
        if let Some(addr) = addr_a {
            ip(&["-n", ns_a, "addr", "add", addr, "dev", a]);
        }
        if let Some(mac) = mac_b {
            ip(&["-n", ns_b, "link", "set", b, "address", mac]);
        }
        if let Some(addr) = addr_b {
            ip(&["-n", ns_b, "addr", "add", addr, "dev", b]);
        }
        ip(&["-n", ns_a, "link", "set", a, "up"]);
        ip(&["-n", ns_b, "link", "set", b, "up"]);
    }

    /// Starts a long-running process (killed by PID on drop), output to `<dir>/<log>`.
    pub fn spawn(&mut self, cmd: &mut Command, log: &str) -> u32 {
        let out = std::fs::File::create(self.dir.join(log)).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Kills one spawned process by PID (e.g. to restart it).
    pub fn kill(&mut self, pid: u32) {
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            let mut c = self.children.remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A QEMU pidfile to kill on drop (VMs started by the BMC simulator daemonize).
    pub fn pidfile(&mut self, name: &str) -> PathBuf {
        let p = self.dir.join(format!("{name}.pid"));
        self.pidfiles.push(p.clone());
        p
    }

    /// dnsmasq sending IPv6 router adverts only (no DHCP): iPXE otherwise waits ~13 s for
    /// IPv6 autoconfiguration on every boot (LABS.md section 4).
    pub fn router_adverts(&mut self, ns: &str, bridge: &str, prefix: &str) {
        let dnsmasq = require("dnsmasq");
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{prefix}1/64"),
            "dev",
            bridge,
            "nodad",
        ]);
        let pidfile = self.dir.join(format!("ra-{bridge}.pid"));
        self.spawn(
            Command::new("ip")
                .args(["netns", "exec", ns])
                .arg(dnsmasq)
                .args([
                    "-k",
                    "--port=0",
                    "--no-resolv",
                    "--no-hosts",
                    &format!("--interface={bridge}"),
                    "--bind-interfaces",
                    "--enable-ra",
                    &format!("--dhcp-range={prefix},ra-only,64"),
                    &format!("--pid-file={}", pidfile.display()),
                ]),
            &format!("ra-{bridge}.log"),
        );
    }

    /// busybox udhcpc on `iface` in `ns`: the address it was offered and acknowledged, or None
    /// when no server answered within ~3 s.
    pub fn udhcpc(&self, ns: &str, iface: &str) -> Option<Ipv4Addr> {
        let script = self.dir.join("udhcpc.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\n[ \"$1\" = bound ] && echo \"LEASE $ip\"\nexit 0\n",
        )
        .unwrap();
        run(Command::new("chmod").arg("+x").arg(&script));
        let out = Command::new("ip")
            .args([
                "netns", "exec", ns, "busybox", "udhcpc", "-f", "-q", "-n", "-t", "3", "-T", "1",
            ])
            .args(["-i", iface, "-s"])
            .arg(&script)
            .output()
            .expect("busybox udhcpc");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("LEASE "))
            .map(|a| a.trim().parse().unwrap())
    }

    /// The test ramdisk (kernel + initrd) built by hack/boot/ramdisk.sh into `<dir>/artifacts`.
    pub fn ramdisk(&self) -> PathBuf {
        let out = self.dir.join("artifacts");
        run(Command::new(crate::repo_root().join("hack/boot/ramdisk.sh")).arg(&out));
        assert!(out.join("vmlinuz").exists() && out.join("initrd.img").exists());
        out
    }

    /// A fresh boot token key file.
    pub fn token_key(&self) -> PathBuf {
        let p = self.dir.join("token.key");
        let key: String = (0..48)
            .map(|i| char::from(b'a' + ((std::process::id() as usize * 7 + i * 13) % 26) as u8))
            .collect();
        std::fs::write(&p, key).unwrap();
        p
    }

    /// An IPMI BMC simulator on [`Self::bmc_address`]:`port` whose power-on starts a QEMU VM with `mac` on
    /// `tap` in `ns` (firmware from the boot mode the controller sets), serial log
    /// `<dir>/<name>.serial`.
    pub fn vm_bmc(&mut self, name: &str, port: u16, ns: &str, tap: &str, mac: &str) -> PathBuf {
        self.vm_bmc_with_disk(name, port, ns, tap, mac, None)
    }

    /// Like [`Self::vm_bmc`], with a virtual disk: the BMC's one-time boot override picks
    /// network (`pxe`) or disk; without one the disk boots first.
    pub fn vm_bmc_with_disk(
        &mut self,
        name: &str,
        port: u16,
        ns: &str,
        tap: &str,
        mac: &str,
        disk: Option<&Path>,
    ) -> PathBuf {
        self.vm_bmc_sized(name, port, ns, tap, mac, disk, None)
    }

    /// Like [`Self::vm_bmc_with_disk`], with `memory_mib` of memory (hack/boot/vm.sh's default
    /// otherwise).
    #[allow(clippy::too_many_arguments)]
    pub fn vm_bmc_sized(
        &mut self,
        name: &str,
        port: u16,
        ns: &str,
        tap: &str,
        mac: &str,
        disk: Option<&Path>,
        memory_mib: Option<u32>,
    ) -> PathBuf {
        let vm = crate::repo_root().join("hack/boot/vm.sh");
        let pidfile = self.pidfile(name);
        let serial = self.dir.join(format!("{name}.serial"));
        let state = self.dir.join(name);
        let disk = disk
            .map(|d| format!(" --disk {}", d.display()))
            .unwrap_or_default()
            + &memory_mib
                .map(|m| format!(" --memory {m}"))
                .unwrap_or_default();
        let command = format!(
            "fw=bios; [ \"$GW_EFI\" = 1 ] && fw=uefi; boot=default; [ \"$GW_BOOTDEV\" = pxe ] && boot=net; [ \"$GW_BOOTDEV\" = disk ] && boot=disk; exec {} --name {name} --mac {mac} --tap {tap} --firmware $fw --boot $boot --serial {} --pidfile {} --netns {ns} --state-dir {}{disk}",
            vm.display(),
            serial.display(),
            pidfile.display(),
            state.display()
        );
        self.spawn(
            Command::new("python3")
                .arg(crate::repo_root().join("hack/bmc/ipmi_sim.py"))
                .args(["--user", "admin", "--password", "lab-password", "--port"])
                .arg(port.to_string())
                .args(["--address", &self.bmc_address])
                .arg("--vm-command")
                .arg(command),
            &format!("{name}-bmc.log"),
        );
        serial
    }

    /// The scratch directory (removed on drop).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Prints the logs in the scratch directory (for a failing test).
    pub fn dump_logs(&self) {
        dump_logs_of(&self.dir);
    }
}

/// Prints the last 40 lines of every `.log` and `.serial` file in `dir` (not below it).
pub fn dump_logs_of(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        // The audit log is one JSON document per request: not a tail anyone reads.
        let is_log = p.extension().is_some_and(|x| x == "log" || x == "serial")
            && p.file_name().is_some_and(|n| n != "audit.log");
        if is_log {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("==== {} (last 40 lines)", p.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

impl Default for NetLab {
    fn default() -> Self {
        Self::new()
    }
}

fn kill_pidfile(p: &Path) {
    let Ok(pid) = std::fs::read_to_string(p) else {
        return;
    };
    let pid = pid.trim();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.starts_with("qemu") {
        let _ = Command::new("kill").args(["-9", pid]).status();
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for p in &self.pidfiles {
            kill_pidfile(p);
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A TCP proxy listening on `listen` inside netns `ns` and forwarding to `upstream` (also
/// reached from inside `ns`), sending at most `limit` bytes per second downstream (0 means
/// unlimited; change it at any time): a slow or stalled network in front of a real server.
pub async fn throttled_proxy(
    ns: &str,
    listen: std::net::SocketAddr,
    upstream: std::net::SocketAddr,
) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let path = boot::netns::named(ns);
    let listener = boot::netns::within(Some(&path), move || {
        let l = std::net::TcpListener::bind(listen).unwrap();
        l.set_nonblocking(true).unwrap();
        l
    })
    .unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let limit = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let lim = limit.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut down, _)) = listener.accept().await else {
                return;
            };
            let path = path.clone();
            let lim = lim.clone();
            tokio::spawn(async move {
                let up = tokio::task::spawn_blocking(move || {
                    boot::netns::within(Some(&path), move || std::net::TcpStream::connect(upstream))
                })
                .await;
                let Ok(Ok(Ok(up))) = up else {
                    return;
                };
                if up.set_nonblocking(true).is_err() {
                    return;
                }
                let Ok(up) = tokio::net::TcpStream::from_std(up) else {
                    return;
                };
                let (mut down_r, mut down_w) = down.split();
                let (mut up_r, mut up_w) = tokio::io::split(up);
                let requests = tokio::io::copy(&mut down_r, &mut up_w);
                let replies = async {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let per_second = lim.load(Ordering::Relaxed);
                        let chunk = if per_second == 0 {
                            buf.len()
                        } else {
                            buf.len().min((per_second / 10).max(1) as usize)
                        };
                        let n = match up_r.read(&mut buf[..chunk]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if down_w.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                        if let Some(nanos) = (n as u64)
                            .saturating_mul(1_000_000_000)
                            .checked_div(per_second)
                        {
                            tokio::time::sleep(std::time::Duration::from_nanos(nanos)).await;
                        }
                    }
                };
                tokio::select! {
                    _ = requests => {}
                    () = replies => {}
                }
            });
        }
    });
    limit
}
