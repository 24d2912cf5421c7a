#!/usr/bin/env bash
# LoadBalancer announcement and withdrawal times (issue 15) against real peers, beside the same
# steps done by hand with birdc on the same site: a control plane, two lab nodes (kubelet,
# kube-proxy, the hello app), BIRD driven by the edge daemon, ISP A (GoBGP) and ISP B (FRR, whose
# kernel gets the route, so the request follows it). Prints each figure beside its baseline.
# Needs root.
#
#   hack/bench-lb.sh [--rounds N]     (default 5; medians)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$GW_ROOT"
rounds=5
while (($#)); do
  case "$1" in
  --rounds) rounds="$2"; shift 2 ;;
  *) gw_usage 2 "unknown option $1" ;;
  esac
done
bash hack/deps/routing.sh >/dev/null
gw_env
export PATH="$(hack/k8s-bins/build.sh):$PATH"
log="$(mktemp /tmp/bench-lb.XXXXXX)"
if ! GW_BENCH_LB_ROUNDS="$rounds" cargo test -q -p edge --test service_traffic -- --ignored --exact bench_lb --nocapture >"$log" 2>&1; then
  tail -60 "$log" >&2
  gw_die "bench-lb failed (full output: $log)"
fi
grep -E '^(bench-lb|round|hand round|Service created|announce|withdraw|\(by hand|  \(scaled| {20,})' "$log"
rm -f "$log"
