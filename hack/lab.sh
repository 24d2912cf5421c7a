#!/usr/bin/env bash
# The local lab: a real control plane with two infrastructure nodes of its own (hack/lab-node.sh:
# containerd + kubelet + kube-proxy on this kernel, network namespaces gw-lab-node1/2 on both
# racks' provisioning networks), Groundwork installed the way users do — `helm install` of the
# chart with the image built here (hack/image/build.sh, imported into the nodes' containerd) —
# so the controller (two replicas, one leads), its boot services (host network), the edge daemon
# and the Cluster API provider run as the chart's Pods; the example site applied, and the site's
# edge: BIRD on border router edge1 (network namespace gw-lab-border) driven by the edge Pod
# through its control socket, peering with two emulated ISPs in their own namespaces:
# ISP A = GoBGP (AS 64500, gw-lab-isp-a), ISP B = FRR bgpd+bfdd+zebra (AS 64501, TCP-MD5 and
# BFD, gw-lab-isp-b). Each ISP announces a default route. Rack a01's provisioning network is a
# bridge in gw-lab-boot where the controller Pods' boot services (DHCP, TFTP, HTTP) answer, and
# server a01-u05 is a real QEMU machine behind its IPMI BMC: the lab asks to inspect it and
# shows it network-booting into the Groundwork ramdisk; then Cluster API (core + kubeadm bootstrap,
# as processes) and the Groundwork provider turn a01-u07 (rack a01) and a02-u01 (rack a02) into
# Kubernetes nodes of the lab's own cluster (node OS with kube-proxy) that run a two-replica app;
# its LoadBalancer Service gets a public address from edge1's pool, which BIRD routes to the nodes
# (the border router has a port on both racks' node networks) and announces to both ISPs, and the
# lab fetches the app from inside ISP B's namespace. Needs root (network namespaces).
#
#   hack/lab.sh up     bring everything up and show the site converging (the README's main command)
#   hack/lab.sh down   stop every process the lab started and remove its state
#   hack/lab.sh status show the site
#
# State lives in .lab/ (kubeconfig, logs, PIDs, BIRD socket, FRR config). Nothing listens outside
# 127.0.0.1 or the lab's own network namespaces.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$GW_ROOT"
root="$GW_ROOT"; lab="$root/.lab"
cmd="${1:-up}"

kc() { kubectl --kubeconfig "$lab/kubeconfig" "$@"; }

# Network namespaces of the lab (fixed names: one lab per machine).
netns_all=(gw-lab-border gw-lab-isp-a gw-lab-isp-b gw-lab-node1 gw-lab-node2 gw-lab-boot)
# Every process the lab starts, stopped in this order by PID (.lab/<name>.pid).
procs=(sushy ipmi ipmi-vm ipmi-vm6 ipmi-vm7 ipmi-a02 www ra-br-prov ra-br-a02 bird gobgpd-isp-a bgpd-isp-b bfdd-isp-b zebra-isp-b)

down() {
  local p
  for p in "${procs[@]}"; do
    [[ -f "$lab/$p.pid" ]] || continue
    gw_stop_pid "$(cat "$lab/$p.pid")"
    rm -f "$lab/$p.pid"
  done
  hack/boot/vm.sh --stop "$lab/a01-u05-vm.pid" 2>/dev/null || true
  hack/boot/vm.sh --stop "$lab/a01-u06-vm.pid" 2>/dev/null || true
  hack/boot/vm.sh --stop "$lab/a01-u07-vm.pid" 2>/dev/null || true
  hack/boot/vm.sh --stop "$lab/a02-u01-vm.pid" 2>/dev/null || true
  for n in 1 2; do hack/lab-node.sh down "$lab/node-$n" 2>/dev/null || true; done
  for ns in "${netns_all[@]}"; do
    if [[ -e "/run/netns/$ns" ]]; then ip netns del "$ns" || true; fi
  done
  hack/controlplane.sh down "$lab/cp" >/dev/null 2>&1 || true
  rm -rf "$lab"
  echo "lab stopped"
}

case "$cmd" in
down) down; exit 0 ;;
status) export PATH="$(hack/k8s-bins/build.sh):$PATH"; kc get groundwork -A; exit 0 ;;
up) ;;
-h | --help) gw_usage 0 ;;
*) gw_usage 2 "unknown command $cmd" ;;
esac

die() {
  if [[ -d "$lab" ]]; then
    # Groundwork's Pods' logs, for the reason (their containers go with `down`).
    mkdir -p "$lab/pods"
    for pod in $(kc -n groundwork-system get pods -o name 2>/dev/null); do
      kc -n groundwork-system logs "$pod" --all-containers >"$lab/pods/${pod#pod/}.log" 2>&1 || true
    done
    gw_log "Pod logs in .lab/pods/; hack/lab.sh down removes what was started"
  fi
  gw_die "$*"
}
# The BGP part needs root and network namespaces: refuse up front, not half-way.
[[ "$(id -u)" == 0 ]] || die "the lab needs root: it creates network namespaces (${netns_all[*]}) for BIRD and the emulated ISPs. Run it as root."
ip netns add gw-lab-probe 2>/dev/null && ip netns del gw-lab-probe \
  || die "cannot create network namespaces here ('ip netns add' failed: no CAP_SYS_ADMIN or no netns support). The BGP lab needs them."
for ns in "${netns_all[@]}"; do
  [[ ! -e "/run/netns/$ns" ]] || die "network namespace $ns exists: a lab is already up (hack/lab.sh down first)"
done
gw_step "installing missing tools"; hack/deps/base.sh; hack/deps/bmc.sh; hack/deps/routing.sh >/dev/null; hack/deps/boot.sh >/dev/null
gw_env  # Go >= 1.26 and the Python virtual environment the deps scripts made sure of
frr_bin=/usr/lib/frr
for b in bird birdc gobgpd gobgp vtysh "$frr_bin/zebra" "$frr_bin/bgpd" "$frr_bin/bfdd"; do
  command -v "$b" >/dev/null || die "$b missing after hack/deps/routing.sh"
