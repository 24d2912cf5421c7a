#!/usr/bin/env bash
# Scale benchmark (not a test): hack/bench-scale.sh [--racks 100] [--servers 100] [--quiet-seconds 60]
#   [--controlplane DIR]  reuse a running control plane instead of starting one.
# Full size uses the release controller; smoke size (CI) the debug one.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$GW_ROOT"
args=(); cp_dir=""; racks=100
while (($#)); do
  case "$1" in
    --controlplane) cp_dir="$2"; shift 2 ;;
    --racks) racks="$2"; args+=("$1" "$2"); shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if ((racks >= 20)); then profile=release; else profile=debug; args+=(--quiet-seconds 10); fi
gw_e2e_bench "$profile" scale "${args[@]}"
