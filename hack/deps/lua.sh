#!/usr/bin/env bash
# Lua 5.1 (the dialect Argo CD's gopher-lua speaks) for testing charts/groundwork/health/*.lua.
# Installs only what is missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
gw_have lua5.1 || gw_apt_install lua5.1
