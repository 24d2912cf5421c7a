#!/usr/bin/env bash
# Prints the routing crate's timing figures (ours vs. the same change by hand
# with birdc) against real BGP peers in network namespaces. Needs root.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$GW_ROOT"
bash hack/deps/routing.sh >/dev/null
cargo bench -p routing --bench routing
