#!/usr/bin/env bash
# Baseline benchmark (not a test): "power-on -> provisioned" of 1..N QEMU VMs with a plain busybox
# installer and standard tools, to compare with Groundwork's full cycle (DHCP + iPXE + HTTP into
# the Groundwork ramdisk, agent writes the zstd image and a config drive, disk boot through the
# BMC, the installed OS checks in).
#
#   hack/bench/bare-cycle.sh [--vms N] [--firmware bios|uefi] [--keep-logs] [--smoke]
#
#   --vms N        VMs provisioned in parallel (default 1); the run ends when all are up.
#   --firmware F   bios (default; SeaBIOS + QEMU's iPXE ROM) or uefi (OVMF's HTTP boot loads
#                  Debian's ipxe.efi, which then runs the same iPXE script). bios is the
#                  measured path; uefi is there for completeness.
#   --keep-logs    keep the work directory (serial logs, dnsmasq and HTTP logs), print its path.
#   --smoke        only build (cached) the bare installer initrd and check the prerequisites;
#                  exits 0 fast, needs neither root nor a VM (for CI).
#
# The cycle of each VM (TCG, virtio, 512 MiB RAM, a blank sparse 256 MiB raw disk, as in the
# provisioning e2e test):
#   1. power-on: hack/boot/vm.sh --boot net. The firmware's iPXE gets a DHCP answer from
#      dnsmasq pointing at http://10.71.0.1:8080/boot.ipxe (dnsmasq also sends IPv6 router
#      adverts: without them iPXE waits ~13 s, LABS.md section 4); the script loads vmlinuz +
#      initrd.img from python3's http.server.
#   2. the bare installer (/init = hack/boot/bare-installer-init.sh; Debian's kernel, busybox,
#      the virtio modules, no agent) runs udhcpc, then `wget -O - http://.../os.raw | dd
#      of=/dev/vda bs=1M`, sync, poweroff -f; QEMU exits (-no-reboot).
#   3. restart from the disk: hack/boot/vm.sh --boot disk; the test OS (hack/boot/test-os.sh,
#      48 MiB raw) boots and prints "groundwork-os: no config drive" = OS up.
# Marks per VM (host clock, serial logs polled every 0.1 s):
#   write_s    power-on -> installer done (the QEMU process exited)
#   diskboot_s disk-boot power-on -> "groundwork-os: no config drive"
#   total_s    power-on -> OS up (write_s + diskboot_s; the restart follows at once)
#   netboot_s  power-on -> "bare-installer: start" (firmware, DHCP, iPXE, kernel+initrd)
#   dd_s       the installer's "writing" -> "written", by the guest's uptime
# and a "max" row: total_s from the first power-on until the last VM is up.
#
# Differences from Groundwork's cycle, by design of the baseline: the raw image (48 MiB) is
# served, not zstd (busybox has no zstd); no checksum; no config drive, so the test OS does not
# configure its NIC or POST a check-in: "OS up" is its "no config drive" line, which is printed
# right where the Groundwork cycle would start reading the config drive -> its check-in
# additionally costs mounting the config drive, the NIC setup and one HTTP POST. No BMC: the
# script powers the VM on and off itself, and no controller/Kubernetes is involved.
#
# Needs root (network namespace). Everything runs in netns gwbare-<PID> (bridge br0
# 10.71.0.1/24 + fd71::1/64, one tap per VM); nothing listens or sends outside it. Every
# process is stopped by PID and the namespace deleted on exit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$GW_ROOT"

vms=1 fw=bios smoke=0 keep=0
while (($#)); do
  case "$1" in
    --vms) vms="${2:-}"; shift 2 ;;
    --firmware) fw="${2:-}"; shift 2 ;;
    --keep-logs) keep=1; shift ;;
    --smoke) smoke=1; shift ;;
    -h | --help) gw_usage 0 ;;
    *) gw_usage 2 "unknown argument $1" ;;
  esac
