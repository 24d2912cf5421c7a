# Shared by the hack/ scripts: `source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"` (../lib.sh from a
# subfolder), right after `set -euo pipefail`. Sourcing it only sets variables and defines
# functions; nothing runs until a script calls it:
#   - where things are: GW_ROOT (the repository), GW_CACHE (everything cached, GROUNDWORK_CACHE or
#     ~/.cache/groundwork) and CARGO_TARGET_DIR (exported; default $GW_CACHE/target);
#   - the preamble every script had its own copy of: gw_log, gw_die, gw_usage (the header
#     comment is the usage), gw_need_root, gw_step (timed progress lines), gw_free_port,
#     gw_stop_pid, gw_have / gw_apt_install / gw_disable_services (dependency installers) and
#     gw_controlplane (a control plane for a benchmark, unless one is given);
#   - the toolchains: gw_go (a Go >= 1.26, the machine's or one fetched once from the Go module
#     proxy into the cache), gw_python (the virtual environment of the Python test peers) and
#     gw_env (both, and cargo). Nothing here installs system packages unasked: hack/deps/ does.

GW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GW_CACHE="${GROUNDWORK_CACHE:-$HOME/.cache/groundwork}"
GW_GO_VERSION=1.26.8
GW_VENV="$GW_CACHE/venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$GW_CACHE/target}"
GW_T0="${EPOCHREALTIME//[^0-9]/}" # microseconds, for gw_step

gw_log() { echo "$(basename "$0"): $*" >&2; }

# Logs an error and exits 1.
gw_die() { gw_log "ERROR: $*"; exit 1; }

# Prints the script's header comment (the lines after the shebang, without "# ") and exits with
# RC: 0 prints it to stdout (for -h); otherwise (default 2, a bad argument) MESSAGE, if any, and
# the usage go to stderr.
gw_usage() {
  local rc="${1:-2}"
  [[ -z "${2:-}" ]] || gw_log "$2"
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&"$((rc ? 2 : 1))"
  exit "$rc"
}

# Exits unless running as root; WHY says what needs it.
gw_need_root() { [[ "$(id -u)" == 0 ]] || gw_die "needs root ($*)"; }

