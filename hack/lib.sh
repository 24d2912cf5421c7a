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
