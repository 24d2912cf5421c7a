#!/usr/bin/env bash
# Builds the node OS disk image: an installed OS that runs containerd and, once kubeadm joined it,
# the kubelet and kube-proxy — from package registries only (Debian packages, Go modules).
#   hack/node-os/build.sh OUTFILE  ->  OUTFILE (raw), OUTFILE.sha256, OUTFILE.zst (zstd -19),
#                                      OUTFILE.zst.sha256 ("<hex>  <file name>", like test-os.sh)
# The image (same family as hack/boot/test-os.sh, so the agent writes it and both firmwares boot it;
# the agent appends the NoCloud config drive as the last partition):
#   1. EFI System partition (FAT16, LegacyBIOSBootable): syslinux + gptmbr.bin for BIOS, a
#      unified kernel image \EFI\BOOT\BOOTX64.EFI for UEFI; both boot Debian's kernel with a small
#      busybox initramfs (hack/node-os/initramfs-init.sh) that mounts partition 2 by its label
#      and switch_roots into it;
#   2. ext4 root (label gwnode-root, built with mke2fs -d: nothing is mounted): busybox, glibc,
#      containerd + runc + CNI plugins + iptables + bash (Debian bookworm .debs, dpkg -x), kubelet,
#      kubeadm and kube-proxy (hack/k8s-bins/build.sh, or the directory in GW_NODE_OS_K8S_BINS), the Go
#      programs of hack/node-os (gw-init as /sbin/init, gw-cloud-init, the pause and hello
#      images written by mkimage), hack/node-os/rootfs/ (boot script, systemctl shim, containerd
#      and CNI config) and the kernel modules containers need (with modules.dep).
# Images pre-imported at first boot: registry.k8s.io/pause:3.10.2 (containerd's sandbox_image,
# kubeadm 1.36's default) and groundwork.dev/hello:v1 (answers "hello from <node>" on :8080).
# Cached under ${GROUNDWORK_CACHE:-$HOME/.cache/groundwork}/node-os/<key>/ (key: every input);
# flock serialises builders. Needs hack/deps/boot.sh's tools plus e2fsprogs and Go.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

