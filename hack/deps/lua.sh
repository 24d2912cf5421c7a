#!/usr/bin/env bash
# Lua 5.1 (the dialect Argo CD's gopher-lua speaks) for testing charts/groundwork/health/*.lua.
# Installs only what is missing.
set -euo pipefail
if ! command -v lua5.1 >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lua5.1
fi
