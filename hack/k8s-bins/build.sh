#!/usr/bin/env bash
# Builds kube-apiserver, etcd, kubectl, kube-controller-manager, kube-scheduler, kubeadm, kubelet, kube-proxy
# (and helm) from Go modules into a cache keyed by go.mod, go.sum and the mains.
# Prints the directory holding the binaries on stdout. Second runs cost nothing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
here="$GW_ROOT/hack/k8s-bins"
gw_go  # Go >= 1.26: the machine's, or fetched once from the Go module proxy
export CGO_ENABLED=0
key="$(cat "$here/go.mod" "$here/go.sum" "$here"/cmd/*/main.go | sha256sum | cut -c1-16)"
out="$GW_CACHE/k8s-bins/$key"
bins=(kube-apiserver etcd kubectl kube-controller-manager kube-scheduler kubeadm kubelet kube-proxy)
all_present() {
  local b
  for b in "${bins[@]}" helm; do [[ -x "$1/$b" ]] || return 1; done
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
mkdir -p "$out.tmp"
kv=v1.36.3
ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld="$ld -X $p.gitVersion=$kv -X $p.gitMajor=1 -X $p.gitMinor=36 -X $p.gitTreeState=clean"
done
cd "$here"
start=$SECONDS
for b in "${bins[@]}"; do
  [[ -x "$out.tmp/$b" ]] || go build -trimpath -ldflags "$ld" -o "$out.tmp/$b" "./cmd/$b" >&2
  echo "built $b ($((SECONDS-start)) s)" >&2
done
# Helm has no replace directives: go install works.
[[ -x "$out.tmp/helm" ]] || GOBIN="$out.tmp" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v3.22.0" helm.sh/helm/v3/cmd/helm@v3.22.0 >&2
echo "built helm ($((SECONDS-start)) s)" >&2
rm -rf "$out"; mv "$out.tmp" "$out"
echo "$out"
