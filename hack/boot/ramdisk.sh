#!/usr/bin/env bash
# Builds the test netboot ramdisk from Debian's kernel and busybox-static (hack/deps/boot.sh):
#   hack/boot/ramdisk.sh OUTDIR   ->  OUTDIR/vmlinuz, OUTDIR/initrd.img (newc cpio, gzip)
# The initrd holds busybox (every applet linked in /bin), the static Groundwork agent as
# /bin/groundwork-agent, the virtio modules the NIC and disk need (Debian builds them as
# modules), hack/boot/init.sh as /init and a udhcpc script.
# The agent: GROUNDWORK_AGENT_BIN=<path> takes an already-built static binary; otherwise it is
# built here (static glibc: -C target-feature=+crt-static, LABS.md section 8) into
# $CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/ (hack/lib.sh's default: under the cache).
# Builds are cached under ${GROUNDWORK_CACHE:-$HOME/.cache/groundwork}/ramdisk/<key>/, keyed by
# this script, init.sh, the kernel, busybox and the agent binary's sha256, so a rebuild is a
# hardlink; flock serialises concurrent builders.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

[[ $# -eq 1 ]] || gw_usage
out="$1"
here="$GW_ROOT/hack/boot"

# insmod order: dependencies first (there is no depmod/modprobe in the ramdisk).
modules=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
  failover net_failover virtio_net virtio_blk)

kernel="$(find /boot -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)"
[[ -n "$kernel" ]] || gw_die "no /boot/vmlinuz-* (run hack/deps/boot.sh)"
kver="${kernel#/boot/vmlinuz-}"
# busybox-static's: the ramdisk has no libc (a dynamic busybox would not start).
busybox=/bin/busybox
if [[ ! -x "$busybox" ]] || ldd "$busybox" >/dev/null 2>&1; then
  gw_die "no static $busybox (run hack/deps/boot.sh)"
fi
bbver="$("$busybox" 2>&1 | head -n 1 || true)"

# The agent: static (the ramdisk has no libc), checked with file(1).
agent="${GROUNDWORK_AGENT_BIN:-}"
if [[ -z "$agent" ]]; then
  gw_log "building the static agent (cargo, $CARGO_TARGET_DIR)"
  # A RUSTFLAGS build with an explicit --target lands in its own subdirectory, so it does not
  # invalidate the host build's artifacts. cargo's output goes to stderr: stdout lists files.
  (cd "$GW_ROOT" && CARGO_INCREMENTAL=0 RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release -q -p agent --bin groundwork-agent \
    --target x86_64-unknown-linux-gnu) >&2
  agent="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/groundwork-agent"
fi
[[ -x "$agent" ]] || gw_die "no agent binary at $agent"
case "$(file -bL "$agent")" in
  *"statically linked"* | *static-pie*) ;;
  *) gw_die "$agent is not statically linked: $(file -bL "$agent")" ;;
esac
agentsum="$(sha256sum <"$agent" | cut -c1-64)"

# Key: the two scripts, the kernel (its version plus a hash of the image, since Debian can
# rebuild a kernel without changing the ABI name), the busybox version and the agent.
key="$({
  cat "$here/init.sh" "$here/ramdisk.sh"
  echo "$kver"
  sha256sum <"$kernel"
  echo "$bbver"
  echo "agent $agentsum"
} | sha256sum | cut -c1-64)"
cache="$GW_CACHE/ramdisk"
dir="$cache/$key"
mkdir -p "$cache"

tmp=""
trap 'rm -rf "$tmp"' EXIT # a half-built tree, if anything fails

build() {
  local root m src
  tmp="$(mktemp -d "$cache/.build.XXXXXX")"
  root="$tmp/root"
  mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,lib/modules}
  cp "$busybox" "$root/bin/busybox"
  # Link every applet: cheap (symlinks) and /init or a debugging shell never misses one.
  "$busybox" --list | while read -r a; do
    [[ "$a" == busybox ]] || ln -sf busybox "$root/bin/$a"
  done
  ln -sf busybox "$root/bin/sh" # the kernel runs /init's #!/bin/sh
  # Stripped: ~20 % less to download; the symbols stay in the cargo build.
  strip -o "$root/bin/groundwork-agent" "$agent" 2>/dev/null || cp "$agent" "$root/bin/groundwork-agent"
  chmod 0755 "$root/bin/groundwork-agent"
  for m in "${modules[@]}"; do
    src="$(find "/lib/modules/$kver/kernel" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" | head -n 1)"
    [[ -n "$src" ]] || { gw_log "module $m not found for $kver"; return 1; }
    # busybox insmod can't read compressed modules.
    case "$src" in
      *.xz) xz -dc "$src" ;;
      *.zst) zstd -qdc "$src" ;;
      *.gz) gzip -dc "$src" ;;
      *) cat "$src" ;;
    esac >"$root/lib/modules/$m.ko"
    echo "$m" >>"$root/etc/modules"
  done
  install -m 0755 "$here/init.sh" "$root/init"
  # The host's CA bundle, so the agent can verify https:// image URLs.
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    mkdir -p "$root/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  fi
  # udhcpc only talks to a script: configure address and default route, note the address.
  cat >"$root/etc/udhcpc.script" <<'EOF'
#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound | renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    : >/etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    echo "$ip" >/tmp/dhcp-ip ;;
esac
exit 0
EOF
  chmod 0755 "$root/etc/udhcpc.script"
  cp "$kernel" "$tmp/vmlinuz"
  # Sorted names, root-owned, fixed mtimes, device-independent: same inputs, same bytes.
  find "$root" -mindepth 1 -exec touch -h -d @0 {} +
  (cd "$root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
    cpio --null -o -H newc --owner 0:0 --reproducible --quiet) | gzip -9n >"$tmp/initrd.img"
  rm -rf "$root"
  chmod 0755 "$tmp"
  mv -T "$tmp" "$dir" # atomic: a key directory is always complete
  tmp=""
}

# One lock for the cache; check under it, a concurrent builder may just have made this key.
exec 9>"$cache/.lock"
flock 9
# (Not `test || build`: set -e is off inside a function called from a || list.)
if [[ ! -f "$dir/initrd.img" || ! -f "$dir/vmlinuz" ]]; then build; fi
flock -u 9
exec 9>&-

mkdir -p "$out"
for f in vmlinuz initrd.img; do
  # Hardlink when on the same filesystem (instant), copy otherwise; then rename into place, so
  # an existing OUTDIR file (maybe a hardlink into the cache) is replaced, never written into.
  if [[ ! "$out/$f" -ef "$dir/$f" ]]; then
    ln -f "$dir/$f" "$out/.$f.$$" 2>/dev/null || cp "$dir/$f" "$out/.$f.$$"
    mv -f "$out/.$f.$$" "$out/$f"
  fi
  echo "$out/$f"
done
