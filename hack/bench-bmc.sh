#!/usr/bin/env bash
# Fleet benchmark of the BMC drivers against one sushy-tools process emulating
# 60 Redfish systems: identity + power on for all, concurrency N vs sequential.
# Not a timed test; prints each figure beside the baseline from the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/deps/bmc.sh
exec cargo bench -p bmc --bench fleet "$@"
