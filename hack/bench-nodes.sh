#!/usr/bin/env bash
# Nodes benchmark (not a test; root; ~15 min): a MachineDeployment scaled 0 -> N (N = 1 and 2)
# until N Nodes are Ready and N app replicas Running, through Groundwork (claim, netboot, the
# agent writes the node OS, disk boot, check-in, kubeadm join with Cluster API's bootstrap data),
# beside the baseline measured in the same run on the same networks and control plane: the same
# node OS booted straight from its kernel + initrd (QEMU -kernel: no firmware, no netboot, no
# image write) with a hand-written kubeadm JoinConfiguration. Prints both phase breakdowns and
# the ratio (target <= 2x). The rig is the cluster test's (tests/src/cluster.rs), release build.
#   hack/bench-nodes.sh [--nodes 1,2]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$GW_ROOT"
export CARGO_INCREMENTAL=0
nodes=1,2
while (($#)); do
  case "$1" in
    --nodes) nodes="$2"; shift 2 ;;
    -h | --help) gw_usage 0 ;;
    *) gw_usage ;;
  esac
done
gw_need_root "network namespaces, taps, QEMU"
hack/deps/boot.sh >/dev/null
gw_env
export PATH="$(hack/k8s-bins/build.sh):$PATH"
hack/capi-bins/build.sh >/dev/null
cargo build -q --release -p controller --bin groundwork-controller
cargo bench -q -p e2e --bench nodes -- --nodes "$nodes"