done
[[ "$vms" =~ ^[1-9]$ ]] || gw_usage 2 "--vms must be 1..9"
[[ "$fw" == bios || "$fw" == uefi ]] || gw_usage 2 "--firmware must be bios or uefi"

# --- prerequisites ----------------------------------------------------------------------------
check_prereqs() {
  local c missing=()
  for c in qemu-system-x86_64 dnsmasq python3 ip curl cpio gzip truncate cmp flock; do
    gw_have "$c" || missing+=("$c")
  done
  local f files=(/usr/lib/ipxe/qemu/pxe-virtio.rom "$GW_ROOT/hack/boot/vm.sh" "$GW_ROOT/hack/boot/test-os.sh"
    "$GW_ROOT/hack/boot/bare-installer-init.sh")
  [[ "$fw" == uefi ]] && files+=(/usr/lib/ipxe/ipxe.efi /usr/share/OVMF/OVMF_CODE_4M.fd)
  for f in "${files[@]}"; do [[ -e "$f" ]] || missing+=("$f"); done
  ((${#missing[@]} == 0)) || gw_die "missing: ${missing[*]} (run hack/deps/boot.sh)"
}
export PATH="$PATH:/usr/sbin:/sbin"
check_prereqs

# --- the bare installer initrd (cached) -------------------------------------------------------
# The same kernel, busybox-static and virtio modules as hack/boot/ramdisk.sh (hack/lib.sh's
# guest image helpers), without the agent and CA bundle.
gw_guest_inputs
key="$({
  cat "$GW_ROOT/hack/boot/bare-installer-init.sh" "$GW_ROOT/hack/bench/bare-cycle.sh" "$GW_ROOT/hack/lib.sh"
  echo "$GW_KVER"
  sha256sum <"$GW_KERNEL"
  echo "$GW_BBVER"
} | sha256sum | cut -c1-64)"
build_initrd() { # DIR -> DIR/vmlinuz, DIR/initrd.img
  local root="$1/root"
  gw_busybox_root "$root" "$GW_ROOT/hack/boot/bare-installer-init.sh" "${GW_VIRTIO_MODULES[@]}"
  gw_udhcpc_script "$root/etc/udhcpc.script"
  cp "$GW_KERNEL" "$1/vmlinuz"
  gw_cpio "$root" "$1/initrd.img"
}
gw_cached bare-installer "$key" initrd.img build_initrd
initrd_dir="$GW_CACHED"

if ((smoke)); then
  if [[ "$(id -u)" == 0 ]]; then
    probe="gwbare-probe-$$"
    if ! ip netns add "$probe"; then gw_die "cannot create network namespaces"; fi
    ip netns del "$probe"
  else
    gw_log "not root: the real run needs root (network namespace); not probed"
  fi
  echo "bare-cycle: smoke ok: initrd $initrd_dir/initrd.img ($(stat -c %s "$initrd_dir/initrd.img") bytes), prerequisites present"
  exit 0
fi

gw_need_root "network namespace"

# --- work dir, cleanup ------------------------------------------------------------------------
NS="gwbare-$$"
work="$(mktemp -d /tmp/groundwork-bare-cycle.XXXXXX)"
www="$work/www"
mkdir -p "$www"
dnsmasq_pid="" http_pid="" cycle_pids=()
cleanup() {
  local p i
  for p in "${cycle_pids[@]}"; do gw_stop_pid "$p"; done
  for i in $(seq "$vms"); do "$GW_ROOT/hack/boot/vm.sh" --stop "$work/vm$i.pid" 2>/dev/null || true; done
  gw_stop_pid "$http_pid"
  gw_stop_pid "$dnsmasq_pid"
  [[ ! -e "/run/netns/$NS" ]] || ip netns del "$NS" || true
  if ((keep)); then gw_log "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- artifacts --------------------------------------------------------------------------------
"$GW_ROOT/hack/boot/test-os.sh" "$work/os.img" >/dev/null
for f in "$work/os.img:os.raw" "$initrd_dir/vmlinuz:vmlinuz" "$initrd_dir/initrd.img:initrd.img"; do
  gw_place "${f%%:*}" "$www/${f#*:}"
done
[[ "$fw" == uefi ]] && cp /usr/lib/ipxe/ipxe.efi "$www/ipxe.efi"
srv=10.71.0.1
cat >"$www/boot.ipxe" <<EOF
#!ipxe
kernel http://$srv:8080/vmlinuz initrd=initrd.img console=ttyS0,115200 bare.image=http://$srv:8080/os.raw
initrd http://$srv:8080/initrd.img
boot
EOF

# --- network ----------------------------------------------------------------------------------
ip netns add "$NS" || gw_die "cannot create network namespace $NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add br0 type bridge
ip -n "$NS" addr add "$srv/24" dev br0
ip -n "$NS" addr add fd71::1/64 dev br0 nodad
ip -n "$NS" link set br0 up
for i in $(seq "$vms"); do
  ip -n "$NS" tuntap add dev "tap$i" mode tap
  ip -n "$NS" link set "tap$i" master br0 up
done
# DHCP for iPXE (option 175 present) -> the script; UEFI HTTP boot (vendor class HTTPClient,
# not iPXE) -> ipxe.efi; the installer's udhcpc just gets an address. RAs stop iPXE's IPv6 wait.
# --no-ping: dnsmasq's default ICMP probe of a new address holds the first OFFER until the
# client retransmits (~3 s with iPXE); bench-dhcp.sh's dnsmasq baseline runs without it too.
ip netns exec "$NS" dnsmasq -k --port=0 --no-resolv --no-hosts --interface=br0 --bind-interfaces \
  --user=root --group=root --pid-file="$work/dnsmasq.pid" --leasefile-ro \
  --log-dhcp --log-facility="$work/dnsmasq.log" --no-ping \
  --dhcp-range=10.71.0.100,10.71.0.199,255.255.255.0,1h \
  --enable-ra --dhcp-range=fd71::,ra-only,64 \
  --dhcp-match=set:ipxe,175 --dhcp-vendorclass=set:efihttp,HTTPClient \
  --dhcp-boot=tag:ipxe,"http://$srv:8080/boot.ipxe" \
  --dhcp-boot=tag:!ipxe,tag:efihttp,"http://$srv:8080/ipxe.efi" \
  --dhcp-option-force=tag:!ipxe,tag:efihttp,60,HTTPClient \
  </dev/null >"$work/dnsmasq.out" 2>&1 &
dnsmasq_pid=$!
ip netns exec "$NS" python3 -m http.server 8080 --bind "$srv" --directory "$www" \
  </dev/null >"$work/http.log" 2>&1 &
http_pid=$!
for _ in $(seq 100); do
  ip netns exec "$NS" curl -sf -o /dev/null "http://$srv:8080/boot.ipxe" && break
  kill -0 "$http_pid" 2>/dev/null || gw_die "http.server exited: $(cat "$work/http.log")"
  sleep 0.1
done
kill -0 "$dnsmasq_pid" 2>/dev/null || gw_die "dnsmasq exited: $(cat "$work/dnsmasq.out")"

# --- one VM's cycle ---------------------------------------------------------------------------
# Writes $work/vmI.result: t0 t_netboot t_off t_disk t_up (host EPOCHREALTIME) and dd_s.
cycle() {
  local i="$1" pid t0 t_netboot t_off t_disk t_up deadline
  local disk="$work/vm$i.disk" pidf="$work/vm$i.pid"
  local isl="$work/vm$i.install.serial" dsl="$work/vm$i.disk.serial"
  local vm=("$GW_ROOT/hack/boot/vm.sh" --name "bare$i" --mac "52:54:00:71:00:0$i" --tap "tap$i"
    --firmware "$fw" --disk "$disk" --pidfile "$pidf" --netns "$NS" --state-dir "$work/vm$i")
  alive() { kill -0 "$pid" 2>/dev/null; }
  fail() { gw_log "vm$i: $*"; exit 1; }
  t0=$EPOCHREALTIME
  "${vm[@]}" --boot net --serial "$isl" >/dev/null 2>>"$work/vm$i.qemu.log" || fail "vm.sh failed"
  pid="$(cat "$pidf")"
  deadline=$((SECONDS + 300))
  t_netboot=""
  while alive; do
    if [[ -z "$t_netboot" ]] && grep -q "^bare-installer: start" "$isl"; then t_netboot=$EPOCHREALTIME; fi
    ((SECONDS < deadline)) || fail "installer still running after 300 s (see $isl)"
    sleep 0.1
  done
  t_off=$EPOCHREALTIME
  grep -q "^bare-installer: written" "$isl" || fail "the installer did not write the image (see $isl)"
  [[ -n "$t_netboot" ]] || t_netboot=$t_off
  t_disk=$EPOCHREALTIME
  "${vm[@]}" --boot disk --serial "$dsl" >/dev/null 2>>"$work/vm$i.qemu.log" || fail "vm.sh --boot disk failed"
  pid="$(cat "$pidf")"
  deadline=$((SECONDS + 300))
  until grep -q "^groundwork-os: no config drive" "$dsl" 2>/dev/null; do
    alive || fail "the disk-booted VM exited (see $dsl)"
    ((SECONDS < deadline)) || fail "the test OS was not up after 300 s (see $dsl)"
    sleep 0.1
  done
  t_up=$EPOCHREALTIME
  "$GW_ROOT/hack/boot/vm.sh" --stop "$pidf"
  # The guest's own dd time, from the uptimes on its "writing"/"written" lines.
  dd_s="$(tr -d '\r' <"$isl" | awk '/^bare-installer: writing/ { a = $NF } /^bare-installer: written/ { b = $NF }
    END { gsub(/\)/, "", a); gsub(/\)/, "", b); if (a != "" && b != "") printf "%.2f", b - a; else print "?" }')"
  echo "$t0 $t_netboot $t_off $t_disk $t_up $dd_s" >"$work/vm$i.result"
}

