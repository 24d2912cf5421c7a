#!/bin/sh
# The node OS image's boot sequence, run by /sbin/init (gw-init, PID 1) on the ext4 root:
#   mounts (proc, sys, cgroup2 — or the v1 hierarchies with groundwork.cgroup=v1 on the kernel
#   command line —, /run, /tmp, shared propagation) -> kernel modules and sysctls for containers
#   -> NoCloud config drive at /run/cidata -> hostname, /etc/hosts -> network (gw-cloud-init net:
#   the netplan network-config, else DHCP) -> check-in to Groundwork (gw-cloud-init checkin) -> containerd (supervised) -> the pre-built images
#   imported into containerd's k8s.io namespace -> kubelet, when kubeadm configured and enabled it
#   on an earlier boot -> kube-proxy (it waits for the node's kubeconfig) -> the cloud-config runner (gw-cloud-init: bootcmd, write_files, runcmd,
#   whose `kubeadm join` starts the kubelet through the systemctl shim).
# Console lines start with "groundwork-node:" (the smoke test and the lab read them).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
exec </dev/console >/dev/console 2>&1
log() { echo "groundwork-node: $* (t=$(cut -d' ' -f1 /proc/uptime))"; }
cmdline="$(cat /proc/cmdline 2>/dev/null)"

mount -t proc proc /proc 2>/dev/null
cmdline="$(cat /proc/cmdline)"
mount -t sysfs sysfs /sys
grep -q "^[^ ]* /dev " /proc/mounts || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mkdir -p /run/groundwork /run/lock /var/log
mount --make-rshared /
log "start $(cat /proc/sys/kernel/osrelease), root $(awk '$2 == "/" { print $1 }' /proc/mounts)"

case " $cmdline " in
  *" groundwork.cgroup=v1 "*)
    # cgroup v1 (kubelet then needs failCgroupV1: false).
    mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
    for c in cpu,cpuacct cpuset memory devices freezer net_cls,net_prio blkio pids hugetlb perf_event; do
      mkdir -p "/sys/fs/cgroup/$c"
      mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" || log "cgroup v1 $c failed"
    done
    ln -s cpu,cpuacct /sys/fs/cgroup/cpu; ln -s cpu,cpuacct /sys/fs/cgroup/cpuacct
    mkdir -p /sys/fs/cgroup/systemd
    mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
    log "cgroup v1" ;;
  *)
    mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
    # Every controller for the children (the kubelet's kubepods tree and containerd's).
    for c in $(cat /sys/fs/cgroup/cgroup.controllers); do echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; done
    log "cgroup v2: $(cat /sys/fs/cgroup/cgroup.subtree_control)" ;;
esac
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null

# Modules (modules.dep is in the image: busybox modprobe resolves dependencies).
for m in virtio_rng overlay br_netfilter veth bridge nf_conntrack vfat nls_cp437 nls_ascii nls_iso8859-1 nls_utf8; do
  modprobe "$m" || log "modprobe $m failed"
done
echo 1 >/proc/sys/net/ipv4/ip_forward
echo 1 >/proc/sys/net/ipv6/conf/all/forwarding 2>/dev/null
echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
echo 1 >/proc/sys/net/bridge/bridge-nf-call-ip6tables
ip link set lo up

# --- the NoCloud config drive (FAT labelled CIDATA, the disk's last partition) --------------
mkdir -p /run/cidata
dev="$(findfs LABEL=CIDATA 2>/dev/null || findfs LABEL=cidata 2>/dev/null)"
if [ -z "$dev" ]; then
  # A vfat partition labelled in lower case or unlabeled: try the root disk's last partition.
  for disk in /sys/block/vd* /sys/block/sd* /sys/block/nvme*; do
    [ -e "$disk" ] || continue
    last="$(ls -d "$disk/${disk##*/}"* 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$last" ] && mount -t vfat -o ro "/dev/${last##*/}" /run/cidata 2>/dev/null &&
      { [ -f /run/cidata/meta-data ] && { dev="/dev/${last##*/}"; umount /run/cidata; break; }; umount /run/cidata; }
  done
fi
if [ -n "$dev" ] && mount -t vfat -o ro "$dev" /run/cidata && [ -f /run/cidata/meta-data ]; then
  log "config drive $dev"
else
  log "no config drive: no hostname, DHCP, no user-data"
fi
meta() {
  sed -n "s/^$1:[[:space:]]*//p" /run/cidata/meta-data 2>/dev/null | head -n 1 |
    sed 's/[[:space:]]*$//; s/^"\(.*\)"$/\1/; s/^'"'"'\(.*\)'"'"'$/\1/' | tr -d '\r'
}
host="$(meta local-hostname)"
host="${host:-$(cat /etc/hostname 2>/dev/null)}"
host="${host:-groundwork-node}"
hostname "${host%%.*}"
echo "${host%%.*}" >/etc/hostname
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n' "$(hostname)" >/etc/hosts
[ -e /etc/resolv.conf ] || : >/etc/resolv.conf

gw-cloud-init net -seed /run/cidata || log "network incomplete"
log "hostname=$(hostname) addresses=$(ip -4 -o addr show scope global | awk '{ print $4 }' | tr '\n' ' ')"
# First boot's check-in to Groundwork (when the meta-data names a check-in URL), in the
# background: the Server is Provisioned once the OS is up, whatever the cluster join does next.
gw-cloud-init checkin -seed /run/cidata &

# --- containerd, images, kubelet -------------------------------------------------------
systemctl start containerd
i=0
until ctr version >/dev/null 2>&1; do
  i=$((i + 1))
  [ "$i" -lt 300 ] || { log "containerd did not come up (see /var/log/containerd.log)"; break; }
  sleep 0.1
done
ctr version >/dev/null 2>&1 && log "containerd up ($(ctr version 2>/dev/null | awk '/Server:/ { s = 1 } s && /Version:/ { print $2; exit }'))"

# Pre-built images (no registry is reachable): imported on the first boot (a marker per archive
# on the root file system), then their names on the console. Each ctr call costs ~1 s under TCG.
mkdir -p /var/lib/groundwork/imported
for tar in /usr/lib/groundwork/images/*.tar; do
  [ -f "$tar" ] || continue
  mark="/var/lib/groundwork/imported/$(basename "$tar" .tar)"
  [ -e "$mark" ] && continue
  if ctr -n k8s.io images import "$tar" >/dev/null; then touch "$mark"; else log "image import failed: $tar"; fi
done
log "images: $(ctr -n k8s.io images ls -q | grep -v '^sha256:' | tr '\n' ' ')"

if systemctl -q is-enabled kubelet && [ -f /var/lib/kubelet/config.yaml ]; then
  systemctl start kubelet
fi
# kube-proxy (enabled in the image): its service waits for the kubelet's kubeconfig, i.e. until
# `kubeadm join` has joined the node (at once on a reboot after joining).
if systemctl -q is-enabled kube-proxy; then
  systemctl start kube-proxy
fi

# --- user-data (cloud-config) -------------------------------------------------------------
gw-cloud-init -seed /run/cidata
log "cloud-config exited $?"
log "boot finished"
