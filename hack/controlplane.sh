#!/usr/bin/env bash
# A real local Kubernetes control plane: etcd + kube-apiserver on free loopback ports.
#
#   hack/controlplane.sh up   DIR [--cluster [--node-address IP] [--node-grace SECONDS]]
#                                   start (if not running), write DIR/kubeconfig, wait for /readyz
#   hack/controlplane.sh down DIR   stop every process by PID (hack/capi.sh's too) and remove DIR
#   hack/controlplane.sh env  DIR   print `export KUBECONFIG=...` lines
#   hack/controlplane.sh user DIR NAME SUBJECT
#                                   a client certificate for SUBJECT (e.g. /O=system:nodes/CN=system:node:n1)
#                                   and DIR/NAME.kubeconfig using it (a running control plane's address)
#
# Certificates are generated with openssl; the admin identity is a client certificate in
# O=system:masters. Service-account tokens are signed with DIR/pki/sa.key (TokenRequest works).
#
# --cluster: a cluster that nodes can join. kube-controller-manager (the default controllers plus
# the bootstrap signer and token cleaner; CSRs signed by the lab CA, kubelet client CSRs approved;
# node pod CIDRs from 10.244.0.0/16) and kube-scheduler run too (DIR/<name>.log, DIR/<name>.pid,
# health on loopback ports in DIR/<name>.port), the API server accepts bootstrap tokens and
# authorizes with Node,RBAC (+ NodeRestriction), and the ClusterRoleBindings of kubelet TLS
# bootstrap are applied as kubeadm makes them.
# --node-address IP: the API server listens on IP instead of 127.0.0.1, IP is in its certificate
# and in DIR/kubeconfig. IP must already be an address of this host on an interface into a
# network namespace of ours (gw_host_veth in hack/lib.sh), never an external one.
# --node-grace SECONDS: a Node is NotReady after SECONDS without a heartbeat (kube-controller-
# manager's --node-monitor-grace-period; Kubernetes' default 50 s). hack/lab-node.sh's kubelets
# renew their Lease every 3 s, so 15 s is safe for them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
(($# >= 2)) || gw_usage
cmd="$1" dir="$2"
shift 2
cluster=0 node_ip="" node_grace=""
if [[ "$cmd" == user ]]; then
  (($# == 2)) || gw_usage 2 "user needs NAME SUBJECT"
  user_name="$1" user_subject="$2"; shift 2
fi
while (($#)); do
  case "$1" in
  --cluster) cluster=1 ;;
  --node-address) node_ip="${2:?--node-address needs an IP}"; shift ;;
  --node-grace) node_grace="${2:?--node-grace needs SECONDS}"; shift ;;
  *) gw_usage 2 "unknown option $1" ;;
  esac
  shift
done
[[ -z "$node_ip" ]] || ((cluster)) || gw_usage 2 "--node-address needs --cluster"
[[ -z "$node_grace" ]] || ((cluster)) || gw_usage 2 "--node-grace needs --cluster"
here="$GW_ROOT/hack"
mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"

stop() {
  for p in capi-core capi-bootstrap-kubeadm kube-scheduler kube-controller-manager apiserver etcd; do
    if [[ -f "$dir/$p.pid" ]]; then
      gw_stop_pid "$(cat "$dir/$p.pid")"
      rm -f "$dir/$p.pid"
    fi
  done
}

pki="$dir/pki"; mkdir -p "$pki"
client_cert() { # NAME SUBJECT: pki/NAME.{key,crt}, a client certificate signed by the lab CA
  openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 30 \
    -extfile "$pki/client.ext" -out "$pki/$1.crt" 2>/dev/null
}
kubeconfig() { # FILE USER: a kubeconfig for the client certificate pki/USER.{crt,key}
  cat > "$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: https://$api_ip:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $pki/$2.crt
    client-key: $pki/$2.key
contexts:
- name: lab
  context: {cluster: lab, user: $2}
current-context: lab
KC
}
case "$cmd" in
user)
  [[ -f "$dir/kubeconfig" ]] || gw_die "no control plane in $dir"
  server="$(sed -n 's/^ *server: https:\/\///p' "$dir/kubeconfig")"
  api_ip="${server%:*}" api_port="${server##*:}"
  client_cert "$user_name" "$user_subject"
  kubeconfig "$dir/$user_name.kubeconfig" "$user_name"
  echo "$dir/$user_name.kubeconfig"; exit 0 ;;
down) stop; rm -rf "$dir"; exit 0 ;;
env) echo "export KUBECONFIG=$dir/kubeconfig"; exit 0 ;;
up) ;;
*) gw_usage 2 "unknown command $cmd" ;;
esac

if [[ -f "$dir/apiserver.pid" ]] && kill -0 "$(cat "$dir/apiserver.pid")" 2>/dev/null; then
  echo "control plane already running in $dir" >&2; exit 0
fi
if [[ -n "$node_ip" ]] && ! grep -q "inet $node_ip/" <(ip -o addr show); then
  gw_die "--node-address $node_ip is no address of this host: give it one into the nodes' namespace first (gw_host_veth)"
fi
bins="$("$here/k8s-bins/build.sh")"
command -v openssl >/dev/null || gw_apt_install openssl >&2

if [[ ! -f "$pki/ca.crt" ]]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=groundwork-lab-ca" \
    -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
  # rustls accepts only X.509 v3 certificates: give the client certificate extensions.
  printf 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n' > "$pki/client.ext"
  client_cert admin "/O=system:masters/CN=lab-admin"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