# Prints one progress line: seconds since the script started, then the message.
gw_step() {
  local ds=$(((${EPOCHREALTIME//[^0-9]/} - GW_T0) / 100000))
  printf '[%4d.%d s] %s\n' $((ds / 10)) $((ds % 10)) "$*"
}

# A free TCP port on 127.0.0.1.
gw_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Stops process PID (nothing when empty or gone): SIGTERM, up to 5 s, then SIGKILL; reaps it
# when it is a child of this shell.
gw_stop_pid() {
  local pid="${1:-}"
  [[ -n "$pid" ]] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# True when CMD is on PATH or in an sbin directory (Debian keeps some tools there).
gw_have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/sbin/$1" ]]; }

# Installs the Debian packages PKG... (each once; sudo when not root), non-interactively and
# without recommends, waiting for another apt's lock instead of failing.
gw_apt_install() {
  local sudo=() pkgs=()
  [[ "$(id -u)" == 0 ]] || sudo=(sudo)
  mapfile -t pkgs < <(printf '%s\n' "$@" | sort -u)
  gw_log "installing ${pkgs[*]}"
  "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
  # INITRD=No (when the caller sets it) skips initramfs hooks for a kernel this machine never boots.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive ${INITRD:+INITRD="$INITRD"} \
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${pkgs[@]}"
}

# Stops and disables system services SVC... a package started: the tests run their own instances.
gw_disable_services() {
  command -v systemctl >/dev/null 2>&1 || return 0
  local sudo=() svc
  [[ "$(id -u)" == 0 ]] || sudo=(sudo)
  for svc in "$@"; do "${sudo[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true; done
}

# For a benchmark: unless cp_dir already names a running control plane, starts one in a new
# directory with the CRDs installed, sets cp_dir, and stops it when the script exits (this sets
# the EXIT trap). Needs the Kubernetes binaries on PATH (hack/k8s-bins/build.sh).
gw_controlplane() {
  [[ -z "${cp_dir:-}" ]] || return 0
  cp_dir="$(mktemp -d /tmp/groundwork-bench-cp.XXXXXX)"
  trap '"$GW_ROOT/hack/controlplane.sh" down "$cp_dir" >/dev/null 2>&1' EXIT
  "$GW_ROOT/hack/controlplane.sh" up "$cp_dir" >&2
  kubectl --kubeconfig "$cp_dir/kubeconfig" apply --server-side \
    -f "$GW_ROOT/charts/groundwork/crds/" >/dev/null
}

# True when `go` on PATH is at least 1.26.
gw_go_ok() {
  command -v go >/dev/null 2>&1 || return 1
  local v; v="$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null)" || return 1
  v="${v#go}"
  local major="${v%%.*}" rest="${v#*.}"; local minor="${rest%%.*}"
  ((major > 1 || (major == 1 && minor >= 26)))
}

# A Go toolchain new enough for Kubernetes 1.36: the machine's when it is, else the official
# toolchain module (golang.org/toolchain, the same zip `GOTOOLCHAIN=` switching fetches) from
# the Go module proxy, unpacked once under the cache. Works without any Go installed.
gw_go() {
  local dir="$GW_CACHE/go/go$GW_GO_VERSION"
  [[ -x "$dir/bin/go" ]] && export PATH="$dir/bin:$PATH"
  if ! gw_go_ok; then
    gw_log "Go >= 1.26 not found: fetching go$GW_GO_VERSION from the Go module proxy"
    local proxy="${GOPROXY:-https://proxy.golang.org}"; proxy="${proxy%%,*}"
    [[ "$proxy" == direct || "$proxy" == off ]] && proxy=https://proxy.golang.org
    local tmp; tmp="$(mktemp -d)"
    curl -sSfL -o "$tmp/go.zip" "$proxy/golang.org/toolchain/@v/v0.0.1-go$GW_GO_VERSION.linux-amd64.zip"
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$tmp/go.zip" "$tmp/x"
    chmod -R u+x "$tmp/x"/golang.org/toolchain*/bin "$tmp/x"/golang.org/toolchain*/pkg/tool
    mkdir -p "$(dirname "$dir")"; rm -rf "$dir"
    mv "$tmp/x"/golang.org/toolchain* "$dir"; rm -rf "$tmp"
    export PATH="$dir/bin:$PATH"
    gw_go_ok || { gw_log "the fetched Go does not run: $(go version 2>&1)"; return 1; }
  fi
  export GOTOOLCHAIN=local
}

# Runs the e2e benchmark BENCH with ARG... against the controller binary built in PROFILE (release
# or debug: CI's smoke sizes reuse the debug build the tests made) and a control plane
# (gw_controlplane: the one in cp_dir, or a new one).
gw_e2e_bench() {
  local profile="$1" bench="$2" cargo_profile=dev
  shift 2
  [[ "$profile" != release ]] || cargo_profile=release
  cargo build -q --profile "$cargo_profile" -p controller --bin groundwork-controller
  export GROUNDWORK_CONTROLLER_BIN="$CARGO_TARGET_DIR/$profile/groundwork-controller"
  PATH="$("$GW_ROOT/hack/k8s-bins/build.sh"):$PATH"
  export PATH
  gw_controlplane
  GROUNDWORK_TEST_CONTROLPLANE="$cp_dir" \
    cargo bench -q --profile "$cargo_profile" -p e2e --bench "$bench" -- "$@"
}

# --- guest images (netboot ramdisk, test OS, bare installer): Debian's kernel + busybox ---------

# The virtio drivers a QEMU guest's NIC and disk need, in insmod order (dependencies first:
# busybox has no depmod/modprobe). Debian builds them as modules.
GW_VIRTIO_MODULES=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
  failover net_failover virtio_net virtio_blk)

# What the guest images are made of: the newest kernel in /boot and busybox-static (a guest has
# no libc). Sets GW_KERNEL, GW_KVER, GW_BUSYBOX and GW_BBVER (the last three for cache keys).
gw_guest_inputs() {
  GW_KERNEL="$(find /boot -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -n 1)"
  [[ -n "$GW_KERNEL" ]] || gw_die "no /boot/vmlinuz-* (run hack/deps/boot.sh)"
  GW_KVER="${GW_KERNEL#/boot/vmlinuz-}"
  GW_BUSYBOX=/bin/busybox
  if [[ ! -x "$GW_BUSYBOX" ]] || ldd "$GW_BUSYBOX" >/dev/null 2>&1; then
    gw_die "no static $GW_BUSYBOX (run hack/deps/boot.sh)"
  fi
  GW_BBVER="$("$GW_BUSYBOX" 2>&1 | head -n 1 || true)"
}

# Fills ROOT with a busybox root file system for GW_KVER (gw_guest_inputs): every applet linked
# (/init or a debugging shell never misses one), /bin/sh for /init's #!/bin/sh, INIT as /init, and
# the kernel modules MODULE... decompressed (busybox insmod reads no compressed ones) with their
# names, in insmod order, in /etc/modules.
gw_busybox_root() {
  local root="$1" init="$2" m src
  shift 2
  mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,lib/modules}
  cp "$GW_BUSYBOX" "$root/bin/busybox"
  "$GW_BUSYBOX" --list | while read -r m; do
    [[ "$m" == busybox ]] || ln -sf busybox "$root/bin/$m"
  done
  ln -sf busybox "$root/bin/sh"
  for m in "$@"; do
    src="$(find "/lib/modules/$GW_KVER/kernel" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" | head -n 1)"
    [[ -n "$src" ]] || gw_die "module $m not found for $GW_KVER"
    case "$src" in
      *.xz) xz -dc "$src" ;;
      *.zst) zstd -qdc "$src" ;;
      *.gz) gzip -dc "$src" ;;
      *) cat "$src" ;;
    esac >"$root/lib/modules/$m.ko"
    echo "$m" >>"$root/etc/modules"
  done
  install -m 0755 "$init" "$root/init"
}

