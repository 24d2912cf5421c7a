#!/bin/sh
# /init of the "bare installer" ramdisk: the baseline hack/bench/bare-cycle.sh measures Groundwork
# against (busybox sh; the initrd is built by bare-cycle.sh: Debian's kernel, busybox-static and
# the virtio modules, as in hack/boot/ramdisk.sh, but no agent). A plain busybox installer:
# insmod the modules, DHCP with udhcpc, `wget -O - URL | dd of=/dev/vda bs=1M` of the raw image
# named by bare.image=URL on the kernel command line, sync, power off. Nothing else: no
# checksum, no config drive, no progress reports. Console lines start with "bare-installer:"
# and end with the guest's uptime, so the in-guest timings can be read off the serial log.
# /init must never exit (the kernel would panic): every path ends in poweroff -f (QEMU runs
# with -no-reboot, so it exits).
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# The cpio has no /dev/console node, so the kernel started us without stdio: attach it now.
exec </dev/console >/dev/console 2>&1

log() { echo "bare-installer: $* (uptime $(cut -d' ' -f1 /proc/uptime))"; }
off() { log "power off"; sync; poweroff -f; sleep 10; }

url=""
# shellcheck disable=SC2013 # the cmdline is space-separated words
for arg in $(cat /proc/cmdline); do
  case "$arg" in bare.image=*) url="${arg#*=}" ;; esac
done
log "start image=${url:-?}"
[ -n "$url" ] || { log "no bare.image= on the kernel command line"; off; }

# Module order matters (no modprobe/depmod here): bare-cycle.sh writes it to /etc/modules.
while read -r m; do
  [ -n "$m" ] || continue
  insmod "/lib/modules/$m.ko" || log "insmod $m failed"
done </etc/modules
ip link set lo up

iface=""
i=0
while [ -z "$iface" ] && [ "$i" -lt 50 ]; do
  for d in /sys/class/net/*; do
    n="${d##*/}"
    [ "$n" != lo ] && [ "$(cat "$d/type" 2>/dev/null)" = 1 ] && { iface="$n"; break; }
  done
  [ -n "$iface" ] || { sleep 0.1; i=$((i + 1)); }
done
[ -n "$iface" ] || { log "no ethernet interface"; off; }
ip link set "$iface" up
if udhcpc -i "$iface" -n -q -t 10 -T 1 -s /etc/udhcpc.script >/dev/null 2>&1; then
  log "dhcp ok $(cat /tmp/dhcp-ip 2>/dev/null) on $iface"
else
  log "dhcp failed on $iface"
  off
fi

i=0
while [ ! -b /dev/vda ] && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -b /dev/vda ] || { log "no /dev/vda"; off; }

log "writing"
# shellcheck disable=SC3040 # busybox ash has pipefail: a failed wget fails the write
set -o pipefail
if wget -q -O - "$url" | dd of=/dev/vda bs=1M 2>/tmp/dd.log; then
  sync
  log "written $(grep -o '^[0-9]* bytes' /tmp/dd.log)"
else
  log "write failed: $(tr '\n' ' ' </tmp/dd.log)"
fi
off