done
gw_step "building the control plane binaries (cached under ~/.cache/groundwork)"
export PATH="$(hack/k8s-bins/build.sh):$PATH"
gw_step "building the kubectl plugin, and the Groundwork image without a container engine (static release binaries, OCI archive; cached)"
cargo build -q -p kubectl-groundwork --bin kubectl-groundwork
mkdir -p "$lab"
read -r archive digest image_ref < <(hack/image/build.sh "$lab/image")
[[ -n "${image_ref:-}" ]] || die "hack/image/build.sh failed"
echo "  $image_ref $digest"
gw_step "the racks' networks in gw-lab-boot: a01 = bridge br-prov (provisioning 10.10.0.2/24, node gateway 10.20.0.1/24), a02 = br-a02 (10.11.0.2/24, node gateway 10.21.0.1/24), routed between; taps for the QEMU servers; IPv6 router adverts; this host on a01's node network as 10.20.0.254 (the API server's address for nodes)"
ip netns add gw-lab-boot || die "cannot create network namespace gw-lab-boot"
ip -n gw-lab-boot link set lo up
ip netns exec gw-lab-boot sysctl -qw net.ipv4.ip_forward=1
bridge() { # name provisioning-cidr node-cidr ipv6-prefix
  ip -n gw-lab-boot link add "$1" type bridge
  ip -n gw-lab-boot addr add "$2" dev "$1"
  ip -n gw-lab-boot addr add "$3" dev "$1"
  ip -n gw-lab-boot addr add "${4}1/64" dev "$1" nodad
  ip -n gw-lab-boot link set "$1" up
  # iPXE waits ~13 s for IPv6 autoconfiguration unless a router advertises (LABS.md section 4).
  nohup ip netns exec gw-lab-boot dnsmasq -k --port=0 --no-resolv --no-hosts --interface="$1" \
    --bind-interfaces --enable-ra --dhcp-range="$4,ra-only,64" </dev/null >"$lab/ra-$1.log" 2>&1 &
  echo $! > "$lab/ra-$1.pid"
}
bridge br-prov 10.10.0.2/24 10.20.0.1/24 fd10::
bridge br-a02 10.11.0.2/24 10.21.0.1/24 fd11::
for tap in tap-u05:br-prov tap-u06:br-prov tap-u07:br-prov tap-a02-u01:br-a02; do
  ip -n gw-lab-boot tuntap add dev "${tap%%:*}" mode tap
  ip -n gw-lab-boot link set "${tap%%:*}" master "${tap#*:}" up
done
gw_host_veth gw-lab-boot br-prov gw-lab-host 10.20.0.254/24
ip route add 10.21.0.0/24 via 10.20.0.1
# The emulated BMCs listen on this host's 10.20.0.254 too: the controller Pods reach it from the
# nodes' namespaces (examples/ name 127.0.0.1, which is the Pods' own loopback: rewritten below).
bmc_host=10.20.0.254
gw_step "starting etcd, kube-apiserver (for the nodes on 10.20.0.254), kube-controller-manager, kube-scheduler"
hack/controlplane.sh up "$lab/cp" --cluster --node-address 10.20.0.254
ln -sf "$lab/cp/kubeconfig" "$lab/kubeconfig"
gw_step "two infrastructure nodes for Groundwork's Pods: infra-1 (namespace gw-lab-node1, 10.20.0.3) and infra-2 (gw-lab-node2, 10.20.0.4), each on a01's (interface a01: 10.10.0.3|4) and a02's (a02: 10.11.0.3|4) provisioning networks, labelled and tainted groundwork.dev/infra, the image imported"
for n in 1 2; do
  ns="gw-lab-node$n"
  ip netns add "$ns" || die "cannot create network namespace $ns"
  ip -n "$ns" link set lo up
  for rack in a01:br-prov:10.10 a02:br-a02:10.11; do
    IFS=: read -r ifname br prefix <<<"$rack"
    ip link add "$ifname" netns "$ns" type veth peer name "n$n-$ifname" netns gw-lab-boot
    ip -n gw-lab-boot link set "n$n-$ifname" master "$br" up
    # The provisioning address first: the boot services advertise the interface's first address.
    ip -n "$ns" addr add "$prefix.0.$((n + 2))/24" dev "$ifname"
    ip -n "$ns" link set "$ifname" up
  done
  ip -n "$ns" addr add "10.20.0.$((n + 2))/24" dev a01
  ip -n "$ns" route add default via 10.20.0.1
  hack/lab-node.sh up "$lab/node-$n" --cp "$lab/cp" --name "infra-$n" --netns "$ns" --address "10.20.0.$((n + 2))" \
    --pod-cidr "10.250.$n.0/24" --label groundwork.dev/infra=true --taint groundwork.dev/infra=true:NoSchedule \
    --image "$archive" || die "lab node infra-$n did not come up ($lab/node-$n/logs)"
done
kc create namespace groundwork-system --dry-run=client -o yaml | kc apply -f - >/dev/null
# The site namespace first, so the edge daemon's RoleBinding is scoped to it (least privilege).
kc apply -f examples/00-namespace.yaml >/dev/null
gw_step "building the netboot ramdisk (Debian kernel + busybox, cached) into .lab/boot"
hack/boot/ramdisk.sh "$lab/boot" >/dev/null
gw_step "building the test OS image (boots under BIOS and UEFI, reads its config drive, checks in) and serving it from gw-lab-boot at http://10.10.0.2:8090/"
mkdir -p "$lab/www"
# The node OS image (the cluster's nodes; cached, minutes when cold) builds meanwhile.
hack/node-os/build.sh "$lab/node-os.raw" >"$lab/node-os-build.log" 2>&1 &
node_os_pid=$!
hack/boot/test-os.sh "$lab/test-os.raw" >/dev/null
cp "$lab/test-os.raw.zst" "$lab/www/test-os.raw.zst"
nohup ip netns exec gw-lab-boot python3 -m http.server 8090 --bind 10.10.0.2 --directory "$lab/www" </dev/null >"$lab/www.log" 2>&1 &
echo $! > "$lab/www.pid"
for u in 05 06; do truncate -s 256M "$lab/a01-u$u.disk"; done
for n in a01-u07 a02-u01; do truncate -s 3G "$lab/$n.disk"; done
gw_step "installing Groundwork with helm: 2 controller replicas with boot services on the host network of infra-1/infra-2 (DHCP on a01, a02), the edge daemon for edge1, the Cluster API provider (values: .lab/values.yaml)"
# The edge Pod (UID 65532) writes BIRD's included configuration and talks to its control socket.
mkdir -p "$lab/bird/conf"; chown 65532:65532 "$lab/bird/conf"
cat >"$lab/values.yaml" <<VALUES
image: {repository: "${image_ref%:*}", tag: "${image_ref##*:}", pullPolicy: Never}
replicas: 2
hostNetwork: true
nodeSelector: {groundwork.dev/infra: "true"}
tolerations: [{key: groundwork.dev/infra, operator: Exists, effect: NoSchedule}]
boot:
  enabled: true
  dhcpInterfaces: [a01, a02]
  artifactsHostPath: $lab/boot