for i in $(seq "$vms"); do truncate -s 256M "$work/vm$i.disk"; done
gw_log "host load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
gw_log "fw=$fw vms=$vms: power-on -> netboot -> wget|dd -> off -> disk boot -> OS up (work dir $work)"
for i in $(seq "$vms"); do
  cycle "$i" &
  cycle_pids+=($!)
done
failed=0
for p in "${cycle_pids[@]}"; do wait "$p" || failed=1; done
cycle_pids=()
((failed == 0)) || { keep=1; gw_die "a cycle failed"; }

# The disks hold the image (checked after the clock stopped).
for i in $(seq "$vms"); do
  cmp -s -n "$(stat -c %s "$www/os.raw")" "$www/os.raw" "$work/vm$i.disk" || { keep=1; gw_die "vm$i's disk differs from os.raw"; }
done

for i in $(seq "$vms"); do cat "$work/vm$i.result"; done | awk -v n="$vms" -v fw="$fw" '
  { t0[NR] = $1; nb[NR] = $2; off[NR] = $3; disk[NR] = $4; up[NR] = $5; dd[NR] = $6 }
  END {
    for (i = 1; i <= NR; i++) {
      tot = up[i] - t0[i]; w = off[i] - t0[i]; db = up[i] - disk[i]
      printf "bare-cycle fw=%s vms=%d vm=%d total_s=%.2f write_s=%.2f diskboot_s=%.2f netboot_s=%.2f dd_s=%s\n",
        fw, n, i, tot, w, db, nb[i] - t0[i], dd[i]
      if (i == 1 || t0[i] < first) first = t0[i]
      if (i == 1 || up[i] > last) last = up[i]
      if (w > mw) mw = w; if (db > mdb) mdb = db
    }
    printf "bare-cycle fw=%s vms=%d max total_s=%.2f write_s=%.2f diskboot_s=%.2f\n", fw, n, last - first, mw, mdb
  }'
