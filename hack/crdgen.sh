#!/usr/bin/env bash
# Writes the CRDs generated from crds/ into the chart (`--check`: fail when the committed YAML is stale).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$GW_ROOT"
out=charts/groundwork/crds/groundwork.yaml
tmp="$(mktemp)"; trap 'rm -f "$tmp"' EXIT
cargo run -q -p controller --bin crdgen > "$tmp"
if [[ "${1:-}" == "--check" ]]; then
  if ! diff -u "$out" "$tmp" >&2; then
    echo "CRD drift: $out is stale; run hack/crdgen.sh and commit the result" >&2; exit 1
  fi
  echo "CRDs up to date"
else
  cp "$tmp" "$out"; echo "wrote $out"
fi