edge:
  namespaces: [fra1]
  routers:
    - name: edge1
      namespace: fra1
      nodeSelector: {kubernetes.io/hostname: infra-1}
      birdSocket: $lab/bird/bird.ctl
      configDir: $lab/bird/conf
      birdLogFile: $lab/bird/bird.log
provider:
  enabled: true
  replicas: 2
  nodeSelector: {groundwork.dev/infra: "true"}
  tolerations: [{key: groundwork.dev/infra, operator: Exists, effect: NoSchedule}]
VALUES
KUBECONFIG="$lab/kubeconfig" helm upgrade --install groundwork charts/groundwork -n groundwork-system \
  -f "$lab/values.yaml" --wait --timeout 5m >/dev/null || die "helm install failed (kubectl -n groundwork-system get pods)"
kc -n groundwork-system get pods -o wide | sed 's/^/  /'
gw_step "starting emulated BMCs: Redfish (sushy-tools) on $bmc_host:8000, IPMI (pyghmi) on udp/6230-6234"
mkdir -p "$lab/sushy"
hash="$(python3 -c 'import bcrypt; print(bcrypt.hashpw(b"lab-password", bcrypt.gensalt(4)).decode())')"
echo "admin:$hash" > "$lab/sushy/htpasswd"
cat > "$lab/sushy/emulator.conf" <<CONF
SUSHY_EMULATOR_LISTEN_IP = '$bmc_host'
SUSHY_EMULATOR_LISTEN_PORT = 8000
SUSHY_EMULATOR_FAKE_DRIVER = True
SUSHY_EMULATOR_STATE_DIR = '$lab/sushy/state'
SUSHY_EMULATOR_AUTH_FILE = '$lab/sushy/htpasswd'
SUSHY_EMULATOR_FAKE_SYSTEMS = [
  {'uuid': '6a01a001-0000-4000-8000-000000000001', 'name': 'a01-u01', 'power_state': 'Off', 'nics': [{'mac': '52:54:00:a0:01:01', 'ip': '10.10.0.11'}]},
  {'uuid': '6a01a001-0000-4000-8000-000000000002', 'name': 'a01-u02', 'power_state': 'On', 'nics': [{'mac': '52:54:00:a0:01:02', 'ip': '10.10.0.12'}]},
]
CONF
SUSHY_FAKE_POWER_DELAY=2 nohup python3 hack/bmc/sushy_launcher.py --config "$lab/sushy/emulator.conf" >"$lab/sushy.log" 2>&1 &
echo $! > "$lab/sushy.pid"
nohup python3 hack/bmc/ipmi_sim.py --user admin --password lab-password --address "$bmc_host" --port 6230 >"$lab/ipmi.log" 2>&1 &
echo $! > "$lab/ipmi.pid"
# The BMCs of a01-u05, a01-u06 (256 MiB disks, the test OS) and of a01-u07, a02-u01 (3 GiB disks,
# 1536 MiB of memory: the cluster's nodes) power real QEMU machines (firmware from the boot mode
# they are given; boot device from the BMC's one-time override).
vm_cmd() { # name mac tap memory-MiB
  echo "fw=bios; [ \"\$GW_EFI\" = 1 ] && fw=uefi; boot=default; [ \"\$GW_BOOTDEV\" = pxe ] && boot=net; [ \"\$GW_BOOTDEV\" = disk ] && boot=disk; exec $root/hack/boot/vm.sh --name $1 --mac $2 --tap $3 --memory $4 --firmware \$fw --boot \$boot --disk $lab/$1.disk --serial $lab/$1.serial --pidfile $lab/$1-vm.pid --netns gw-lab-boot --state-dir $lab/vm-$1"
}
for vm in ipmi-vm:6231:a01-u05:52:54:00:a0:01:05:tap-u05:512 ipmi-vm6:6232:a01-u06:52:54:00:a0:01:06:tap-u06:512 \
  ipmi-vm7:6233:a01-u07:52:54:00:a0:01:07:tap-u07:1536 ipmi-a02:6234:a02-u01:52:54:00:a0:02:01:tap-a02-u01:1536; do
  IFS=: read -r log port name m1 m2 m3 m4 m5 m6 tap mem <<<"$vm"
  nohup python3 hack/bmc/ipmi_sim.py --user admin --password lab-password --address "$bmc_host" --port "$port" \
    --vm-command "$(vm_cmd "$name" "$m1:$m2:$m3:$m4:$m5:$m6" "$tap" "$mem")" >"$lab/$log.log" 2>&1 &
  echo $! > "$lab/$log.pid"
done
for _ in $(seq 100); do
  ok=1
  for log in ipmi ipmi-vm ipmi-vm6 ipmi-vm7 ipmi-a02; do grep -q READY "$lab/$log.log" 2>/dev/null || ok=0; done
  ((ok)) && curl -s -o /dev/null "$bmc_host:8000/redfish/v1/" && break
  sleep 0.2
