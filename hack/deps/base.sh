#!/usr/bin/env bash
# Base tools every stage needs; installs only what is missing: curl, openssl, flock, a C/C++
# compiler (crates with C code, cargo-fuzz), Python with venv (the test peers live in a virtual
# environment), rustup with rustfmt and clippy, and Go >= 1.26 (hack/lib.sh fetches it from the
# Go module proxy when the machine's is missing or older).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
command -v python3 >/dev/null || need_apt+=(python3)
command -v flock >/dev/null || need_apt+=(util-linux)
command -v curl >/dev/null || need_apt+=(curl ca-certificates)
command -v cc >/dev/null && command -v c++ >/dev/null && command -v make >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
# Debian splits venv (and its pip) out of python3; a python without it cannot make one.
if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  need_apt+=(python3-venv)
fi
((${#need_apt[@]} == 0)) || gw_apt_install "${need_apt[@]}"
gw_python
python3 -m pip --version >/dev/null
if ! command -v cargo >/dev/null && [[ ! -x "$HOME/.cargo/bin/cargo" ]]; then
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
fi
export PATH="$HOME/.cargo/bin:$PATH"
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
gw_go
echo "base.sh: ok ($(go version | cut -d' ' -f3), $(python3 --version), $(cargo --version | cut -d' ' -f1-2))" >&2
