#!/usr/bin/env bash
# The local lab: a real control plane, Groundwork installed through its chart, the controller
# running under the chart's ServiceAccount, and the example site applied.
#
#   hack/lab.sh up     bring everything up and show the site converging (the README's main command)
#   hack/lab.sh down   stop every process the lab started and remove its state
#   hack/lab.sh status show the site
#
# State lives in .lab/ (kubeconfig, logs, PIDs). Nothing listens outside 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"; lab="$root/.lab"
export GOTOOLCHAIN=local CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/groundwork/target}"
cmd="${1:-up}"

kc() { kubectl --kubeconfig "$lab/kubeconfig" "$@"; }

down() {
  if [[ -f "$lab/controller.pid" ]]; then
    kill "$(cat "$lab/controller.pid")" 2>/dev/null || true; rm -f "$lab/controller.pid"
  fi
  hack/controlplane.sh down "$lab/cp" >/dev/null 2>&1 || true
  rm -rf "$lab"
  echo "lab stopped"
}

case "$cmd" in
down) down; exit 0 ;;
status) export PATH="$(hack/k8s-bins/build.sh):$PATH"; kc get groundwork -A; exit 0 ;;
up) ;;
*) echo "usage: hack/lab.sh up|down|status" >&2; exit 2 ;;
esac

t0=$SECONDS
step() { echo "[$((SECONDS - t0))s] $*"; }
step "installing missing tools"; hack/deps/base.sh
step "building the control plane binaries (cached under ~/.cache/groundwork)"
export PATH="$(hack/k8s-bins/build.sh):$PATH"
step "building the controller"; cargo build -q -p controller --bin groundwork-controller
mkdir -p "$lab"
step "starting etcd + kube-apiserver"; hack/controlplane.sh up "$lab/cp"
ln -sf "$lab/cp/kubeconfig" "$lab/kubeconfig"
step "installing Groundwork with Helm (CRDs, RBAC, ServiceAccount)"
kc create namespace groundwork-system --dry-run=client -o yaml | kc apply -f - >/dev/null
KUBECONFIG="$lab/kubeconfig" helm upgrade --install groundwork charts/groundwork -n groundwork-system --set replicas=0 >/dev/null
# No Pods run on a bare API server: run the controller binary locally under the chart's
# ServiceAccount token, with exactly the chart's permissions.
token="$(kc -n groundwork-system create token groundwork-controller --duration 24h)"
server="$(kc config view -o jsonpath='{.clusters[0].cluster.server}')"
cat > "$lab/controller.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: lab, cluster: {server: "$server", certificate-authority: "$lab/cp/pki/ca.crt"}}]
users: [{name: groundwork-controller, user: {token: "$token"}}]
contexts: [{name: lab, context: {cluster: lab, user: groundwork-controller, namespace: groundwork-system}}]
current-context: lab
KC
chmod 600 "$lab/controller.kubeconfig"
step "starting the controller (log: .lab/controller.log, metrics: http://127.0.0.1:18080/metrics)"
KUBECONFIG="$lab/controller.kubeconfig" nohup "$CARGO_TARGET_DIR/debug/groundwork-controller" \
  --metrics-addr 127.0.0.1:18080 --lease-name groundwork-controller --lease-namespace groundwork-system \
  >"$lab/controller.log" 2>&1 &
echo $! > "$lab/controller.pid"
step "applying examples/"
kc apply -f examples/ >/dev/null
for _ in $(seq 120); do
  ready="$(kc -n fra1 get rack a01 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)"
  [[ "$ready" == "True" ]] && break
  sleep 0.5
done
step "site fra1:"
kc get groundwork -n fra1
cat <<EOF2

The lab is up ($((SECONDS - t0)) s).
  export KUBECONFIG=$lab/kubeconfig PATH=$(dirname "$(command -v kubectl)"):\$PATH
  kubectl get groundwork -A                 # racks, servers, links
  kubectl describe rack -n fra1 a01         # conditions and events
  kubectl explain server.spec               # the API, documented
  curl -s 127.0.0.1:18080/metrics           # controller metrics
  tail -f .lab/controller.log               # controller log
  hack/lab.sh down                          # stop everything
EOF2
