#!/usr/bin/env bash
# Builds Cluster API's core controller and its kubeadm bootstrap provider (CABPK) from Go modules,
# with their CRDs (contract labels added, as CAPI's kustomizations do) and webhook manifests, into
# a cache keyed by this folder's files. Prints the directory on stdout:
#   capi-core, capi-bootstrap-kubeadm, capi-manifests (see cmd/capi-manifests),
#   crds/{core,bootstrap-kubeadm}.yaml, webhooks/{core,bootstrap-kubeadm}.yaml, metadata.yaml
# Second runs cost nothing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
here="$GW_ROOT/hack/capi-bins"
gw_go
export CGO_ENABLED=0
key="$(cat "$here/build.sh" "$here/go.mod" "$here/go.sum" "$here"/cmd/*/main.go | sha256sum | cut -c1-16)"
out="$GW_CACHE/capi-bins/$key"
all_present() {
  local f
  for f in capi-core capi-bootstrap-kubeadm capi-manifests crds/core.yaml crds/bootstrap-kubeadm.yaml \
    webhooks/core.yaml webhooks/bootstrap-kubeadm.yaml; do
    [[ -s "$1/$f" ]] || return 1
  done
}
if all_present "$out"; then
  echo "$out"; exit 0
fi
mkdir -p "$(dirname "$out")"
exec 9>"$out.lock"
flock 9
if all_present "$out"; then
  echo "$out"; exit 0
fi
cd "$here"
go mod download sigs.k8s.io/cluster-api >&2
src="$(go list -m -f '{{.Dir}}' sigs.k8s.io/cluster-api)"
ver="$(go list -m -f '{{.Version}}' sigs.k8s.io/cluster-api)"
rm -rf "$out.tmp"; mkdir -p "$out.tmp/crds" "$out.tmp/webhooks"
# The mains give the webhook server no host, so it would listen on every interface. Go refuses
# overlays of files in the module cache: build in a copy of this module whose cluster-api is
# replaced by a copy of the module with Host 127.0.0.1 added to both mains.
work="$out.tmp/src"
mkdir -p "$work"
cp -r "$src" "$work/cluster-api"; chmod -R u+w "$work/cluster-api"
for m in core bootstrap/kubeadm; do
  sed -i 's/^\(\t*\)Port: *webhookPort,$/\1Host: "127.0.0.1",\n\1Port: webhookPort,/' "$work/cluster-api/$m/main.go"
  grep -q 'Host: "127.0.0.1"' "$work/cluster-api/$m/main.go" || gw_die "$m/main.go: webhook server options not found (Cluster API changed?)"
done
cp -r go.mod go.sum cmd "$work/"
cd "$work"
go mod edit -replace sigs.k8s.io/cluster-api=./cluster-api
ld="-s -w"
for v in "gitVersion=$ver" "gitMajor=$(cut -d. -f1 <<<"${ver#v}")" "gitMinor=$(cut -d. -f2 <<<"$ver")" gitTreeState=clean; do
  ld="$ld -X sigs.k8s.io/cluster-api/version.$v"
done
start=$SECONDS
build() { # name package
  go build -trimpath -ldflags "$ld" -o "$out.tmp/$1" "$2" >&2
  echo "built $1 ($((SECONDS - start)) s)" >&2
}
build capi-manifests ./cmd/capi-manifests
build capi-core sigs.k8s.io/cluster-api/core
build capi-bootstrap-kubeadm sigs.k8s.io/cluster-api/bootstrap/kubeadm
for p in core:core bootstrap-kubeadm:bootstrap/kubeadm; do
  "$out.tmp/capi-manifests" crds "$src/${p#*:}/config/crd" >"$out.tmp/crds/${p%%:*}.yaml"
  cp "$src/${p#*:}/config/webhook/manifests.yaml" "$out.tmp/webhooks/${p%%:*}.yaml"
done
cp "$src/metadata.yaml" "$out.tmp/"
rm -rf "$work"
chmod -R u+w,go+rX "$out.tmp"
rm -rf "$out"; mv "$out.tmp" "$out"
echo "$out"
