# Shared by the hack/ scripts: `source "$(dirname "$0")/lib.sh"` (or ../lib.sh from a subfolder).
# Puts the project's toolchains on PATH: a Go >= 1.26 (the machine's, or one fetched once from the
# Go module proxy into the cache) and a Python virtual environment for the Python test peers.
# Nothing here installs system packages: hack/deps/base.sh does that.

GW_CACHE="${GROUNDWORK_CACHE:-$HOME/.cache/groundwork}"
GW_GO_VERSION=1.26.8
GW_VENV="$GW_CACHE/venv"

gw_log() { echo "$(basename "$0"): $*" >&2; }

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