# Writes the script busybox udhcpc calls into FILE: it configures the address and the default
# route, writes /etc/resolv.conf and notes the address in /tmp/dhcp-ip.
gw_udhcpc_script() {
  cat >"$1" <<'EOF'
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
  chmod 0755 "$1"
}

# Packs ROOT into the gzipped newc cpio OUT, then removes ROOT. Sorted names, root-owned, fixed
# mtimes, device-independent: the same inputs give the same bytes.
gw_cpio() {
  local root="$1" out="$2"
  find "$root" -mindepth 1 -exec touch -h -d @0 {} +
  (cd "$root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
    cpio --null -o -H newc --owner 0:0 --reproducible --quiet) | gzip -9n >"$out"
  rm -rf "$root"
}

# A cache entry built once: unless $GW_CACHE/NAME/KEY holds MARKER, runs `BUILD DIR` on a fresh
# directory that then becomes the entry at once (an entry is always complete; a failed build
# leaves nothing). Concurrent builders wait on one lock. Sets GW_CACHED to the entry.
# (Not inside $(...): bash turns set -e off there, and a failing BUILD step must stop it.)
gw_cached() {
  local cache="$GW_CACHE/$1" key="$2" marker="$3" build="$4" lock prev
  GW_CACHED="$cache/$key"
  mkdir -p "$cache"
  exec {lock}>"$cache/.lock"
  flock "$lock"
  if [[ ! -e "$GW_CACHED/$marker" ]]; then
    GW_BUILD_DIR="$(mktemp -d "$cache/.build.XXXXXX")"
    prev="$(trap -p EXIT)"
    trap 'rm -rf "$GW_BUILD_DIR"' EXIT
    "$build" "$GW_BUILD_DIR"
    chmod 0755 "$GW_BUILD_DIR"
    mv -T "$GW_BUILD_DIR" "$GW_CACHED"
    eval "${prev:-trap - EXIT}"
  fi
  exec {lock}>&-
}

# Puts FILE at DEST: a hardlink when on the same file system (instant), a copy otherwise; renamed
# into place, so an existing DEST (maybe a hardlink into the cache) is replaced, never written into.
gw_place() {
  local file="$1" dest="$2"
  [[ ! "$dest" -ef "$file" ]] || return 0
  ln -f "$file" "$dest.$$" 2>/dev/null || cp "$file" "$dest.$$"
  mv -f "$dest.$$" "$dest"
}

# The virtual environment that holds sushy-tools, pyghmi and bcrypt (Debian's python3 refuses
# global pip installs). Created by hack/deps/base.sh; its python3 comes first on PATH.
gw_python() {
  [[ -x "$GW_VENV/bin/python3" ]] || python3 -m venv "$GW_VENV"
  export PATH="$GW_VENV/bin:$PATH"
}

# Everything a stage needs on PATH (cargo included when rustup put it in ~/.cargo).
gw_env() {
  [[ -d "$HOME/.cargo/bin" ]] && export PATH="$HOME/.cargo/bin:$PATH"
  gw_python
  gw_go
}

# A cargo build started from a test inherits the test's cargo variables (CARGO_MANIFEST_DIR,
# CARGO_PKG_*, ...) and LD_LIBRARY_PATH; ring's build script tracks CARGO_MANIFEST_DIR, so a
# nested build run with them rebuilds ring and everything above it whenever the caller differs
# from the last build's. Builds of this repo's binaries call this first.
gw_plain_cargo_env() {
  local var
  while read -r var; do unset "$var"; done < <(env | grep -oE '^CARGO_(MANIFEST|PKG|CRATE|BIN|PRIMARY)[A-Z_]*' || true)
  unset LD_LIBRARY_PATH
}

# Gives this host ADDR/PREFIX on bridge BRIDGE inside network namespace NS, through a veth pair
# (IFNAME here, `IFNAME` too in NS, a port of BRIDGE): the lab's node VMs on that bridge then reach
# services bound to ADDR (the API server of `controlplane.sh up --cluster --node-address ADDR`),
# and this host gets a route to PREFIX through the namespace only. The pair goes with NS, but the
# kernel removes it a moment later: a pair left by a namespace just deleted is removed first.
gw_host_veth() {
  local ns="$1" bridge="$2" ifname="$3" cidr="$4"
  ip link del "$ifname" 2>/dev/null || true
  ip link add "$ifname" type veth peer name "$ifname" netns "$ns"
  ip -n "$ns" link set "$ifname" master "$bridge" up
  ip addr add "$cidr" dev "$ifname"
  ip link set "$ifname" up
}