done
gw_step "applying examples/ (BMC addresses 127.0.0.1 -> $bmc_host, where the lab's emulators are)"
for f in examples/*.yaml; do echo ---; cat "$f"; done | sed "s#//127\.0\.0\.1:#//$bmc_host:#" | kc apply -f - >/dev/null
for _ in $(seq 120); do
  ready="$(kc -n fra1 get rack a01 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)"
  powered="$(kc -n fra1 get servers -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="PowerMatchesSpec")].status}{" "}{end}' 2>/dev/null || true)"
  echo "  rack Ready=$ready; servers PowerMatchesSpec: $powered"
  [[ "$ready" == "True" && "$powered" == "True True True True " ]] && break
  sleep 1
done

# --- The edge: border router edge1 and two ISPs, addresses as in examples/40-upstreamlinks.yaml.
#   gw-lab-border eth1 192.0.2.2/30    <-> gw-lab-isp-a toborder 192.0.2.1/30    (GoBGP, AS 64500)
#   gw-lab-border eth2 198.51.100.2/30 <-> gw-lab-isp-b toborder 198.51.100.1/30 (FRR, AS 64501)
gw_step "creating network namespaces gw-lab-border gw-lab-isp-a gw-lab-isp-b joined by veth pairs"
for ns in gw-lab-border gw-lab-isp-a gw-lab-isp-b; do
  ip netns add "$ns" || die "cannot create network namespace $ns"
  ip -n "$ns" link set lo up
done
veth() { # border-if border-addr isp-ns isp-addr
  ip link add "$1" netns gw-lab-border type veth peer name toborder netns "$3"
  ip -n gw-lab-border addr add "$2" dev "$1"; ip -n gw-lab-border link set "$1" up
  ip -n "$3" addr add "$4" dev toborder; ip -n "$3" link set toborder up
}
veth eth1 192.0.2.2/30 gw-lab-isp-a 192.0.2.1/30
veth eth2 198.51.100.2/30 gw-lab-isp-b 198.51.100.1/30
# The path from the border router to the racks' node networks (BorderRouter edge1's
# nodeNetworks): a port on each rack's bridge in gw-lab-boot (the racks' ToR). 10.20.0.5 lies in
# rack a01's reserved range (10.20.0.1-9: .1 ToR, .2 DNS, .3/.4 infra nodes), 10.21.0.5 in a02's
# (the lab's Rack a02 reserves 10.21.0.1-9): the node IPAM never hands them to a server. A Service
# address routed here by BIRD (its kernel protocol exports only the Service routes) reaches the
# node directly; the ToR's default route leads back through the border, so the nodes' replies
# to ISP addresses take it too. Nothing leaves the lab: the border's kernel has no default route.
gw_step "the border router on the racks' node networks: gw-lab-border tor-a01 10.20.0.5/24 on br-prov, tor-a02 10.21.0.5/24 on br-a02, forwarding; the ToR (gw-lab-boot) routes the Internet via the border (default via 10.20.0.5)"
for net in tor-a01:br-prov:10.20.0.5/24 tor-a02:br-a02:10.21.0.5/24; do
  IFS=: read -r ifname br addr <<<"$net"
  ip link add "$ifname" netns gw-lab-border type veth peer name "border-${ifname#tor-}" netns gw-lab-boot \
    || die "cannot create the veth pair $ifname (gw-lab-border) <-> border-${ifname#tor-} (gw-lab-boot)"
  ip -n gw-lab-boot link set "border-${ifname#tor-}" master "$br" up
  ip -n gw-lab-border addr add "$addr" dev "$ifname"
  ip -n gw-lab-border link set "$ifname" up
done
ip netns exec gw-lab-border sysctl -qw net.ipv4.ip_forward=1
ip -n gw-lab-boot route add default via 10.20.0.5 || die "cannot add the ToR's default route via the border (ip -n gw-lab-boot route)"
spawn() { # name netns program args...: runs in the namespace, PID in .lab/<name>.pid
  local name="$1" ns="$2"; shift 2
  nohup ip netns exec "$ns" "$@" </dev/null >"$lab/$name.log" 2>&1 &
  echo $! > "$lab/$name.pid"
}
wait_for() { # what tries command...: polls every 0.2 s
  local what="$1" tries="$2"; shift 2
  for _ in $(seq "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "timed out waiting for $what (logs in .lab/)"
}

gw_step "starting ISP A: GoBGP AS 64500 in gw-lab-isp-a (API 127.0.0.1:50051 inside the namespace), announcing 0.0.0.0/0"
cat > "$lab/gobgp-isp-a.toml" <<TOML
[global.config]
  as = 64500
  router-id = "192.0.2.1"
  port = 179
[[neighbors]]
  [neighbors.config]
    neighbor-address = "192.0.2.2"
    peer-as = 65000
  [neighbors.timers.config]
    hold-time = 9
    keepalive-interval = 3
    connect-retry = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
TOML
spawn gobgpd-isp-a gw-lab-isp-a gobgpd -f "$lab/gobgp-isp-a.toml" --api-hosts=127.0.0.1:50051 --pprof-disable -p
isp_a() { ip netns exec gw-lab-isp-a gobgp -u 127.0.0.1 -p 50051 "$@"; }
wait_for "the GoBGP API" 50 isp_a global
isp_a global rib add 0.0.0.0/0 -a ipv4 >/dev/null

gw_step "starting ISP B: FRR AS 64501 (zebra, bfdd, bgpd) in gw-lab-isp-b with TCP-MD5 and BFD, announcing 0.0.0.0/0"
# The ISP's side of the MD5 password is the site's Secret: both ends agree by construction.
md5="$(kc -n fra1 get secret isp-b-md5 -o jsonpath='{.data.password}' | base64 -d)"
frr="$lab/frr-isp-b"; mkdir -p "$frr"; chown frr:frr "$frr"; chmod 700 "$frr"
for d in zebra bfdd bgpd; do
  extra=(); [[ "$d" == bfdd ]] && extra=(--bfdctl "$frr/bfdd.sock")
  spawn "$d-isp-b" gw-lab-isp-b "$frr_bin/$d" -N gw-lab-isp-b -u frr -g frr -i "$frr/$d.pid" \
    -z "$frr/zserv.api" --vty_socket "$frr" -P 0 "${extra[@]}"
  wait_for "FRR $d" 50 test -S "$frr/$d.vty"
done
(umask 077; cat > "$frr/frr.conf" <<FRR
frr defaults datacenter
hostname isp-b
bfd
 peer 198.51.100.2
  receive-interval 300
  transmit-interval 300
  detect-multiplier 3
 exit
exit
router bgp 64501
 bgp router-id 198.51.100.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 198.51.100.2 remote-as 65000
 neighbor 198.51.100.2 timers 3 9
 neighbor 198.51.100.2 timers connect 1
 neighbor 198.51.100.2 password $md5
 neighbor 198.51.100.2 bfd
 address-family ipv4 unicast
  network 0.0.0.0/0
 exit-address-family
exit
FRR
)
isp_b() { vtysh --vty_socket "$frr" "$@"; }
isp_b -f "$frr/frr.conf" >/dev/null || die "FRR rejected $frr/frr.conf"

gw_step "starting BIRD for edge1 in gw-lab-border (control socket .lab/bird/bird.ctl)"
mkdir -p "$lab/bird/conf"
printf 'router id 192.0.2.2;\nprotocol device gw_device {\n  scan time 10;\n}\n' > "$lab/bird/bird.conf"
spawn bird gw-lab-border bird -f -s "$lab/bird/bird.ctl" -c "$lab/bird/bird.conf" -P "$lab/bird/bird.pid"
wait_for "BIRD's control socket" 50 birdc -s "$lab/bird/bird.ctl" show status

# The edge Pod (UID 65532) talks to BIRD's control socket.
chown 65532 "$lab/bird/bird.ctl"
edge_logs() { kc -n groundwork-system logs deploy/groundwork-edge-edge1 --tail 20 >&2 || true; }

gw_step "waiting for both UpstreamLinks to report sessionState Established"
links=""
for i in $(seq 90); do
  links="$(kc -n fra1 get upstreamlinks -o jsonpath='{range .items[*]}{.metadata.name}={.status.sessionState}{" "}{end}' 2>/dev/null || true)"
  echo "  [$i s] $links"
  [[ "$links" == "isp-a=Established isp-b=Established " ]] && break
  sleep 1
done
if [[ "$links" != "isp-a=Established isp-b=Established " ]]; then
  edge_logs
  die "the BGP sessions did not come up in 90 s (logs: kubectl -n groundwork-system logs deploy/groundwork-edge-edge1, .lab/bird/bird.log, .lab/*-isp-*.log)"
fi

gw_step "inspecting a01-u05: the controller sets a one-time network boot through its IPMI BMC and powers it on; QEMU boots through our DHCP + iPXE script into the ramdisk (serial log: .lab/a01-u05.serial)"
kc -n fra1 annotate server a01-u05 --overwrite groundwork.dev/inspect="lab-$(date +%s)" >/dev/null
state=""
for i in $(seq 180); do
  state="$(kc -n fra1 get server a01-u05 -o jsonpath='{.status.state}')"
  steps="$(kc -n fra1 get server a01-u05 -o jsonpath='{.status.bootProgress}' | python3 -c 'import json,sys; d=json.loads(sys.stdin.read() or "{}"); print(" ".join(k[:-2] for k in ("dhcpAt","scriptAt","kernelAt","initrdAt","calledBackAt") if k in d))')"
  echo "  [$i s] a01-u05 $state; boot steps: ${steps:-none yet}"
  [[ "$state" == Available && "$steps" == *calledBack* ]] && break
  sleep 1
done
[[ "$state" == Available ]] || die "a01-u05 did not finish inspection (see .lab/a01-u05.serial and .lab/pods/)"
kc -n fra1 get server a01-u05 -o jsonpath='  hardware: {.status.hardware.cpuCount} CPUs, {.status.hardware.memoryBytes} bytes of memory, NICs {.status.hardware.nics[*].mac}{"\n"}'

gw_step "provisioning a01-u05 (UEFI) and a01-u06 (BIOS) with the test OS: netboot into the agent, image + config drive written, disk boot through the BMC, first check-in"
sha="$(sha256sum "$lab/www/test-os.raw.zst" | cut -d' ' -f1)"
image="{\"url\": \"http://10.10.0.2:8090/test-os.raw.zst\", \"checksum\": \"sha256:$sha\", \"format\": \"raw+zstd\"}"
kc -n fra1 patch server a01-u05 --type merge -p "{\"spec\": {\"online\": true, \"image\": $image}}" >/dev/null
kc apply -f - >/dev/null <<EOF3
apiVersion: groundwork.dev/v1alpha1
kind: Server
metadata: {name: a01-u06, namespace: fra1}
spec:
  rackRef: {name: a01}
  rackUnit: 6
  bmc: {address: "ipmi://$bmc_host:6232", credentialsSecretRef: {name: bmc-a01}}
  bootMACAddress: "52:54:00:a0:01:06"
  bootMode: Legacy
  online: true
  image: $image
EOF3
states=""
for i in $(seq 300); do
  states="$(kc -n fra1 get server a01-u05 a01-u06 -o jsonpath='{range .items[*]}{.metadata.name}={.status.state}{" "}{end}')"
  progress="$(kc -n fra1 get server a01-u05 a01-u06 -o json | python3 -c '
import json, sys
for s in json.load(sys.stdin)["items"]:
    p = (s.get("status") or {}).get("bootProgress") or {}
    steps = [k[:-2] for k in ("dhcpAt", "scriptAt", "kernelAt", "initrdAt", "calledBackAt", "resultAt", "checkedInAt") if k in p]
    w = p.get("progress") or {}
    rate = " %s %d MiB at %d MiB/s" % (w["phase"], w.get("bytesDone", 0) >> 20, w.get("bytesPerSecond", 0) >> 20) if w else ""
    print("%s: %s%s;" % (s["metadata"]["name"], " ".join(steps) or "-", rate), end=" ")
')"
  echo "  [$i s] $states| $progress"
  [[ "$states" == "a01-u05=Provisioned a01-u06=Provisioned " ]] && break
  [[ "$states" != *Error* ]] || die "provisioning failed: $(kc -n fra1 get server a01-u05 a01-u06 -o jsonpath='{range .items[*]}{.metadata.name}: {.status.lastError}{"\n"}{end}')"
  sleep 1
done
[[ "$states" == "a01-u05=Provisioned a01-u06=Provisioned " ]] || die "provisioning did not finish (see .lab/a01-u0*.serial and .lab/pods/)"
kc -n fra1 get server a01-u05 a01-u06 -o jsonpath='{range .items[*]}  {.metadata.name}: node address {.status.addresses[0].address}; the installed OS says hostname {.status.bootProgress.checkIn.hostname}, addresses {.status.bootProgress.checkIn.addresses[*]}{"\n"}{end}'
kc -n fra1 get server a01-u05 a01-u06 -o jsonpath='{range .items[*]}  {.metadata.name} phases:{range .status.phases[*]} {.name}={.durationMs}ms{end}{"\n"}{end}'

gw_step "the warm pool: a01-u06 released with standby: Standby and its 300 W declared against the rack budget (cleaned, then waits powered on in the ramdisk), then provisioned again from standby: the agent writes and kexecs, no firmware, no BMC"
phase_sum() { # server: seconds from Provisioning to Provisioned (the last provisioning)
  kc -n fra1 get server "$1" -o json | python3 -c '
import json, sys
from datetime import datetime
ph = json.load(sys.stdin)["status"]["phases"]
t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
start = [p for p in ph if p["name"] == "Provisioning"][-1]["startedAt"]
end = [p for p in ph if p["name"] == "Provisioned"][-1]["startedAt"]
subs = " ".join("%s=%.1f" % (p["name"], p["durationMs"] / 1000) for p in ph
  if p["name"] in ("PowerOnToDHCP", "RamdiskBoot", "StandbyToWrite", "Image", "Kexec", "DiskBootToCheckIn") and t(p["startedAt"]) >= t(start))
print("%.1f s (%s)" % ((t(end) - t(start)).total_seconds(), subs))'
}
cold="$(phase_sum a01-u06)"
kc -n fra1 patch server a01-u06 --type merge -p '{"spec": {"standby": "Standby", "maxPowerWatts": 300, "image": null}}' >/dev/null
wait_state() { # server state seconds
  local st=""
  for i in $(seq "$3"); do
    st="$(kc -n fra1 get server "$1" -o jsonpath='{.status.state}')"
    [[ "$st" == "$2" ]] && return 0
    [[ "$st" != Error ]] || die "$1 failed: $(kc -n fra1 get server "$1" -o jsonpath='{.status.lastError}')"
    ((i % 5)) || echo "  [$i s] $1 $st"
    sleep 1
  done
  die "$1 did not reach $2 in $3 s (state $st; see .lab/$1.serial and .lab/pods/)"
}
wait_state a01-u06 Standby 240
kc -n fra1 get server a01-u06 -o jsonpath='  a01-u06 on standby since {.status.standbySince}; agent heartbeat {.status.bootProgress.heartbeatAt}{"\n"}'
kc -n fra1 patch server a01-u06 --type merge -p "{\"spec\": {\"image\": $image}}" >/dev/null
wait_state a01-u06 Provisioned 240
echo "  a01-u06 spec.image -> Provisioned: cold $cold"
echo "  a01-u06 spec.image -> Provisioned: warm $(phase_sum a01-u06)"

gw_step "rack a02 and the nodes' servers a01-u07 and a02-u01 (QEMU, 1536 MiB, 3 GiB disks, labelled node-pool=workers)"
kc apply -f - >/dev/null <<EOF4
apiVersion: groundwork.dev/v1alpha1
kind: Rack
metadata: {name: a02, namespace: fra1}
spec:
  location: {site: fra1, room: hall-1, row: A}
  failureDomain: fra1-a02
  networks:
    provisioning: {subnet: 10.11.0.0/24, gateway: 10.11.0.2}
    # .1 ToR gateway, .5 the border router's port (hack/lab.sh): never handed to a server.
    node: {subnet: 10.21.0.0/24, gateway: 10.21.0.1, reserved: [{start: 10.21.0.1, end: 10.21.0.9}]}
---
apiVersion: groundwork.dev/v1alpha1
kind: Server
metadata: {name: a01-u07, namespace: fra1, labels: {node-pool: workers}}
spec:
  rackRef: {name: a01}
  rackUnit: 7
  bmc: {address: "ipmi://$bmc_host:6233", credentialsSecretRef: {name: bmc-a01}}
  bootMACAddress: "52:54:00:a0:01:07"
  bootMode: Legacy
---
apiVersion: groundwork.dev/v1alpha1
kind: Server
metadata: {name: a02-u01, namespace: fra1, labels: {node-pool: workers}}
spec:
  rackRef: {name: a02}
  rackUnit: 1
  bmc: {address: "ipmi://$bmc_host:6234", credentialsSecretRef: {name: bmc-a01}}
  bootMACAddress: "52:54:00:a0:02:01"
  bootMode: UEFI
EOF4

gw_step "Cluster API core + its kubeadm bootstrap provider (processes, webhooks on 127.0.0.1), the lab's API server as workload cluster fra1/lab (the Groundwork provider: the chart's Pods)"
hack/capi.sh up "$lab/cp" >"$lab/capi-up.log" 2>&1 || { tail -20 "$lab/capi-up.log" >&2; die "Cluster API did not start"; }
hack/workload-cluster.sh up "$lab/cp" fra1 lab >"$lab/workload-cluster.log" 2>&1 || { tail -20 "$lab/workload-cluster.log" >&2; die "workload cluster setup failed"; }
wait "$node_os_pid" || { tail -20 "$lab/node-os-build.log" >&2; die "the node OS image did not build (.lab/node-os-build.log)"; }
cp "$lab/node-os.raw.zst" "$lab/www/node-os.raw.zst"
rm -f "$lab/node-os.raw"
node_sha="$(sha256sum "$lab/www/node-os.raw.zst" | cut -d' ' -f1)"
version="$(kubectl version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')"

gw_step "a Cluster over racks a01 and a02 and a MachineDeployment of two workers: each Machine claims a node-pool=workers server (spread across the racks), the agent writes the node OS, kubeadm joins with Cluster API's bootstrap data"
kc apply -f - >/dev/null <<EOF5
apiVersion: infrastructure.groundwork.dev/v1alpha1
kind: GroundworkCluster
metadata: {name: lab, namespace: fra1}
spec: {}
---
apiVersion: cluster.x-k8s.io/v1beta2
kind: Cluster
metadata: {name: lab, namespace: fra1}
spec:
  controlPlaneRef: {apiGroup: controlplane.lab.groundwork.dev, kind: ExternalControlPlane, name: lab}
  infrastructureRef: {apiGroup: infrastructure.groundwork.dev, kind: GroundworkCluster, name: lab}
---
apiVersion: infrastructure.groundwork.dev/v1alpha1
kind: GroundworkMachineTemplate
metadata: {name: workers, namespace: fra1}
spec:
  template:
    spec:
      serverSelector: {matchLabels: {node-pool: workers}}
      image: {url: "http://10.10.0.2:8090/node-os.raw.zst", checksum: "sha256:$node_sha", format: raw+zstd}
---
apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
kind: KubeadmConfigTemplate
metadata: {name: workers, namespace: fra1}
spec:
  template:
    spec:
      joinConfiguration:
        nodeRegistration:
          # cloud-init jinja over the config drive's meta-data, which Groundwork writes
          name: '{{ ds.meta_data.local_hostname }}'
          kubeletExtraArgs:
          - {name: provider-id, value: '{{ ds.meta_data.provider_id }}'}
---
apiVersion: cluster.x-k8s.io/v1beta2
kind: MachineDeployment
metadata: {name: workers, namespace: fra1}
spec:
  clusterName: lab
  replicas: 2
  selector: {matchLabels: {pool: workers}}
  template:
    metadata: {labels: {pool: workers}}
    spec:
      clusterName: lab
      version: $version
      bootstrap: {configRef: {apiGroup: bootstrap.cluster.x-k8s.io, kind: KubeadmConfigTemplate, name: workers}}
      infrastructureRef: {apiGroup: infrastructure.groundwork.dev, kind: GroundworkMachineTemplate, name: workers}
EOF5
declare -A seen=()
timeline=()
mark() { # machine milestone
  [[ -n "${seen[$1/$2]:-}" ]] && return
  seen[$1/$2]=1; timeline+=("$1: $2 at $((SECONDS - t_md)) s"); echo "  $1: $2 ($((SECONDS - t_md)) s)"
}
t_md=$SECONDS
ready=0
for _ in $(seq 900); do
  ready=0
  while read -r m server; do
    [[ -n "$server" ]] || continue
    mark "$m" "claimed $server"
    progress="$(kc -n fra1 get server "$server" -o jsonpath='{.status.state} {.status.bootProgress.resultAt} {.status.bootProgress.checkedInAt}')"
    [[ "$progress" != Error* ]] || die "$server failed: $(kc -n fra1 get server "$server" -o jsonpath='{.status.lastError}')"
    read -r _ result checkin <<<"$progress"
    [[ -z "$result" ]] || mark "$m" "image written"
    [[ -z "$checkin" ]] || mark "$m" "OS checked in"
    if [[ "$(kc get node "$server" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]; then
      mark "$m" "Node Ready"; ready=$((ready + 1))
    fi
  done < <(kc -n fra1 get groundworkmachines -o jsonpath='{range .items[*]}{.metadata.name} {.status.serverRef.name}{"\n"}{end}')
  ((ready == 2)) && break
  sleep 1
done
((ready == 2)) || die "the workers did not become Ready nodes (see .lab/pods/, .lab/a01-u07.serial, .lab/a02-u01.serial)"
echo "  timeline, from the MachineDeployment's creation:"; printf '    %s\n' "${timeline[@]}"
kc get nodes -L topology.kubernetes.io/zone,topology.kubernetes.io/region -o wide | sed 's/^/  /'
kc get nodes -l '!groundwork.dev/infra' -o jsonpath='{range .items[*]}  {.metadata.name}: providerID {.spec.providerID}{"\n"}{end}'

gw_step "the app: a Deployment of two groundwork.dev/hello:v1 replicas spread across the zones (hostPort 8080), asked from this host"
kc apply -f - >/dev/null <<'EOF6'
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {app: hello}}}
      containers:
      - name: hello
        image: groundwork.dev/hello:v1
        imagePullPolicy: Never
        env: [{name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
        ports: [{containerPort: 8080, hostPort: 8080}]
EOF6
answers=()
for _ in $(seq 240); do
  answers=()
  for node_ip in $(kc get nodes -l '!groundwork.dev/infra' -o jsonpath='{range .items[*]}{.status.addresses[?(@.type=="InternalIP")].address}{" "}{end}'); do
    r="$(curl -sf --max-time 2 "http://$node_ip:8080/" 2>/dev/null)" && answers+=("http://$node_ip:8080/ -> $r")
  done
  ((${#answers[@]} == 2)) && break
  sleep 1
done
((${#answers[@]} == 2)) || die "the app did not answer on both nodes (kubectl get pods -o wide)"
printf '  %s\n' "${answers[@]}"
kc get pods -o wide -l app=hello | sed 's/^/  /'

gw_step "a LoadBalancer Service for the app (class groundwork.dev/border, externalTrafficPolicy: Local, port 80 -> 8080): the controller gives it an address from edge1's pool, the edge daemon routes it to the nodes holding a hello Pod and announces it to both ISPs; kube-proxy on each node DNATs it to its Pod; ISP B fetches the app over the route it learned from us"
lb_class=groundwork.dev/border # crds::service::LOAD_BALANCER_CLASS
announced=edge1.border.groundwork.dev/Announced
usec() { echo "${EPOCHREALTIME/./}"; }
since() { echo "$((($(usec) - t_svc) / 1000)) ms"; }
t_svc="$(usec)"
kc apply -f - >/dev/null <<EOF7
apiVersion: v1
kind: Service
metadata: {name: hello, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerClass: $lb_class
  externalTrafficPolicy: Local
  selector: {app: hello}
  ports: [{name: http, protocol: TCP, port: 80, targetPort: 8080}]
EOF7
svc_cond() { # condition type -> "status reason: message"
  kc get service hello -o jsonpath="{.status.conditions[?(@.type==\"$1\")].status} {.status.conditions[?(@.type==\"$1\")].reason}: {.status.conditions[?(@.type==\"$1\")].message}"
}
lb_addr=""
for _ in $(seq 150); do
  lb_addr="$(kc get service hello -o jsonpath='{.status.loadBalancer.ingress[0].ip}')"
  [[ -z "$lb_addr" ]] || break
  sleep 0.2
done
[[ -n "$lb_addr" ]] || die "Service default/hello got no address in 30 s (AddressAllocated: $(svc_cond groundwork.dev/AddressAllocated); kubectl describe service hello, kubectl -n groundwork-system logs deploy/groundwork-controller)"
echo "  public address $lb_addr after $(since) (AddressAllocated $(svc_cond groundwork.dev/AddressAllocated))"
isp_a_has() { isp_a global rib -a ipv4 "$lb_addr/32" 2>/dev/null | grep -q "$lb_addr/32"; }
isp_b_has() { [[ -n "$(ip -n gw-lab-isp-b route show "$lb_addr/32" proto bgp 2>/dev/null)" ]]; }
t_a="" t_b=""
for _ in $(seq 150); do
  [[ -n "$t_a" ]] || ! isp_a_has || t_a="$(since)"
  [[ -n "$t_b" ]] || ! isp_b_has || t_b="$(since)"
  [[ -n "$t_a" && -n "$t_b" ]] && break
  sleep 0.2
done
if [[ -z "$t_a" || -z "$t_b" ]]; then
  edge_logs
  die "$lb_addr/32 did not reach both ISPs in 30 s (ISP A: ${t_a:-no}, ISP B's kernel: ${t_b:-no}; $announced: $(svc_cond "$announced"); birdc -s .lab/bird/bird.ctl show route protocol gw_svc_v4, kubectl -n groundwork-system logs deploy/groundwork-edge-edge1)"
fi
echo "  announced: ISP A's RIB has $lb_addr/32 after $t_a, ISP B's kernel after $t_b"
echo "  $announced: $(svc_cond "$announced")"
echo "  the border's route (BIRD -> gw-lab-border's kernel): $(ip -n gw-lab-border route show "$lb_addr" | tr -s ' \n' ' ')"
isp_a global rib -a ipv4 "$lb_addr/32" | sed 's/^/  ISP A: /'
isp_b -c "show ip route $lb_addr/32" | sed -n '1,/^$/p' | grep -v '^$' | sed 's/^/  ISP B: /'
echo "  ISP B's kernel: $(ip -n gw-lab-isp-b route show "$lb_addr/32")"
echo "  ISP B's route to it: $(ip -n gw-lab-isp-b route get "$lb_addr" | head -n 1)"
answer=""
for _ in $(seq 150); do
  answer="$(ip netns exec gw-lab-isp-b curl -s --connect-timeout 0.5 --max-time 2 "http://$lb_addr/" 2>/dev/null)" && [[ "$answer" == hello* ]] && break
  answer=""
  sleep 0.2
done
[[ -n "$answer" ]] || die "the app did not answer http://$lb_addr/ from gw-lab-isp-b in 30 s although both ISPs have the route (ip -n gw-lab-border route; kube-proxy on the nodes: kubectl get --raw /api/v1/nodes/a01-u07/proxy/logs/kube-proxy.log; .lab/a01-u07.serial)"
echo "  ip netns exec gw-lab-isp-b curl -s http://$lb_addr/ -> $answer (first answer $(since) after the Service's creation)"

gw_step "site fra1 (kubectl groundwork status: the servers that carry the public address):"
kc get groundwork -n fra1
KUBECONFIG="$lab/kubeconfig" "$CARGO_TARGET_DIR/debug/kubectl-groundwork" -n fra1 status | sed -n '/PUBLIC ADDRESSES/,$p' | sed 's/^/  /'
cat <<EOF2

The lab is up ($SECONDS s).
  export KUBECONFIG=$lab/kubeconfig PATH=$(dirname "$(command -v kubectl)"):\$PATH
  kubectl get groundwork -A                 # racks, servers, links
  kubectl describe rack -n fra1 a01         # conditions and events
  kubectl explain server.spec               # the API, documented
  kubectl -n groundwork-system get pods -o wide                               # Groundwork's Pods (helm release groundwork)
  kubectl -n groundwork-system get lease groundwork-controller -o jsonpath='{.spec.holderIdentity}'   # the leading replica
  curl -s 10.20.0.3:8080/metrics            # controller metrics (replica on infra-1; infra-2: 10.20.0.4)
  kubectl annotate server -n fra1 a01-u01 groundwork.dev/reboot=\$(date +%s)   # a reboot request
  kubectl patch server -n fra1 a01-u02 --type merge -p '{"spec":{"online":true}}' # power on
  kubectl -n groundwork-system logs -f deploy/groundwork-controller          # a controller replica's log
  helm -n groundwork-system upgrade groundwork charts/groundwork -f .lab/values.yaml --set logFormat=json   # roll the release
  kubectl get server -n fra1 a01-u05 -o jsonpath='{.status.bootProgress}'      # each boot step of the last netboot
  kubectl annotate server -n fra1 a01-u05 --overwrite groundwork.dev/inspect=\$(date +%s)   # inspect it again
  tail -f .lab/a01-u05.serial               # the QEMU machine's console (SeaBIOS/OVMF, iPXE, ramdisk, installed OS)
  kubectl get server -n fra1 a01-u06 -o jsonpath='{.status.phases}'           # how long each provisioning phase took
  $CARGO_TARGET_DIR/debug/kubectl-groundwork -n fra1 logs a01-u06 --controller-url http://10.20.0.3:8080   # the agent's log
  kubectl patch server -n fra1 a01-u06 --type merge -p '{"spec":{"image":null}}'  # deprovision: clean, release the address
  kubectl get ul,br -n fra1 -o wide         # BGP sessions and the border router, as the edge daemon reports them
  kubectl -n groundwork-system logs deploy/groundwork-edge-edge1             # edge daemon log
  birdc -s $lab/bird/bird.ctl show protocols all          # our BIRD (edge1)
  ip netns exec gw-lab-isp-a gobgp -u 127.0.0.1 -p 50051 global rib           # ISP A's RIB (our 203.0.113.0/24)
  ip netns exec gw-lab-isp-a gobgp -u 127.0.0.1 -p 50051 neighbor             # ISP A's session
  vtysh --vty_socket $lab/frr-isp-b -c 'show bgp ipv4 unicast'                # ISP B's RIB (prepended twice)
  vtysh --vty_socket $lab/frr-isp-b -c 'show bfd peers brief'                 # ISP B's BFD
  kubectl get cluster,machinedeployment,machines,gwm -n fra1                  # the workload cluster, its Machines and their servers
  kubectl get nodes -L topology.kubernetes.io/zone                             # the nodes, zone = rack
  kubectl scale machinedeployment -n fra1 workers --replicas 1                # release a node: its server is cleaned, back in the pool
  kubectl -n groundwork-system logs deploy/groundwork-provider               # the Cluster API provider's log
  kubectl get service hello -o wide         # the app's LoadBalancer Service: external IP $lb_addr
  kubectl get service hello -o jsonpath='{.status.conditions}'                # AddressAllocated, $announced
  ip netns exec gw-lab-isp-b curl -s http://$lb_addr/   # the app from ISP B, over the route it learned from us
  ip -n gw-lab-isp-b route show $lb_addr                # proto bgp: installed by ISP B's zebra
  ip -n gw-lab-border route                 # the border's kernel: Service routes to the nodes (ECMP)
  birdc -s $lab/bird/bird.ctl show route protocol gw_svc_v4   # the Service routes in BIRD
  kubectl get --raw /api/v1/nodes/a01-u07/proxy/logs/kube-proxy.log          # kube-proxy on a node (its /var/log)
  $CARGO_TARGET_DIR/debug/kubectl-groundwork -n fra1 rack a02               # rack a02, with the public address its server carries
  hack/lab.sh down                          # stop everything
EOF2
