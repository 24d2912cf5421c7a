#!/bin/sh
# /init of the Groundwork test netboot ramdisk (busybox sh, built by hack/boot/ramdisk.sh).
# Brings up the first ethernet NIC with DHCP, collects a minimal hardware inventory, POSTs it
# to ${groundwork.url}/boot/callback and powers off (QEMU runs with -no-reboot, so it exits).
# Kernel parameters: groundwork.url= groundwork.server=<ns/name> groundwork.token=
# groundwork.mode=inspect|provision|clean|discover. Without groundwork.url the inventory is only
# printed. No `set -e`: /init must never exit (the kernel would panic), it always powers off.
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The cpio has no /dev/console node, so the kernel started us without stdio: attach it now.
exec </dev/console >/dev/console 2>&1

log() { echo "groundwork-ramdisk: $*"; }
off() { log "power off"; sync; poweroff -f; sleep 10; }
# Values go into JSON without an encoder: drop quotes, backslashes and control characters, and
# trim the padding SCSI/ATA model strings carry.
clean() { printf '%s' "$1" | tr -d '"\\\000-\037' | sed 's/^ *//; s/ *$//'; }
readf() { [ -r "$1" ] && clean "$(cat "$1" 2>/dev/null)"; }

url="" server="" token="" mode="inspect"
# shellcheck disable=SC2013 # words are what we want: the cmdline is space-separated
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    groundwork.url=*) url="${arg#*=}" ;;
    groundwork.server=*) server="${arg#*=}" ;;
    groundwork.token=*) token="${arg#*=}" ;;
    groundwork.mode=*) mode="${arg#*=}" ;;
  esac
done
url="${url%/}"
log "start mode=$mode server=$server"

# Module order matters (no modprobe/depmod here): ramdisk.sh writes it to /etc/modules.
while read -r m; do
  [ -n "$m" ] || continue
  insmod "/lib/modules/$m.ko" || log "insmod $m failed"
done </etc/modules

# First ethernet interface (ARPHRD_ETHER = 1), not lo. virtio_net probes synchronously, but
# give the driver a few seconds anyway.
iface=""
i=0
while [ -z "$iface" ] && [ "$i" -lt 50 ]; do
  for d in /sys/class/net/*; do
    n="${d##*/}"
    [ "$n" != lo ] && [ "$(cat "$d/type" 2>/dev/null)" = 1 ] && { iface="$n"; break; }
  done
  [ -n "$iface" ] || { sleep 0.1; i=$((i + 1)); }
done
ip link set lo up
[ -n "$iface" ] || { log "no ethernet interface"; off; }
mac="$(cat "/sys/class/net/$iface/address")"
ip link set "$iface" up

if udhcpc -i "$iface" -n -q -t 10 -T 1 -s /etc/udhcpc.script >/dev/null 2>&1; then
  log "dhcp ok $(cat /tmp/dhcp-ip 2>/dev/null) on $iface ($mac)"
else
  log "dhcp failed on $iface ($mac)"
  [ -z "$url" ] || off
fi

# --- inventory --------------------------------------------------------------------------
cpus="$(grep -c '^processor' /proc/cpuinfo)"
cpumodel="$(clean "$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)")"
memkb="$(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\).*/\1/p' /proc/meminfo)"

disks="" sep=""
for d in /sys/block/*; do
  [ -e "$d" ] || continue
  n="${d##*/}"
  case "$n" in loop* | ram*) continue ;; esac
  rot=false
  [ "$(cat "$d/queue/rotational" 2>/dev/null)" = 1 ] && rot=true
  j="{\"name\":\"$n\",\"sizeBytes\":$(($(cat "$d/size") * 512)),\"rotational\":$rot"
  model="$(readf "$d/device/model")"
  [ -n "$model" ] && j="$j,\"model\":\"$model\""
  # virtio-blk exposes its serial on the disk itself, SCSI/ATA under device/.
  serial="$(readf "$d/device/serial")"
  [ -n "$serial" ] || serial="$(readf "$d/serial")"
  [ -n "$serial" ] && j="$j,\"serialNumber\":\"$serial\""
  disks="$disks$sep$j}"
  sep=","
done

nics="" sep=""
for d in /sys/class/net/*; do
  n="${d##*/}"
  [ "$n" = lo ] && continue
  # operstate lags the carrier by up to 1 s (linkwatch), and we may get here sooner after DHCP.
  up=false
  [ "$(cat "$d/operstate" 2>/dev/null)" = up ] && up=true
  [ "$(cat "$d/carrier" 2>/dev/null)" = 1 ] && up=true
  nics="$nics$sep{\"name\":\"$n\",\"mac\":\"$(readf "$d/address")\",\"linkUp\":$up}"
  sep=","
done

inventory="$(printf '{"cpuCount":%s,"cpuModel":"%s","memoryBytes":%s,"disks":[%s],"nics":[%s]}' \
  "$cpus" "$cpumodel" "$((memkb * 1024))" "$disks" "$nics")"
json="$(printf '{"server":"%s","token":"%s","mac":"%s","mode":"%s","inventory":%s}' \
  "$(clean "$server")" "$(clean "$token")" "$mac" "$(clean "$mode")" "$inventory")"

if [ -z "$url" ]; then
  log "no groundwork.url, inventory: $inventory"
  off
fi

# --- callback ---------------------------------------------------------------------------
n=1
while :; do
  # Debian's busybox wget (1.35) is built without -T (it segfaults on it) and otherwise
  # waits forever: bound it with the timeout applet.
  if reply="$(timeout 10 wget -q -O - --header 'Content-Type: application/json' \
    --post-data "$json" "$url/boot/callback")"; then
    log "callback ok $reply"
    break
  fi
  if [ "$n" -ge 5 ]; then
    log "callback failed after $n attempts to $url/boot/callback"
    break
  fi
  n=$((n + 1))
  sleep 1
done
off
