#!/bin/sh
# /init of the node OS image's small initramfs (built by hack/node-os/build.sh): loads the
# virtio and ext4 modules, finds the root file system by its label (kernel parameter
# groundwork.root=LABEL=..., default gwnode-root), mounts it and switch_roots into its
# /sbin/init (hack/node-os/rootfs/sbin/init). The root is a real file system on the disk, not the
# initramfs: runc's pivot_root needs that (LABS.md section 10). Console lines: "groundwork-initrd:".
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
log() { echo "groundwork-initrd: $*"; }
rescue() { log "$*: rescue shell"; exec sh; }

while read -r m; do
  [ -n "$m" ] || continue
  insmod "/lib/modules/$m.ko" || log "insmod $m failed"
done </etc/modules

label=gwnode-root
for a in $(cat /proc/cmdline); do
  case "$a" in groundwork.root=LABEL=*) label="${a#groundwork.root=LABEL=}" ;; esac
done
i=0 dev=""
while [ -z "$dev" ] && [ "$i" -lt 100 ]; do
  dev="$(findfs "LABEL=$label" 2>/dev/null)" || dev=""
  [ -n "$dev" ] || { sleep 0.1; i=$((i + 1)); }
done
[ -n "$dev" ] || rescue "no file system labelled $label"
mkdir -p /newroot
mount -t ext4 -o rw,noatime "$dev" /newroot || rescue "cannot mount $dev"
[ -x /newroot/sbin/init ] || rescue "$dev has no /sbin/init"
log "root $dev ($label)"
umount /proc /sys
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot /sbin/init
