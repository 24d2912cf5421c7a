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
# this script, init.sh, hack/lib.sh, the kernel, busybox and the agent binary's sha256, so a
# rebuild is a hardlink; flock serialises concurrent builders.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

[[ $# -eq 1 ]] || gw_usage
out="$1"
here="$GW_ROOT/hack/boot"

gw_guest_inputs

# The agent: static (the ramdisk has no libc), checked with file(1).
agent="${GROUNDWORK_AGENT_BIN:-}"
if [[ -z "$agent" ]]; then
  gw_log "building the static agent (cargo, $CARGO_TARGET_DIR)"
  gw_plain_cargo_env
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

# Key: the scripts, the kernel (its version plus a hash of the image, since Debian can rebuild
# a kernel without changing the ABI name), the busybox version and the agent.
key="$({
  cat "$here/init.sh" "$here/ramdisk.sh" "$GW_ROOT/hack/lib.sh"
  echo "$GW_KVER"
  sha256sum <"$GW_KERNEL"
  echo "$GW_BBVER"
  echo "agent $agentsum"
} | sha256sum | cut -c1-64)"

build() { # DIR
  local root="$1/root"
  gw_busybox_root "$root" "$here/init.sh" "${GW_VIRTIO_MODULES[@]}"
  # Stripped: ~20 % less to download; the symbols stay in the cargo build.
  strip -o "$root/bin/groundwork-agent" "$agent" 2>/dev/null || cp "$agent" "$root/bin/groundwork-agent"
  chmod 0755 "$root/bin/groundwork-agent"
  # The host's CA bundle, so the agent can verify https:// image URLs.
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    mkdir -p "$root/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  fi
  gw_udhcpc_script "$root/etc/udhcpc.script" # udhcpc only talks to a script
  cp "$GW_KERNEL" "$1/vmlinuz"
  gw_cpio "$root" "$1/initrd.img"
}
gw_cached ramdisk "$key" initrd.img build

mkdir -p "$out"
for f in vmlinuz initrd.img; do
  gw_place "$GW_CACHED/$f" "$out/$f"
  echo "$out/$f"
done
