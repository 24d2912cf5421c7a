#!/usr/bin/env bash
# The whole test suite: formatting, lints, CRD drift, unit tests and the integration tests
# against a real kube-apiserver + etcd (and the other real peers), plus benchmarks at smoke size.
# Installs what it needs when missing. Prints how long each stage took.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$GW_ROOT"
export CARGO_TERM_COLOR=never
# Incremental state is rewritten on every change and is what fills the disk of a cached
# CI machine (tens of GB after a few runs); whole-crate caching is enough here.
export CARGO_INCREMENTAL=0
declare -a timings=()
stage() {
  local name="$1"; shift
  local t0=$SECONDS
  # On stderr: a stage whose output is sent to /dev/null still shows its start and time.
  echo "=== $name" >&2
  "$@"
  timings+=("$(printf '%-28s %4d s' "$name" $((SECONDS - t0)))")
  echo "=== $name: $((SECONDS - t0)) s" >&2
}
# CI's budget on a 2-core machine (the whole run must stay far inside CI's 90 min limit).
# Warm = ~/.cache/groundwork kept from an earlier run (cargo target, Go binaries, images).
budget_cold=3600 budget_warm=1500
warm=0; [[ -d "$CARGO_TARGET_DIR/debug" ]] && warm=1
t_start=$SECONDS
report() {
  local total=$((SECONDS - t_start)) kind=cold budget=$budget_cold
  ((warm)) && { kind=warm; budget=$budget_warm; }
  echo; echo "stage timings:"; printf '  %s\n' "${timings[@]}"
  printf '  %-28s %4d s   (budget, %s cache: %d s%s)\n' total "$total" "$kind" "$budget" \
    "$( ((total > budget)) && echo ' — OVER BUDGET' )"
}
trap report EXIT

deps() {
  hack/deps/base.sh
  for script in hack/deps/*.sh; do [[ "$script" == hack/deps/base.sh ]] || "$script"; done
}
stage deps deps
# Cargo judges a workspace crate fresh by mtimes: every file of a fresh clone is newer than a
# cached target, so every workspace crate would be rebuilt (minutes on 2 cores) though most did
# not change. The ledger holds `git ls-files -s` (path → blob hash) of the tree the cached target
# was built from; it is written only when a whole run passed (every build of the run finished)
# and removed as soon as it is read. Files whose content is the one in the ledger get an old
# mtime, so cargo rebuilds only the crates whose files changed. No ledger: everything is new.
# Except files naming CARGO_MANIFEST_DIR: `env!` bakes the checkout's path into the binary and
# cargo does not count a new path as a change, so their targets are rebuilt from this clone
# (a test binary of an earlier clone would look for its files in a directory that is gone).
ledger="$CARGO_TARGET_DIR/.groundwork-sources"
same_content_is_old() {
  [[ -s "$ledger" ]] && git rev-parse --git-dir >/dev/null 2>&1 || return 0
  local same paths
  same="$(mktemp)" paths="$(mktemp)"
  comm -12 <(sort "$ledger") <(git ls-files -s | sort) | cut -f2- >"$same"
  xargs -r -d '\n' grep -l -F CARGO_MANIFEST_DIR -- <"$same" >"$paths" || true
  grep -v -x -F -f "$paths" "$same" >"$same.old" || true
  xargs -r -d '\n' touch -h -d @946684800 <"$same.old" || true  # a file left new is rebuilt: safe
  echo "files unchanged since the cached build: $(wc -l <"$same.old") of $(git ls-files | wc -l) made old" \
    "($(wc -l <"$paths") naming CARGO_MANIFEST_DIR left new)"
  rm -f "$same" "$same.old" "$paths"
}
same_content_is_old
rm -f "$ledger"
record_ledger() { mkdir -p "$CARGO_TARGET_DIR" && git ls-files -s >"$ledger"; }
gw_env  # the Go toolchain and the Python virtual environment that deps made sure of
# Kubernetes (control plane, kubeadm, kubelet) and Cluster API (hack/capi-bins/build.sh):
# cached steps.
stage control-plane-binaries hack/k8s-bins/build.sh >/dev/null
stage capi-binaries hack/capi-bins/build.sh >/dev/null
bins="$(hack/k8s-bins/build.sh)"
export PATH="$bins:$PATH"
stage fmt cargo fmt --all -- --check
stage node-os-unit bash -c 'cd hack/node-os && test -z "$(gofmt -l .)" && go vet ./... && go test ./...'
# The node OS image the cluster test writes to its servers (cached; the test asks for it again).
stage node-os-image bash -c 'd="$(mktemp -d)" && hack/node-os/build.sh "$d/node-os.raw" >/dev/null && rm -rf "$d"'
# Compile once: the debug build serves the CRD drift check (crdgen), the tests and the smoke
# benchmarks; clippy's check-mode artifacts are the only second compilation.
stage build cargo build --workspace --all-targets --locked
stage crd-drift hack/crdgen.sh --check
stage clippy cargo clippy --workspace --all-targets --locked -- -D warnings
# The controller image (hack/image/build.sh: the static release build is its cost; tests/tests/
# image.rs builds it twice more, in seconds, to compare digests).
stage image bash -c 'd="$(mktemp -d)" && hack/image/build.sh "$d/image" >/dev/null && rm -rf "$d"'

cp_dir="$(mktemp -d /tmp/groundwork-test-cp.XXXXXX)"
cleanup() {
  local rc=$?
  hack/controlplane.sh down "$cp_dir" >/dev/null 2>&1 || true
  ((rc != 0)) || record_ledger
  report
}
trap cleanup EXIT
stage control-plane-up hack/controlplane.sh up "$cp_dir"
stage install-crds kubectl --kubeconfig "$cp_dir/kubeconfig" apply --server-side -f charts/groundwork/crds/
# Cluster API's CRDs (cached with its binaries): the provider's tests create Machines and Clusters.
capi_bins="$(hack/capi-bins/build.sh)"  # cached by the capi-binaries stage
stage install-capi-crds kubectl --kubeconfig "$cp_dir/kubeconfig" apply --server-side -f "$capi_bins/crds/core.yaml"
export GROUNDWORK_TEST_CONTROLPLANE="$cp_dir"
stage tests cargo test --workspace --locked --no-fail-fast -- --test-threads 2
stage bench-smoke hack/bench-scale.sh --racks 2 --servers 10 --controlplane "$cp_dir"
stage bench-bmc-smoke hack/bench-bmc-fleet.sh --servers 20 --emulators 2 --controlplane "$cp_dir"
stage bench-bmc-strict-smoke hack/bench-bmc-fleet.sh --servers 20 --emulator strict --controlplane "$cp_dir"
stage bench-dhcp-smoke hack/bench-dhcp.sh --smoke --controlplane "$cp_dir"
stage fuzz-dhcp hack/fuzz.sh 30
