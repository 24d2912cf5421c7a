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
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/groundwork/target}"
args=(); cp_dir=""; servers=1000
while (($#)); do
  case "$1" in
    --controlplane) cp_dir="$2"; shift 2 ;;
    --servers) servers="$2"; args+=("$1" "$2"); shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if ((servers >= 200)); then profile=release; cargo_profile=release
else profile=debug; cargo_profile=dev; args=(--baseline-seconds 3 "${args[@]}"); fi
bash hack/deps/bmc.sh
cargo build -q --profile "$cargo_profile" -p controller --bin groundwork-controller
export GROUNDWORK_CONTROLLER_BIN="$CARGO_TARGET_DIR/$profile/groundwork-controller"
export PATH="$(hack/k8s-bins/build.sh):$PATH"
if [[ -z "$cp_dir" ]]; then
  cp_dir="$(mktemp -d /tmp/groundwork-bench-cp.XXXXXX)"
  trap 'hack/controlplane.sh down "$cp_dir" >/dev/null 2>&1' EXIT
  hack/controlplane.sh up "$cp_dir"
  kubectl --kubeconfig "$cp_dir/kubeconfig" apply --server-side -f charts/groundwork/crds/ >/dev/null
fi
GROUNDWORK_TEST_CONTROLPLANE="$cp_dir" cargo bench -q --profile "$cargo_profile" -p e2e --bench bmc_fleet -- "${args[@]}"
