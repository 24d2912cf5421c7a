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
if ((racks >= 20)); then profile=release; cargo_profile=release
else profile=debug; cargo_profile=dev; args+=(--quiet-seconds 10); fi
cargo build -q --profile "$cargo_profile" -p controller --bin groundwork-controller
export GROUNDWORK_CONTROLLER_BIN="$CARGO_TARGET_DIR/$profile/groundwork-controller"
export PATH="$(hack/k8s-bins/build.sh):$PATH"
gw_controlplane
GROUNDWORK_TEST_CONTROLPLANE="$cp_dir" cargo bench -q --profile "$cargo_profile" -p e2e --bench scale -- "${args[@]}"
