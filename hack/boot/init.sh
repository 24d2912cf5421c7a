#!/bin/sh
# /init of the Groundwork netboot ramdisk (busybox sh, built by hack/boot/ramdisk.sh).
# Loads the NIC and disk modules, brings up the first ethernet NIC with DHCP and hands over to
# /bin/groundwork-agent, which reads its parameters from /proc/cmdline (groundwork.agent=
# groundwork.server= groundwork.token= groundwork.url= groundwork.mode=), registers over gRPC
# with the machine's inventory, runs its tasks and powers the machine off itself. If the agent
# exits instead, /init logs its exit code and powers off (QEMU runs with -no-reboot, so it
# exits). No `set -e`: /init must never exit (the kernel would panic), it always powers off.
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
# devtmpfs: the kernel creates /dev/vda & co. itself, so the agent sees the disks.
mount -t devtmpfs devtmpfs /dev
# The cpio has no /dev/console node, so the kernel started us without stdio: attach it now.
exec </dev/console >/dev/console 2>&1

log() { echo "groundwork-ramdisk: $*"; }
off() { log "power off"; sync; poweroff -f; sleep 10; }

mode="" server=""
# shellcheck disable=SC2013 # words are what we want: the cmdline is space-separated
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    groundwork.server=*) server="${arg#*=}" ;;
    groundwork.mode=*) mode="${arg#*=}" ;;
  esac
done
log "start mode=${mode:-?} server=${server:-?}"

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
  off
fi

disks=""
for d in /sys/block/*; do
  n="${d##*/}"
  case "$n" in loop* | ram* | "*") ;; *) disks="$disks $n" ;; esac
done
log "disks:${disks:- none}"

# --- agent ------------------------------------------------------------------------------
log "starting groundwork-agent --boot-mac $mac"
# Plain log lines on the serial console (tracing-subscriber honours NO_COLOR).
NO_COLOR=1 /bin/groundwork-agent --boot-mac "$mac"
rc=$?
# Success means the agent powered off itself (reboot(2)), so reaching here with 0 is odd too.
log "groundwork-agent exited with code $rc"
off
