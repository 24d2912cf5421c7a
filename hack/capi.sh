#!/usr/bin/env bash
# Cluster API (core + the kubeadm bootstrap provider, CABPK) as local processes against a control
# plane made by `hack/controlplane.sh up DIR --cluster`, without cert-manager:
#
#   hack/capi.sh up   DIR   install the CRDs and webhook configurations, start both, wait for /readyz
#   hack/capi.sh down DIR   stop both by PID and remove their webhook configurations (CRDs stay)
#
# Webhooks: both serve on 127.0.0.1 (their build binds there) with a certificate signed by the lab
# CA (DIR/capi/certs); the webhook configurations and the CRDs' conversion webhooks are rewritten to
# https://127.0.0.1:<port>/<path> with that CA. Health and metrics (plain HTTP) on loopback ports
# named in DIR/capi/<name>.ports. Logs: DIR/capi-<name>.log; PIDs: DIR/capi-<name>.pid.
# Both run as the lab admin (DIR/kubeconfig, system:masters), not under CAPI's own RBAC.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
(($# == 2)) || gw_usage
cmd="$1" dir="$2"
[[ -f "$dir/kubeconfig" ]] || gw_die "$dir has no control plane (hack/controlplane.sh up $dir --cluster)"
dir="$(cd "$dir" && pwd)"
state="$dir/capi"
providers=(core bootstrap-kubeadm)
kc() { "$dir/kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }

stop() {
  local p
  for p in "${providers[@]}"; do
    if [[ -f "$dir/capi-$p.pid" ]]; then
      gw_stop_pid "$(cat "$dir/capi-$p.pid")"
      rm -f "$dir/capi-$p.pid"
    fi
  done
}

case "$cmd" in
down)
  stop
  # Webhooks that no one serves would refuse every write of a CAPI object.
  kc delete --ignore-not-found --wait=false mutatingwebhookconfiguration capi-mutating-webhook-configuration \
    capi-kubeadm-bootstrap-mutating-webhook-configuration >/dev/null 2>&1 || true
  kc delete --ignore-not-found --wait=false validatingwebhookconfiguration capi-validating-webhook-configuration \
    capi-kubeadm-bootstrap-validating-webhook-configuration >/dev/null 2>&1 || true
  rm -rf "$state"
  exit 0 ;;
up) ;;
-h | --help) gw_usage 0 ;;
*) gw_usage 2 "unknown command $cmd" ;;
esac

[[ -f "$dir/kube-controller-manager.pid" ]] || gw_die "$dir was not started with --cluster (hack/controlplane.sh up $dir --cluster)"
if [[ -f "$dir/capi-core.pid" ]] && kill -0 "$(cat "$dir/capi-core.pid")" 2>/dev/null; then
  echo "Cluster API already running in $dir" >&2; exit 0
fi
bins="$("$GW_ROOT/hack/capi-bins/build.sh")"
mkdir -p "$state/certs"
pki="$dir/pki" certs="$state/certs"
if [[ ! -f "$certs/tls.crt" ]]; then
  openssl req -newkey rsa:2048 -nodes -subj "/CN=capi-webhooks" -keyout "$certs/tls.key" -out "$certs/tls.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$certs/san.ext"
  openssl x509 -req -in "$certs/tls.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$certs/san.ext" -out "$certs/tls.crt" 2>/dev/null
fi

# CRDs first (server-side: they are too large for the last-applied annotation), then the
# providers, then their webhook configurations once they answer.
declare -A prefix=([core]=capi- [bootstrap-kubeadm]=capi-kubeadm-bootstrap-)
for p in "${providers[@]}"; do
  read -r webhook health metrics < <(echo "$(gw_free_port) $(gw_free_port) $(gw_free_port)")
  echo "$webhook $health $metrics" > "$state/$p.ports"
  "$bins/capi-manifests" loopback "https://127.0.0.1:$webhook" "$pki/ca.crt" "${prefix[$p]}" \
    "$bins/crds/$p.yaml" >"$state/$p-crds.yaml"
  "$bins/capi-manifests" loopback "https://127.0.0.1:$webhook" "$pki/ca.crt" "${prefix[$p]}" \
    "$bins/webhooks/$p.yaml" >"$state/$p-webhooks.yaml"
  kc apply --server-side --force-conflicts -f "$state/$p-crds.yaml" >/dev/null
done
kc wait --for condition=Established --timeout 60s -f "$state/core-crds.yaml" -f "$state/bootstrap-kubeadm-crds.yaml" >/dev/null

for p in "${providers[@]}"; do
  read -r webhook health metrics <"$state/$p.ports"
  "$bins/capi-$p" --kubeconfig "$dir/kubeconfig" --leader-elect=false \
    --webhook-port "$webhook" --webhook-cert-dir "$certs" \
    --health-addr "127.0.0.1:$health" --diagnostics-address "127.0.0.1:$metrics" --insecure-diagnostics \
    >"$dir/capi-$p.log" 2>&1 &
  echo $! > "$dir/capi-$p.pid"
done
for _ in $(seq 600); do
  ok=1
  for p in "${providers[@]}"; do
    kill -0 "$(cat "$dir/capi-$p.pid")" 2>/dev/null || { tail -20 "$dir/capi-$p.log" >&2; stop; gw_die "capi-$p exited; see $dir/capi-$p.log"; }
    read -r webhook health metrics <"$state/$p.ports"
    curl -sf "http://127.0.0.1:$health/readyz" >/dev/null || ok=0
  done
  ((ok)) && break
  sleep 0.2
done
((ok)) || { stop; gw_die "Cluster API not ready after 120 s; see $dir/capi-*.log"; }
for p in "${providers[@]}"; do kc apply --server-side --force-conflicts -f "$state/$p-webhooks.yaml" >/dev/null; done
echo "Cluster API ready: core and CABPK (webhooks on 127.0.0.1:$(cut -d' ' -f1 "$state/core.ports") and :$(cut -d' ' -f1 "$state/bootstrap-kubeadm.ports"))" >&2
