#!/usr/bin/env bash
# Fleet benchmark of the BMC drivers against one sushy-tools process emulating
# 60 Redfish systems: identity + power on for all, concurrency N vs sequential.
# Not a timed test; prints each figure beside the baseline from the same run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$GW_ROOT"
bash hack/deps/bmc.sh
exec cargo bench -p bmc --bench fleet "$@"