[[ $# -eq 1 ]] || gw_usage
out="$1"
here="$GW_ROOT/hack/node-os"

pause_image=registry.k8s.io/pause:3.10.2
hello_image=groundwork.dev/hello:v1
# Debian bookworm packages (dependencies listed explicitly: dpkg -x installs nothing else).
debs=(containerd runc containernetworking-plugins libseccomp2 libc6 iptables libip4tc2 libip6tc2
  libxtables12 libnftnl11 libmnl0 libnetfilter-conntrack3 libnfnetlink0 bash libtinfo6)
# CNI plugins kept (the rest of containernetworking-plugins is left out).
cni=(bridge host-local loopback portmap bandwidth firewall tuning)
# initramfs: virtio, then ext4 (crc32c for metadata checksums).
initrd_modules=("${GW_VIRTIO_MODULES[@]}" crc16 mbcache jbd2 crc32c_generic ext4)
# Kernel module trees copied to the root (modprobe resolves dependencies from modules.dep).
module_trees=(net/netfilter net/bridge net/802 net/llc
  net/sched net/core drivers/net/veth.ko drivers/net/vxlan drivers/net/virtio_net.ko
  drivers/net/net_failover.ko drivers/virtio drivers/block/virtio_blk.ko fs/overlayfs fs/ext4
  fs/jbd2 fs/mbcache.ko fs/fat fs/nls lib crypto net/ipv4 net/ipv6 drivers/char/hw_random/virtio-rng.ko)
label=gwnode-root
cmdline="console=ttyS0,115200 groundwork.os=node groundwork.root=LABEL=$label"
esp_mib=40
root_headroom_mib=512
stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
gptmbr=/usr/lib/SYSLINUX/gptmbr.bin

gw_guest_inputs
for f in "$stub" "$gptmbr"; do
  [[ -f "$f" ]] || gw_die "no $f (run hack/deps/boot.sh)"
done
export PATH="$PATH:/usr/sbin:/sbin"
for c in syslinux mcopy mmd mkfs.vfat sfdisk objcopy objdump zstd cpio mke2fs depmod apt-get dpkg; do
  gw_have "$c" || gw_die "no $c (run hack/deps/boot.sh; mke2fs: e2fsprogs, depmod: kmod)"
done
gw_go
k8s="${GW_NODE_OS_K8S_BINS:-$("$GW_ROOT/hack/k8s-bins/build.sh")}"
for b in kubelet kubeadm kube-proxy; do
  [[ -x "$k8s/$b" ]] || gw_die "no $b in $k8s (hack/k8s-bins/build.sh builds it; or set GW_NODE_OS_K8S_BINS to a directory holding kubelet, kubeadm and kube-proxy)"
done

# The .debs, downloaded once per version set (apt-get download: the ordinary client).
debdir="$GW_CACHE/node-os/debs"
mkdir -p "$debdir"
versions="$(apt-cache policy "${debs[@]}" | awk '/^[^ ]/ { p = $1 } /Candidate:/ { print p, $2 }')"
[[ "$(wc -l <<<"$versions")" -eq "${#debs[@]}" ]] || gw_die "apt-cache knows not all of ${debs[*]} (apt-get update?)"
fetch_debs() {
  local p v f missing=()
  while read -r p v; do
    p="${p%:}"
    f=("$debdir/${p}_${v//:/%3a}_"*.deb)
    [[ -e "${f[0]}" ]] || missing+=("$p=$v")
  done <<<"$versions"
  [[ ${#missing[@]} -eq 0 ]] || (cd "$debdir" && apt-get download -q "${missing[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
}
fetch_debs

key="$({
  cat "$here/build.sh" "$here/initramfs-init.sh" "$GW_ROOT/hack/lib.sh" "$here/go.mod" "$here/go.sum"
  # Relative paths: the key must not depend on where the checkout is.
  (cd "$here" && find cmd rootfs -type f | LC_ALL=C sort | xargs sha256sum)
  find "$here/rootfs" -printf '%P %m\n' | LC_ALL=C sort
  echo "$versions"
  echo "$GW_KVER"; sha256sum <"$GW_KERNEL"
  echo "$GW_BBVER"; sha256sum <"$stub"; sha256sum <"$gptmbr"
  syslinux --version 2>&1 | head -n 1
  mke2fs -V 2>&1 | head -n 1
  go version
  sha256sum "$k8s/kubelet" "$k8s/kubeadm" "$k8s/kube-proxy" | cut -c1-64
} | sha256sum | cut -c1-64)"

# A deb by package name from the cache.
deb() {
  local v; v="$(awk -v p="$1:" '$1 == p || $1 == substr(p, 1, length(p) - 1) { print $2 }' <<<"$versions")"
  local f=("$debdir/${1}_${v//:/%3a}_"*.deb)
  [[ -e "${f[0]}" ]] || gw_die "no .deb of $1 $v in $debdir"
  echo "${f[0]}"
}

rootfs() { # DIR -> DIR/root filled
  local tmp="$1" r="$1/root" d m src
  mkdir -p "$r"
  for d in "${debs[@]}"; do dpkg -x "$(deb "$d")" "$r"; done
  # The dynamic linker's cache (libc-bin's ldconfig never ran in there).
  mkdir -p "$r/etc/ld.so.conf.d"
  echo 'include /etc/ld.so.conf.d/*.conf' >"$r/etc/ld.so.conf"
  ldconfig -r "$r"
  # Only what a node uses: docs, man pages, locales, most CNI plugins and lintian go.
  rm -rf "$r"/usr/share/{doc,man,info,lintian,locale,bash-completion,zsh} "$r"/usr/lib/x86_64-linux-gnu/gconv
  mv "$r/usr/lib/cni" "$tmp/cni-all"; mkdir -p "$r/usr/lib/cni"
  for d in "${cni[@]}"; do cp "$tmp/cni-all/$d" "$r/usr/lib/cni/"; done
  rm -rf "$tmp/cni-all"
  # iptables is an alternative (update-alternatives never ran): the nft variant, Debian's default.
  for d in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -sf "${d/tables/tables-nft}" "$r/usr/sbin/$d"
  done
  # busybox for everything else (never over a file a package brought).
  mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin}
  cp "$GW_BUSYBOX" "$r/bin/busybox"
  "$GW_BUSYBOX" --list-full | while read -r m; do
    [[ "$m" == bin/busybox ]] && continue
    local base="${m##*/}"
    [[ -e "$r/$m" || -e "$r/bin/$base" || -e "$r/usr/bin/$base" || -e "$r/usr/sbin/$base" || -e "$r/sbin/$base" ]] && continue
    ln -s /bin/busybox "$r/$m"
  done
  ln -sf /bin/busybox "$r/bin/sh"
  # Our files.
  cp -a "$here/rootfs/." "$r/"
  sed -i "s|@PAUSE_IMAGE@|$pause_image|" "$r/etc/containerd/config.toml"
  # Go programs: static.
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/go/" ./cmd/...)
  install -m 0755 "$tmp/go/gw-init" "$r/sbin/init"
  install -m 0755 "$tmp/go/gw-cloud-init" "$r/usr/bin/gw-cloud-init"
  ln -sf gw-cloud-init "$r/usr/bin/cloud-init"
  install -m 0755 "$k8s/kubelet" "$k8s/kubeadm" "$k8s/kube-proxy" "$r/usr/bin/"
  mkdir -p "$r/usr/lib/groundwork/images"
  "$tmp/go/mkimage" -name "$pause_image" -o "$r/usr/lib/groundwork/images/pause.tar" -entrypoint /pause "$tmp/go/pause:/pause" >/dev/null
  "$tmp/go/mkimage" -name "$hello_image" -o "$r/usr/lib/groundwork/images/hello.tar" -entrypoint /hello "$tmp/go/hello:/hello" >/dev/null
  echo "$pause_image" >"$r/usr/lib/groundwork/images/pause.name"
  echo "$hello_image" >"$r/usr/lib/groundwork/images/hello.name"
  rm -rf "$tmp/go"
  # Accounts, identity, the kernel config (kubeadm's SystemVerification reads it).
  mkdir -p "$r"/{root,var/lib/kubelet,var/log,etc/kubernetes/manifests,etc/cni/net.d,boot,run,tmp,proc,sys,dev,mnt}
  # /var/run is /run (kubeadm's default CRI socket is unix:///var/run/containerd/containerd.sock).
  rm -rf "$r/var/run" "$r/var/lock"
  ln -s /run "$r/var/run"
  ln -s /run/lock "$r/var/lock"
  printf 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$r/etc/group"
  printf 'root:*:19000:0:99999:7:::\n' >"$r/etc/shadow"; chmod 0640 "$r/etc/shadow"
  printf 'hosts: files dns\npasswd: files\ngroup: files\n' >"$r/etc/nsswitch.conf"
  printf 'ID=groundwork-node\nNAME="Groundwork node OS"\nVERSION_ID=1\nPRETTY_NAME="Groundwork node OS (Debian bookworm packages, Kubernetes %s)"\n' \
    "$("$k8s/kubelet" --version | awk '{ print $2 }')" >"$r/etc/os-release"
  : >"$r/etc/resolv.conf"
  cp "/boot/config-$GW_KVER" "$r/boot/"
  # Kernel modules.
  local kmods="/lib/modules/$GW_KVER"
  for m in "${module_trees[@]}"; do
    [[ -e "$kmods/kernel/$m" ]] || gw_die "no $kmods/kernel/$m"
    mkdir -p "$r/lib/modules/$GW_KVER/kernel/$(dirname "$m")"
    cp -a "$kmods/kernel/$m" "$r/lib/modules/$GW_KVER/kernel/$(dirname "$m")/"
  done
  cp "$kmods"/modules.{order,builtin,builtin.modinfo} "$r/lib/modules/$GW_KVER/" 2>/dev/null || true
  find "$r/lib/modules/$GW_KVER" -name '*.ko.xz' -exec xz -d {} + 2>/dev/null || true
  depmod -b "$r" "$GW_KVER"
}

initramfs() { # DIR -> DIR/initrd.img
  gw_busybox_root "$1/initrd" "$here/initramfs-init.sh" "${initrd_modules[@]}"
  mkdir -p "$1/initrd/newroot"
  gw_cpio "$1/initrd" "$1/initrd.img"
}

uki() { # DIR (with vmlinuz, initrd.img) -> DIR/BOOTX64.EFI (as hack/boot/test-os.sh)
  local d="$1" off sec
  printf 'ID=groundwork-node\nNAME="Groundwork node OS"\nVERSION_ID=1\n' >"$d/os-release"
  printf '%s' "$cmdline" >"$d/cmdline"
  off="$(objdump -h "$stub" | awk 'NF == 7 && $1 ~ /^[0-9]+$/ { e = "0x" $4 " + 0x" $3 } END { print e }')"
  off=$(((off + 4095) / 4096 * 4096))
  local args=()
  for sec in osrel:os-release cmdline:cmdline linux:vmlinuz initrd:initrd.img; do
    args+=(--add-section ".${sec%%:*}=$d/${sec#*:}" --change-section-vma ".${sec%%:*}=$(printf '0x%x' "$off")")
    off=$(((off + $(stat -c %s "$d/${sec#*:}") + 4095) / 4096 * 4096))
  done
  objcopy "${args[@]}" "$stub" "$d/BOOTX64.EFI"
  rm -f "$d/os-release" "$d/cmdline"
}

build() { # DIR
  local tmp="$1" img fat esp_start=2048 esp_sectors root_start root_mib root_sectors total used
  rootfs "$tmp"
  used=$(($(du -sm --apparent-size "$tmp/root" | cut -f1)))
  root_mib=$(((used * 11 / 10 + root_headroom_mib + 63) / 64 * 64))
  # mke2fs -d copies the tree in (owners and modes as they are: root, since we run as root).
  E2FSPROGS_FAKE_TIME=1 mke2fs -q -t ext4 -L "$label" -U 6e1a3f0c-47a5-4e55-9c1b-0000000000c2 \
    -E root_owner=0:0,hash_seed=6e1a3f0c-47a5-4e55-9c1b-0000000000c3 -N 65536 \
    -d "$tmp/root" "$tmp/root.img" "${root_mib}M"
  rm -rf "$tmp/root"

  cp "$GW_KERNEL" "$tmp/vmlinuz"
  initramfs "$tmp"
  uki "$tmp"
  esp_sectors=$((esp_mib * 2048))
  fat="$tmp/fat.img"
  mkfs.vfat -C -F 16 -n GWNODEOS -h "$esp_start" -i 47570002 "$fat" $((esp_sectors / 2)) >/dev/null
  printf '%s\n' "DEFAULT os" "PROMPT 0" "TIMEOUT 0" "LABEL os" \
    "  KERNEL /vmlinuz" "  INITRD /initrd.img" "  APPEND $cmdline" >"$tmp/syslinux.cfg"
  export MTOOLS_SKIP_CHECK=1
  syslinux --install "$fat"
  mcopy -i "$fat" "$tmp/syslinux.cfg" "$tmp/vmlinuz" "$tmp/initrd.img" ::/
  mmd -i "$fat" ::/EFI ::/EFI/BOOT
  mcopy -i "$fat" "$tmp/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI

  root_start=$((esp_start + esp_sectors))
  root_sectors=$((root_mib * 2048))
  total=$((root_start + root_sectors + 2048)) # + 1 MiB: the backup GPT
  img="$tmp/disk.img"
  truncate -s $((total * 512)) "$img"
  sfdisk -q --no-reread --no-tell-kernel "$img" <<EOT
label: gpt
label-id: 6E1A3F0C-47A5-4E55-9C1B-0000000000A2
first-lba: 2048
start=$esp_start, size=$esp_sectors, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=6E1A3F0C-47A5-4E55-9C1B-0000000000B2, name="EFI", attrs="LegacyBIOSBootable"
start=$root_start, size=$root_sectors, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=6E1A3F0C-47A5-4E55-9C1B-0000000000B3, name="$label"
EOT
  dd if="$fat" of="$img" bs=512 seek="$esp_start" conv=notrunc status=none
  dd if="$tmp/root.img" of="$img" bs=1M seek=$((root_start / 2048)) conv=notrunc,sparse status=none
  dd if="$gptmbr" of="$img" bs=440 count=1 conv=notrunc status=none
  rm -f "$fat" "$tmp/root.img" "$tmp"/{vmlinuz,initrd.img,BOOTX64.EFI,syslinux.cfg}
  touch -d @0 "$img"
  chmod 0444 "$img"

  nice -n 10 zstd -q -9 --long=27 -T0 "$img" -o "$tmp/disk.img.zst"
  chmod 0444 "$tmp/disk.img.zst"
  (cd "$tmp" && sha256sum disk.img | cut -c1-64 >disk.img.sha256 &&
    sha256sum disk.img.zst | cut -c1-64 >disk.img.zst.sha256)
}
gw_cached node-os "$key" disk.img.zst.sha256 build
dir="$GW_CACHED"

mkdir -p "$(dirname "$out")"
name="$(basename "$out")"
for suffix in "" .zst; do
  f="$out$suffix"
  gw_place "$dir/disk.img$suffix" "$f"
  printf '%s  %s\n' "$(cat "$dir/disk.img$suffix.sha256")" "$name$suffix" >"$f.sha256.$$"
  mv -f "$f.sha256.$$" "$f.sha256"
  echo "$f"
done