fi
# The serving certificate is made again whenever its names change (--node-address).
san="subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc"
((cluster)) && san+=",DNS:kubernetes.default,DNS:kubernetes,IP:10.96.0.1${node_ip:+,IP:$node_ip}"
if [[ ! -f "$pki/apiserver.crt" || "$(cat "$pki/san.ext" 2>/dev/null)" != "$san" ]]; then
  echo "$san" > "$pki/san.ext"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
  openssl x509 -req -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$pki/san.ext" -out "$pki/apiserver.crt" 2>/dev/null
fi
if ((cluster)) && [[ ! -f "$pki/kube-scheduler.crt" ]]; then
  client_cert kube-controller-manager "/CN=system:kube-controller-manager"
  client_cert kube-scheduler "/CN=system:kube-scheduler"
  # What the API server shows kubelets (logs, exec); kubeadm's group, bound to cluster-admin below.
  client_cert apiserver-kubelet-client "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client"
fi

api_ip="${node_ip:-127.0.0.1}"
# Without a controller manager no `default` ServiceAccount appears: Pods need the plugin off.
extra=(--authorization-mode RBAC --disable-admission-plugins ServiceAccount)
if ((cluster)); then
  # Kubelets by address first, as kubeadm sets it: a node's hostname doesn't resolve on this host.
  extra=(--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction --enable-bootstrap-token-auth
    --kubelet-preferred-address-types InternalIP,ExternalIP,Hostname
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key")
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
  --secure-port "$api_port" --bind-address "$api_ip" --advertise-address "$api_ip" \
  --service-cluster-ip-range 10.96.0.0/24,fd00:10:96::/112 --service-account-issuer https://kubernetes.default.svc \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --client-ca-file "$pki/ca.crt" "${extra[@]}" \
  --max-requests-inflight 2000 --max-mutating-requests-inflight 1000 \
  --audit-log-path "$dir/audit.log" --audit-policy-file "$here/audit-policy.yaml" \
  >"$dir/apiserver.log" 2>&1 &
echo $! > "$dir/apiserver.pid"

kubeconfig "$dir/kubeconfig" admin
ln -sf "$bins/kubectl" "$dir/kubectl"; ln -sf "$bins/helm" "$dir/helm" 2>/dev/null || true

ready=0
for _ in $(seq 600); do
  if "$bins/kubectl" --kubeconfig "$dir/kubeconfig" get --raw /readyz >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$(cat "$dir/apiserver.pid")" 2>/dev/null || { tail -20 "$dir/apiserver.log" >&2; stop; exit 1; }
  sleep 0.2
done
if ((!ready)); then
  echo "kube-apiserver not ready after 120 s; see $dir/apiserver.log" >&2; tail -20 "$dir/apiserver.log" >&2; stop; exit 1
fi
if ((!cluster)); then
  echo "control plane ready: https://$api_ip:$api_port (KUBECONFIG=$dir/kubeconfig)" >&2; exit 0
fi

# What kubeadm init sets up for kubelet TLS bootstrap: bootstrap-token users may create CSRs, and
# the approver accepts their client CSRs and the nodes' renewals.
"$bins/kubectl" --kubeconfig "$dir/kubeconfig" apply -f - >/dev/null <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kubeadm:kubelet-bootstrap"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:node-bootstrapper"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "system:bootstrappers:kubeadm:default-node-token"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kubeadm:node-autoapprove-bootstrap"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:certificates.k8s.io:certificatesigningrequests:nodeclient"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "system:bootstrappers:kubeadm:default-node-token"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kubeadm:node-autoapprove-certificate-rotation"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "system:nodes"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kubeadm:cluster-admins"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "kubeadm:cluster-admins"}]
EOF

# Both serve health over HTTPS on loopback only (their default is every interface).
start_component() { # NAME ARG...
  local name="$1" port; shift
  port="$(gw_free_port)"; echo "$port" > "$dir/$name.port"
  kubeconfig "$dir/$name.kubeconfig" "$name"
  "$bins/$name" --kubeconfig "$dir/$name.kubeconfig" --authentication-kubeconfig "$dir/$name.kubeconfig" \
    --authorization-kubeconfig "$dir/$name.kubeconfig" --bind-address 127.0.0.1 --secure-port "$port" \
    --cert-dir "$dir/$name-certs" --leader-elect=false "$@" >"$dir/$name.log" 2>&1 &
  echo $! > "$dir/$name.pid"
}
start_component kube-controller-manager --controllers '*,bootstrapsigner,tokencleaner' \
  --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
  --use-service-account-credentials --service-account-private-key-file "$pki/sa.key" \
  --root-ca-file "$pki/ca.crt" --allocate-node-cidrs --cluster-cidr 10.244.0.0/16 \
  --service-cluster-ip-range 10.96.0.0/24,fd00:10:96::/112 ${node_grace:+--node-monitor-grace-period "${node_grace}s"}
start_component kube-scheduler
for _ in $(seq 300); do
  ok=1
  for c in kube-controller-manager kube-scheduler; do
    kill -0 "$(cat "$dir/$c.pid")" 2>/dev/null || { tail -20 "$dir/$c.log" >&2; stop; gw_die "$c exited; see $dir/$c.log"; }
    curl -sfk "https://127.0.0.1:$(cat "$dir/$c.port")/healthz" >/dev/null || ok=0
  done
  if ((ok)); then
    echo "cluster control plane ready: https://$api_ip:$api_port (KUBECONFIG=$dir/kubeconfig)" >&2; exit 0
  fi
  sleep 0.2
done
stop; gw_die "kube-controller-manager or kube-scheduler not healthy after 60 s; see $dir/*.log"
