#!/usr/bin/env bash
# A node joins the lab's own cluster through Cluster API, end to end, without the Groundwork
# provider (which a stand-in plays by hand): the road a GroundworkMachine will drive.
#
#   hack/node-join-smoke.sh          (root: it makes a network namespace; ~2-4 min under TCG)
#
#  1. network namespace gw-node-join with bridge br0; this host is 10.72.0.1/24 on it (veth
#     gw-nj-host, hack/lib.sh gw_host_veth), the node VM 10.72.0.10/24 (tap gw-nj-tap in the
#     namespace);
#  2. hack/controlplane.sh up --cluster --node-address 10.72.0.1 (the API server listens there
#     only), hack/capi.sh up (Cluster API core + CABPK), hack/workload-cluster.sh up (the lab's
#     API server as the externally managed control plane of Cluster lab/lab);
#  3. a Cluster (infrastructureRef: the test-only StandinCluster of hack/testdata/capi-standin-
#     infra.yaml, marked provisioned here), a KubeadmConfig, a StandinMachine (spec.providerID
#     groundwork://lab/node-0, marked provisioned) and a Machine: CABPK writes the join bootstrap
#     data Secret (a real bootstrap token, the CA hash, `kubeadm join`);
#  4. the node OS image (hack/node-os/build.sh, cached) boots in QEMU (TCG, 2 vCPU, 1536 MiB,
#     BIOS, `nice -n 19`) with a NoCloud config drive: meta-data (instance-id, local-hostname
#     node-0, provider-id), a static network-config, user-data = CABPK's bootstrap data;
#  5. checks: the kubelet starts, the Node registers with the providerID and becomes Ready, the
#     Machine gets its nodeRef (Cluster API then drops the node.cluster.x-k8s.io/uninitialized
#     taint), a Pod of groundwork.dev/hello:v1 (imagePullPolicy Never, hostPort 8080) runs and
#     answers `hello from node-0` on http://10.72.0.10:8080/ from this host.
# Prints a timeline from QEMU start; exits non-zero on the first failure or after
# GW_NODE_JOIN_TIMEOUT (default 420) seconds, with the console and logs. Cleans up everything it
# started (QEMU and the control plane by PID, the namespace and the veth by name, its /tmp dir);
# GW_NODE_JOIN_KEEP=1 keeps the /tmp dir (logs, serial console) and prints its path.
# GW_NODE_JOIN_BREAK=token: deletes CABPK's bootstrap token before the VM boots (a deliberate
# break: the join must fail and the script must say so).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ "${1:-}" != -h && "${1:-}" != --help ]] || gw_usage 0
(($# == 0)) || gw_usage 2 "no arguments"
gw_need_root "a network namespace, a veth and a tap for the node VM"
export PATH="$PATH:/usr/sbin:/sbin"
for c in qemu-system-x86_64 qemu-img mkfs.vfat mcopy curl; do command -v "$c" >/dev/null || gw_die "no $c (hack/deps/boot.sh)"; done
timeout="${GW_NODE_JOIN_TIMEOUT:-420}"
break_="${GW_NODE_JOIN_BREAK:-}"
ns=gw-node-join hostif=gw-nj-host tap=gw-nj-tap
net=10.72.0 host_ip=10.72.0.1 node_ip=10.72.0.10 mac=52:54:00:72:00:0a
cluster=lab cns=lab node=node-0 provider_id=groundwork://lab/node-0
[[ ! -e "/run/netns/$ns" ]] || gw_die "network namespace $ns exists: another run is going on (or left over: ip netns del $ns)"
! grep -q "inet $net\." <(ip -o addr show) || gw_die "this host already has an address in $net.0/24"

work="$(mktemp -d /tmp/gw-node-join.XXXXXX)"
cp="$work/cp" qemu_pid="" failed=1
cleanup() {
  set +e
  if ((failed)); then
    echo "--- serial console (last 40 lines) ---"; tail -n 40 "$work/serial.log" 2>/dev/null
    for f in capi-bootstrap-kubeadm capi-core; do
      echo "--- $f.log (errors, last 5) ---"; grep -i error "$cp/$f.log" 2>/dev/null | tail -n 5
    done
  fi >&2
  [[ -z "$qemu_pid" ]] || gw_stop_pid "$qemu_pid"
  [[ ! -d "$cp" ]] || "$GW_ROOT/hack/controlplane.sh" down "$cp" # Cluster API's processes too
  [[ ! -e "/run/netns/$ns" ]] || ip netns del "$ns"
  ip link del "$hostif" 2>/dev/null
  if [[ "${GW_NODE_JOIN_KEEP:-0}" == 1 ]]; then gw_log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
t0="${EPOCHREALTIME//[^0-9]/}"
since() { local now="${EPOCHREALTIME//[^0-9]/}"; printf '%d.%d' $(((now - $1) / 1000000)) $(((now - $1) / 100000 % 10)); }
step() { printf '[%6s s] %s\n' "$(since "$t0")" "$*"; }

# 1. The node network.
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add br0 type bridge
ip -n "$ns" link set br0 up
gw_host_veth "$ns" br0 "$hostif" "$host_ip/24"
ip -n "$ns" tuntap add dev "$tap" mode tap
ip -n "$ns" link set "$tap" master br0 up

# 2. Control plane, Cluster API, the self-hosted workload cluster; the node image meanwhile.
image="$work/node-os.raw"
nice -n 19 "$GW_ROOT/hack/node-os/build.sh" "$image" >"$work/node-os-build.log" 2>&1 &
build_pid=$!
nice -n 19 "$GW_ROOT/hack/controlplane.sh" up "$cp" --cluster --node-address "$host_ip" 2>&1 | sed 's/^/  /'
nice -n 19 "$GW_ROOT/hack/capi.sh" up "$cp" 2>&1 | sed 's/^/  /'
"$GW_ROOT/hack/workload-cluster.sh" up "$cp" "$cns" "$cluster" 2>&1 | sed 's/^/  /'
step "control plane (https://$host_ip), Cluster API and the workload cluster up"
kc() { "$cp/kubectl" --kubeconfig "$cp/kubeconfig" "$@"; }

# 3. Cluster API objects; the stand-in infrastructure is "provisioned" by hand.
kc apply -f "$GW_ROOT/hack/testdata/capi-standin-infra.yaml" >/dev/null
kc wait --for condition=Established --timeout 60s -f "$GW_ROOT/hack/testdata/capi-standin-infra.yaml" >/dev/null
kc apply -f - >/dev/null <<EOF
apiVersion: infrastructure.test.groundwork.dev/v1alpha1
kind: StandinCluster
metadata: {name: $cluster, namespace: $cns}
spec: {}
---
apiVersion: cluster.x-k8s.io/v1beta2
kind: Cluster
metadata: {name: $cluster, namespace: $cns}
spec:
  controlPlaneRef: {apiGroup: controlplane.lab.groundwork.dev, kind: ExternalControlPlane, name: $cluster}
  infrastructureRef: {apiGroup: infrastructure.test.groundwork.dev, kind: StandinCluster, name: $cluster}
---
apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
kind: KubeadmConfig
metadata: {name: $node, namespace: $cns}
spec:
  joinConfiguration:
    nodeRegistration:
      # cloud-init jinja over the config drive's meta-data (the Groundwork provider writes both keys)
      name: '{{ ds.meta_data.local_hostname }}'
      kubeletExtraArgs:
      - {name: provider-id, value: '{{ ds.meta_data.provider_id }}'}
---
apiVersion: infrastructure.test.groundwork.dev/v1alpha1
kind: StandinMachine
metadata: {name: $node, namespace: $cns}
spec: {providerID: "$provider_id"}
---
apiVersion: cluster.x-k8s.io/v1beta2
kind: Machine
metadata: {name: $node, namespace: $cns}
spec:
  clusterName: $cluster
  version: $("$cp/kubectl" version --client -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p')
  bootstrap:
    configRef: {apiGroup: bootstrap.cluster.x-k8s.io, kind: KubeadmConfig, name: $node}
  infrastructureRef: {apiGroup: infrastructure.test.groundwork.dev, kind: StandinMachine, name: $node}
EOF
kc -n "$cns" patch standincluster "$cluster" --subresource status --type merge -p '{"status":{"initialization":{"provisioned":true}}}' >/dev/null
t_objs="${EPOCHREALTIME//[^0-9]/}"
secret=""
for _ in $(seq 300); do
  secret="$(kc -n "$cns" get machine "$node" -o jsonpath='{.spec.bootstrap.dataSecretName}' 2>/dev/null)" || true
  [[ -z "$secret" ]] || break
  sleep 0.2
done
[[ -n "$secret" ]] || { kc -n "$cns" get cluster,kubeadmconfig -o yaml | grep -A3 -i 'message' | tail -n 30 >&2; gw_die "CABPK wrote no bootstrap data within 60 s"; }
step "CABPK bootstrap data Secret $cns/$secret ($(since "$t_objs") s after the Machine)"
kc -n "$cns" get secret "$secret" -o jsonpath='{.data.value}' | base64 -d >"$work/user-data"
[[ "$(kc -n "$cns" get secret "$secret" -o jsonpath='{.data.format}' | base64 -d)" == cloud-config ]] || gw_die "bootstrap data format is not cloud-config"
token="$(sed -n 's/^ *token: \([a-z0-9]\{6\}\)\.[a-z0-9]\{16\}$/\1/p' "$work/user-data")"
[[ -n "$token" ]] || gw_die "no bootstrap token in the bootstrap data"
grep -q "apiServerEndpoint: $host_ip:" "$work/user-data" || gw_die "the join configuration does not point at $host_ip"
for _ in $(seq 100); do # the bootstrap signer signs cluster-info for the new token
  kc -n kube-public get configmap cluster-info -o jsonpath='{.data}' | grep -q "jws-kubeconfig-$token" && break
  sleep 0.2
done
kc -n kube-public get configmap cluster-info -o jsonpath='{.data}' | grep -q "jws-kubeconfig-$token" || gw_die "cluster-info is not signed for token $token"
step "token $token.… signed in cluster-info by the bootstrap signer"
if [[ "$break_" == token ]]; then
  kc -n kube-system delete secret "bootstrap-token-$token" >/dev/null
  step "DELIBERATE BREAK: deleted bootstrap-token-$token before the node boots"
fi
kc -n "$cns" patch standinmachine "$node" --subresource status --type merge \
  -p "{\"status\":{\"initialization\":{\"provisioned\":true},\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"$node_ip\"}]}}" >/dev/null

# 4. The config drive (as the agent writes it, here a second disk) and the VM.
wait "$build_pid" || { cat "$work/node-os-build.log" >&2; gw_die "node OS build failed"; }
qemu-img create -q -f qcow2 -b "$(realpath "$image")" -F raw "$work/disk.qcow2"
mkdir -p "$work/seed"
cp "$work/user-data" "$work/seed/user-data"
cat >"$work/seed/meta-data" <<EOF
instance-id: $node-$(date +%s)
local-hostname: $node
groundwork-server: $cns/$node
provider-id: $provider_id
EOF
cat >"$work/seed/network-config" <<EOF
version: 2
ethernets:
  id0:
    match:
      macaddress: "$mac"
    addresses:
      - $node_ip/24
    routes:
      - to: default
        via: $host_ip
EOF
truncate -s 8M "$work/cidata.img"
mkfs.vfat -n CIDATA "$work/cidata.img" >/dev/null
MTOOLS_SKIP_CHECK=1 mcopy -i "$work/cidata.img" "$work/seed/"* ::/
step "node image and config drive ready"
tq="${EPOCHREALTIME//[^0-9]/}"
nice -n 19 ip netns exec "$ns" qemu-system-x86_64 -name "$node" -accel tcg -machine pc -smp 2 -m 1536 \
  -nodefaults -display none -vga none -monitor none -no-reboot -serial "file:$work/serial.log" \
  -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" -device "virtio-net-pci,netdev=n0,mac=$mac,romfile=" \
  -drive "if=none,id=d0,format=qcow2,file=$work/disk.qcow2" -device virtio-blk-pci,drive=d0,bootindex=1 \
  -drive "if=none,id=d1,format=raw,file=$work/cidata.img" -device virtio-blk-pci,drive=d1 \
  -pidfile "$work/qemu.pid" -daemonize
qemu_pid="$(cat "$work/qemu.pid")"
step "QEMU $qemu_pid started (t=0 of the timeline below); console $work/serial.log"

# 5. The timeline: each milestone once, in any order; fail fast on what can't recover.
declare -A at=()
mark() { [[ -n "${at[$1]:-}" ]] || { at[$1]="$(since "$tq")"; printf '  t=%6s s  %s\n' "${at[$1]}" "$1"; }; }
pod_made=0 polls=0
while :; do
  log="$(cat "$work/serial.log" 2>/dev/null || true)"
  grep -q 'groundwork-initrd: root ' <<<"$log" && mark "kernel up, root file system found"
  grep -q 'groundwork-node: containerd up' <<<"$log" && mark "containerd up"
  grep -q 'gw-cloud-init: wrote /run/kubeadm/kubeadm-join-config.yaml' <<<"$log" && mark "bootstrap data written (write_files)"
  grep -q 'groundwork-node: kubelet started' <<<"$log" && mark "kubelet started (kubeadm join, systemctl shim)"
  grep -q 'gw-cloud-init: cluster-api bootstrap succeeded' <<<"$log" && mark "kubeadm join done (CABPK sentinel)"
  if [[ -z "${at[Node registered]:-}" ]] && pid="$(kc get node "$node" -o jsonpath='{.spec.providerID}' 2>/dev/null)"; then
    mark "Node registered"
    [[ "$pid" == "$provider_id" ]] || gw_die "Node $node has providerID '$pid', want $provider_id"
  fi
  if [[ -n "${at[Node registered]:-}" ]]; then
    [[ "$(kc get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]] && mark "Node Ready"
    [[ -n "$(kc -n "$cns" get machine "$node" -o jsonpath='{.status.nodeRef.name}')" ]] && mark "Machine nodeRef (Cluster API)"
  fi
  if [[ -n "${at[Machine nodeRef (Cluster API)]:-}" && -n "${at[Node Ready]:-}" ]] && ((!pod_made)); then
    kc get node "$node" -o jsonpath='{.spec.taints}' | grep -q uninitialized || mark "uninitialized taint removed (Cluster API)"
    if [[ -n "${at[uninitialized taint removed (Cluster API)]:-}" ]]; then
      kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: hello, namespace: default}
spec:
  containers:
  - name: hello
    image: groundwork.dev/hello:v1
    imagePullPolicy: Never
    env: [{name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
    ports: [{containerPort: 8080, hostPort: 8080}]
EOF
      pod_made=1
      mark "Pod created"
    fi
  fi
  if ((pod_made)); then
    [[ "$(kc get pod hello -o jsonpath='{.status.phase}')" == Running ]] && mark "Pod Running"
    if r="$(curl -sf --max-time 2 "http://$node_ip:8080/")" && [[ -n "$r" ]]; then
      mark "Pod answers from the host: $r"
      [[ "$r" == "hello from $node" ]] || gw_die "unexpected answer: $r"
      break
    fi
  fi
  if grep -Eq 'Kernel panic|gw-cloud-init: ERROR|rescue shell|groundwork-node: (kubelet|containerd) exited|error execution phase' <<<"$log"; then
    grep -E 'Kernel panic|gw-cloud-init: ERROR|rescue shell|exited|error execution phase|\[discovery\]' <<<"$log" | tail -n 8 | sed 's/^/  console: /' >&2
    gw_die "the node failed (console above)"
  fi
  # kubeadm join's discovery retries a vanished token silently until its own 5 min timeout, and
  # CABPK only logs that it cannot refresh it: say so at once.
  if [[ -z "${at[Node registered]:-}" ]] && ((++polls % 10 == 0)) \
    && ! kc -n kube-system get secret "bootstrap-token-$token" >/dev/null 2>&1; then
    gw_die "bootstrap token $token is gone from kube-system (deleted, or expired and cleaned up) before the node joined: its kubeadm join cannot succeed (CABPK does not replace a Machine's token)"
  fi
  kill -0 "$qemu_pid" 2>/dev/null || gw_die "QEMU exited"
  (( ${EPOCHREALTIME//[^0-9]/} - tq < timeout * 1000000 )) || gw_die "timed out after ${timeout} s"
  sleep 0.5
done
# The API server reaches the kubelet on the node's address too (logs, exec, proxy): its client
# certificate, the kubelet's webhook authorization.
r="$(kc get --raw "/api/v1/nodes/$node/proxy/healthz" 2>&1)" || gw_die "API server -> kubelet ($node_ip:10250): $r"
step "API server -> kubelet on $node_ip:10250: healthz $r"
# The node's logs, through the kubelet's /logs/ (kept with GW_NODE_JOIN_KEEP=1).
for f in kubelet containerd cloud-init-output; do
  kc get --raw "/api/v1/nodes/$node/proxy/logs/$f.log" >"$work/node-$f.log" 2>&1 || true
done
failed=0
kc get node -o wide | sed 's/^/  /'
kc -n "$cns" get machine -o wide | sed 's/^/  /'
echo "  the Pod's events (second resolution):"
kc get events --field-selector involvedObject.name=hello --sort-by .firstTimestamp \
  -o custom-columns=TIME:.firstTimestamp,REASON:.reason,MESSAGE:.message | sed 's/^/    /'
step "PASS: the node joined through Cluster API and serves the app"
