#!/usr/bin/env bash
# BMC fleet benchmark (not a test): hack/bench-bmc-fleet.sh [--servers 1000] [--emulators 4]
#   [--auth 1|0] [--power-delay 0] [--baseline-seconds 10] [--timeout-seconds 900]
#   [--emulator sushy|strict] [--ports N] [--controlplane DIR]
# --controlplane DIR reuses a running control plane instead of starting one.
# sushy: Servers' Redfish systems are spread over K sushy-tools processes behind counting proxies.
# strict: one strict emulator process (hack/bmc/redfish_emulator.py --fleet) serves every system
#   on N ports (default min(servers, 1000)), each behind a counting proxy.
# Full size uses the release controller; smoke size (CI, < 200 servers) the debug one.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$GW_ROOT"
args=(); cp_dir=""; servers=1000
while (($#)); do
  case "$1" in
    --controlplane) cp_dir="$2"; shift 2 ;;
    --servers) servers="$2"; args+=("$1" "$2"); shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if ((servers >= 200)); then profile=release; else profile=debug; args=(--baseline-seconds 3 "${args[@]}"); fi
bash hack/deps/bmc.sh
gw_e2e_bench "$profile" bmc_fleet "${args[@]}"
