#!/usr/bin/env bash
# Provisioning benchmark (not a test; root): power-on -> Provisioned of 1 and 2 QEMU servers
# through Groundwork (DHCP, iPXE, the agent's ramdisk, image + config drive, disk boot through
# the BMC, first check-in), per image format, against the bare cycle measured in the same run
# (hack/bench/bare-cycle.sh: busybox installer `wget | dd` of the same raw image, then disk
# boot). Prints every figure beside its baseline and the ratio (target: <= 1.5x). Each run has
# a warm twin: the same servers from a warm pool (standby in the ramdisk, issue 16), spec.image
# -> Provisioned with kexec, beside the cold run's figure (target: warm <= 0.3x cold).
#   hack/bench-provision.sh [--servers 1,2] [--formats raw,raw+zstd] [--controlplane DIR]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$GW_ROOT"
export CARGO_INCREMENTAL=0
servers=1,2; formats=raw,raw+zstd; cp_dir=""
while (($#)); do
  case "$1" in
    --servers) servers="$2"; shift 2 ;;
    --formats) formats="$2"; shift 2 ;;
    --controlplane) cp_dir="$2"; shift 2 ;;
    -h | --help) gw_usage 0 ;;
    *) gw_usage ;;
  esac
done
gw_need_root "network namespaces, taps"
hack/deps/boot.sh >/dev/null
export PATH="$(hack/k8s-bins/build.sh):$PATH"
gw_controlplane
out="$(mktemp /tmp/groundwork-bench-provision.XXXXXX)"
echo "== Groundwork (release build), servers $servers, formats $formats"
GROUNDWORK_TEST_CONTROLPLANE="$cp_dir" cargo bench -q -p e2e --bench provision -- \
  --servers "$servers" --formats "$formats" | tee "$out"
echo "== bare cycle (busybox wget | dd of the raw image, then disk boot), same machine, right after"
IFS=, read -ra ns <<<"$servers"
for n in "${ns[@]}"; do hack/bench/bare-cycle.sh --vms "$n" | tee -a "$out"; done
echo
echo "== power-on -> provisioned (s), Groundwork vs bare cycle (target <= 1.5x)"
awk '
  /^RESULT ours/ { for (i = 3; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }; ours[f["vms"] " " f["format"]] = f["total_s"] }
  /^bare-cycle .* max / { for (i = 2; i <= NF; i++) { split($i, kv, "="); g[kv[1]] = kv[2] }; bare[g["vms"]] = g["total_s"] }
  END {
    printf "%-5s %-9s %10s %10s %7s\n", "vms", "format", "groundwork", "bare", "ratio"
    for (k in ours) { split(k, p, " "); b = bare[p[1]]
      printf "%-5s %-9s %10.1f %10.1f %7.2f\n", p[1], p[2], ours[k], b, (b > 0 ? ours[k] / b : 0) }
  }' "$out"
echo
echo "== spec.image -> provisioned (s), warm pool (kexec) vs cold (power-on), same run (target <= 0.3x)"
awk '
  /^RESULT (ours|warm)/ { for (i = 3; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }; t[$2 " " f["vms"] " " f["format"]] = f["total_s"] }
  END {
    printf "%-5s %-9s %10s %10s %7s\n", "vms", "format", "warm", "cold", "ratio"
    for (k in t) { split(k, p, " "); if (p[1] != "warm") continue; c = t["ours " p[2] " " p[3]]
      printf "%-5s %-9s %10.1f %10.1f %7.2f\n", p[2], p[3], t[k], c, (c > 0 ? t[k] / c : 0) }
  }' "$out"
rm -f "$out"
