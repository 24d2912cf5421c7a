#!/usr/bin/env bash
# A real local Kubernetes control plane: etcd + kube-apiserver on free loopback ports.
#
#   hack/controlplane.sh up   DIR   start (if not running), write DIR/kubeconfig, wait for /readyz
#   hack/controlplane.sh down DIR   stop both processes by PID and remove DIR's state
#   hack/controlplane.sh env  DIR   print `export KUBECONFIG=...` lines
#
# Certificates are generated with openssl; the admin identity is a client certificate in
# O=system:masters. Service-account tokens are signed with DIR/sa.key (TokenRequest works).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
(($# == 2)) || gw_usage
cmd="$1" dir="$2"
here="$GW_ROOT/hack"
mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"

stop() {
  for p in apiserver etcd; do
    if [[ -f "$dir/$p.pid" ]]; then
      gw_stop_pid "$(cat "$dir/$p.pid")"
      rm -f "$dir/$p.pid"
    fi
  done
}

case "$cmd" in
down) stop; rm -rf "$dir"; exit 0 ;;
env) echo "export KUBECONFIG=$dir/kubeconfig"; exit 0 ;;
up) ;;
*) gw_usage 2 "unknown command $cmd" ;;
esac

if [[ -f "$dir/apiserver.pid" ]] && kill -0 "$(cat "$dir/apiserver.pid")" 2>/dev/null; then
  echo "control plane already running in $dir" >&2; exit 0
fi
bins="$("$here/k8s-bins/build.sh")"
command -v openssl >/dev/null || gw_apt_install openssl >&2

pki="$dir/pki"; mkdir -p "$pki"
if [[ ! -f "$pki/ca.crt" ]]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=groundwork-lab-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' > "$pki/san.ext"
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$pki/san.ext" -out "$pki/apiserver.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=lab-admin" -keyout "$pki/admin.key" -out "$pki/admin.csr" 2>/dev/null
  # rustls accepts only X.509 v3 certificates: give the client certificate extensions.
  printf 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n' > "$pki/client.ext"
  openssl x509 -req -in "$pki/admin.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 30 \
    -extfile "$pki/client.ext" -out "$pki/admin.crt" 2>/dev/null
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
fi

etcd_port="$(gw_free_port)"; peer_port="$(gw_free_port)"; api_port="$(gw_free_port)"
"$bins/etcd" --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
  --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" --initial-cluster "default=http://127.0.0.1:$peer_port" \
  --unsafe-no-fsync --quota-backend-bytes 8589934592 >"$dir/etcd.log" 2>&1 &
echo $! > "$dir/etcd.pid"
echo "http://127.0.0.1:$etcd_port" > "$dir/etcd-url"

"$bins/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" --cert-dir "$pki" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --secure-port "$api_port" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
  --service-cluster-ip-range 10.96.0.0/24 --service-account-issuer https://kubernetes.default.svc \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --client-ca-file "$pki/ca.crt" --authorization-mode RBAC --disable-admission-plugins ServiceAccount \
  --max-requests-inflight 2000 --max-mutating-requests-inflight 1000 \
  --audit-log-path "$dir/audit.log" --audit-policy-file "$here/audit-policy.yaml" \
  >"$dir/apiserver.log" 2>&1 &
echo $! > "$dir/apiserver.pid"

cat > "$dir/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: lab
  context: {cluster: lab, user: admin}
current-context: lab
KC
ln -sf "$bins/kubectl" "$dir/kubectl"; ln -sf "$bins/helm" "$dir/helm" 2>/dev/null || true

for _ in $(seq 600); do
  if "$bins/kubectl" --kubeconfig "$dir/kubeconfig" get --raw /readyz >/dev/null 2>&1; then
    echo "control plane ready: https://127.0.0.1:$api_port (KUBECONFIG=$dir/kubeconfig)" >&2; exit 0
  fi
  kill -0 "$(cat "$dir/apiserver.pid")" 2>/dev/null || { tail -20 "$dir/apiserver.log" >&2; stop; exit 1; }
  sleep 0.2
done
echo "kube-apiserver not ready after 120 s; see $dir/apiserver.log" >&2; tail -20 "$dir/apiserver.log" >&2; stop; exit 1
