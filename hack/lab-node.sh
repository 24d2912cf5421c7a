#!/usr/bin/env bash
# A Kubernetes node of the lab's cluster on this machine's own kernel: containerd + runc + CNI
# plugins (Debian), kubelet and kube-proxy (hack/k8s-bins/build.sh, the cluster's version), all in
# one network namespace the caller made (hostNetwork Pods live there: give it the provisioning
# networks the boot services must answer on) and in a mount namespace of their own (kubelet's
# volume mounts vanish with the node).
#
#   hack/lab-node.sh up DIR --cp CPDIR --name NAME --netns NS --address IP [--pod-cidr CIDR]
#                        [--label K=V]... [--taint K=V:EFFECT]... [--image OCI-ARCHIVE]...
#       start the node (state, logs and PIDs in DIR) and wait until the Node is Ready
#   hack/lab-node.sh import DIR OCI-ARCHIVE    import an image into the node's containerd
#   hack/lab-node.sh down DIR                  stop every process of the node, remove DIR
#
# Why not a VM: the chart's Pods need nothing a VM would add (the kernel is shared anyway), and a
# kubelet here is Ready in seconds where a TCG VM takes ~20 s and 1.5 GiB (LABS.md section 10).
# The node's processes — containerd and its shims, kubelet, kube-proxy, every container — are in
# the cgroup /gw-node-NAME of every v1 hierarchy (kubelet's cgroupRoot), so `down` finds them all,
# whoever forked them. The kubelet sets the kernel tunables it requires (vm.overcommit_memory=1,
# kernel.panic=10, kernel.panic_on_oops=1, ...); `down` of the last lab node restores the values
# saved before the first.
# The node's credentials are client certificates of the control plane's CA
# (`controlplane.sh user`): system:node:NAME for the kubelet, system:kube-proxy for kube-proxy.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
(($# >= 2)) || gw_usage
cmd="$1" dir="$2"; shift 2

tunables=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops)
saved_tunables="${GW_CACHE}/lab-node.sysctl"

# Every process of the node's cgroup, killed until none is left, then the cgroups removed.
stop_node() { # NAME
  local cg="gw-node-$1" h pids
  [[ -d "/sys/fs/cgroup/pids/$cg" ]] || return 0
  for _ in $(seq 50); do
    pids="$(find "/sys/fs/cgroup/pids/$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)"
    [[ -n "$pids" ]] || break
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null || true
    sleep 0.1
  done
  for h in /sys/fs/cgroup/*/; do
    [[ -d "$h$cg" ]] || continue
    find "$h$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  if [[ -f "$saved_tunables" ]] && ! compgen -G "/sys/fs/cgroup/pids/gw-node-*" >/dev/null; then
    sysctl -q -p "$saved_tunables" && rm -f "$saved_tunables"
  fi
}

case "$cmd" in
down)
  [[ -f "$dir/name" ]] && stop_node "$(cat "$dir/name")"
  rm -rf "$dir"
  exit 0 ;;
import)
  (($# == 1)) || gw_usage 2 "import needs an OCI archive"
  ctr --address "$dir/run/containerd.sock" -n k8s.io images import "$1" >&2
  exit 0 ;;
up) ;;
*) gw_usage 2 "unknown command $cmd" ;;
esac

cp="" name="" netns="" address="" pod_cidr="10.250.0.0/24" labels=() taints=() images=()
while (($#)); do
  case "$1" in
  --cp) cp="$2" ;;
  --name) name="$2" ;;
  --netns) netns="$2" ;;
  --address) address="$2" ;;
  --pod-cidr) pod_cidr="$2" ;;
  --label) labels+=("$2") ;;
  --taint) taints+=("$2") ;;
  --image) images+=("$2") ;;
  *) gw_usage 2 "unknown option $1" ;;
  esac
  shift 2
done
[[ -n "$cp" && -n "$name" && -n "$netns" && -n "$address" ]] || gw_usage 2 "--cp, --name, --netns and --address are required"
[[ -e "/run/netns/$netns" ]] || gw_die "no network namespace $netns"
[[ "$(ip -n "$netns" -o addr show)" == *"inet $address/"* ]] || gw_die "$address is no address in $netns"
# Service ClusterIPs (kube-proxy's DNAT) are reached through the node's routes like any address.
ip -n "$netns" route get 10.96.0.1 >/dev/null 2>&1 \
  || gw_die "no route to the Service network (10.96.0.1) in $netns: give the node a default route"
[[ ! -d "/sys/fs/cgroup/pids/gw-node-$name" ]] || gw_die "a node $name is running (hack/lab-node.sh down its DIR first)"
missing=()
for b in containerd:containerd runc:runc iptables:iptables conntrack:conntrack; do
  gw_have "${b%%:*}" || missing+=("${b#*:}")
done
[[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
if ((${#missing[@]})); then
  gw_apt_install "${missing[@]}"
  gw_disable_services containerd
fi
gw_env
k8s="$("$GW_ROOT/hack/k8s-bins/build.sh")"
cp="$(cd "$cp" && pwd)"
mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"
echo "$name" >"$dir/name"
mkdir -p "$dir"/{containerd,run,kubelet,logs,pod-logs,cni/net.d,cni/state}

# containerd's sandbox image and the demo app, as in the node OS: its pause and hello, built by its
# own tool (cached). `groundwork.dev/hello:v1` answers "hello from $NODE_NAME" on :8080.
pause_image=registry.k8s.io/pause:3.10.2
hello_image=groundwork.dev/hello:v1
key="$(cat "$GW_ROOT"/hack/node-os/go.{mod,sum} "$GW_ROOT"/hack/node-os/cmd/{mkimage,pause,hello}/main.go | sha256sum | cut -c1-16)"
pause="$GW_CACHE/lab-node/pause-$key.tar" hello="$GW_CACHE/lab-node/hello-$key.tar"
if [[ ! -f "$pause" || ! -f "$hello" ]]; then
  mkdir -p "$GW_CACHE/lab-node"
  tmp="$(mktemp -d)"
  (cd "$GW_ROOT/hack/node-os" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/" ./cmd/mkimage ./cmd/pause ./cmd/hello)
  "$tmp/mkimage" -name "$pause_image" -o "$pause.tmp" -entrypoint /pause "$tmp/pause:/pause" >/dev/null
  "$tmp/mkimage" -name "$hello_image" -o "$hello.tmp" -entrypoint /hello "$tmp/hello:/hello" >/dev/null
  mv "$pause.tmp" "$pause"; mv "$hello.tmp" "$hello"; rm -rf "$tmp"
fi

kubelet_kc="$("$GW_ROOT/hack/controlplane.sh" user "$cp" "node-$name" "/O=system:nodes/CN=system:node:$name")"
proxy_kc="$cp/kube-proxy.kubeconfig"
[[ -f "$proxy_kc" ]] || "$GW_ROOT/hack/controlplane.sh" user "$cp" kube-proxy "/CN=system:kube-proxy" >/dev/null

cat >"$dir/containerd.toml" <<TOML
version = 2
root = "$dir/containerd"
state = "$dir/run/state"
[grpc]
  address = "$dir/run/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  netns_mounts_under_state_dir = true
  # No Pod's oom_score_adj below containerd's own: lowering it needs CAP_SYS_RESOURCE, which
  # processes on these machines lack (runc: "failed to update /proc/self/oom_score_adj").
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "${GW_LAB_NODE_RUNC:-/usr/sbin/runc}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
TOML
cat >"$dir/cni/net.d/10-lab.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "lab-$name", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "dataDir": "$dir/cni/state", "ranges": [[{"subnet": "$pod_cidr"}]],
            "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
: >"$dir/resolv.conf"
{
  cat <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /gw-node-$name
failSwapOn: false
containerRuntimeEndpoint: unix://$dir/run/containerd.sock
address: $address
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
podLogsDir: $dir/pod-logs
resolvConf: $dir/resolv.conf
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $cp/pki/ca.crt}
authorization: {mode: Webhook}
# This machine's disk is shared with everything else: never evict for it.
evictionHard: {memory.available: 50Mi, nodefs.available: 200Mi, imagefs.available: 200Mi}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Lease renewed every 3 s (a quarter of it): a control plane with a short node grace period
# (controlplane.sh --node-grace) sees a dead node in seconds.
nodeLeaseDurationSeconds: 12
YAML
  if ((${#taints[@]})); then
    echo "registerWithTaints:"
    for t in "${taints[@]}"; do
      k="${t%%=*}" rest="${t#*=}"
      echo "- {key: \"$k\", value: \"${rest%%:*}\", effect: ${rest##*:}}"
    done
  fi
} >"$dir/kubelet.yaml"
cat >"$dir/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $proxy_kc}
hostnameOverride: $name
mode: iptables
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
conntrack: {maxPerCore: 0}
YAML
label_arg="$(IFS=,; echo "${labels[*]:-}")"

# The node's supervisor: one process per node in the new mount namespace; it exits (and takes the
# others with it) as soon as one of containerd, kube-proxy or the kubelet exits.
cat >"$dir/run.sh" <<RUN
#!/usr/bin/env bash
set -uo pipefail
# kubelet's cgroupRoot must exist in every hierarchy; the pids one tracks the node's processes.
for h in /sys/fs/cgroup/*/; do
  [[ "\$h" == */unified/ ]] && continue
  mkdir -p "\${h}gw-node-$name"
  if [[ "\$h" == */cpuset/ ]]; then
    cat "\${h}cpuset.cpus" >"\${h}gw-node-$name/cpuset.cpus"; cat "\${h}cpuset.mems" >"\${h}gw-node-$name/cpuset.mems"
  fi
done
mkdir -p "/sys/fs/cgroup/pids/gw-node-$name/runtime" && echo \$\$ >"/sys/fs/cgroup/pids/gw-node-$name/runtime/cgroup.procs"
containerd --config "$dir/containerd.toml" >"$dir/logs/containerd.log" 2>&1 &
echo \$! >"$dir/containerd.pid"
for _ in \$(seq 100); do ctr --address "$dir/run/containerd.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
for img in "$pause" "$hello" ${images[*]:+$(printf '"%s" ' "${images[@]}")}; do
  ctr --address "$dir/run/containerd.sock" -n k8s.io images import "\$img" >>"$dir/logs/import.log" 2>&1 || { echo "import of \$img failed" >&2; exit 1; }
done
"$k8s/kube-proxy" --config "$dir/kube-proxy.yaml" >"$dir/logs/kube-proxy.log" 2>&1 &
echo \$! >"$dir/kube-proxy.pid"
"$k8s/kubelet" --config "$dir/kubelet.yaml" --kubeconfig "$kubelet_kc" --root-dir "$dir/kubelet" \\
  --cert-dir "$dir/kubelet/pki" --hostname-override "$name" --node-ip "$address" \\
  ${label_arg:+--node-labels "$label_arg"} >"$dir/logs/kubelet.log" 2>&1 &
echo \$! >"$dir/kubelet.pid"
wait -n
echo "a node process exited: stopping the others" >&2
kill \$(jobs -p) 2>/dev/null
wait
RUN
chmod +x "$dir/run.sh"

if [[ ! -f "$saved_tunables" ]]; then
  mkdir -p "$(dirname "$saved_tunables")"
  sysctl "${tunables[@]}" >"$saved_tunables"
fi
# nsenter, not `ip netns exec`: that remounts /sys, and the kubelet needs the cgroup mounts under it.
setsid nsenter --net="/run/netns/$netns" -- unshare --mount --propagation slave -- "$dir/run.sh" \
  </dev/null >"$dir/logs/run.log" 2>&1 &
echo $! >"$dir/run.pid"

kc() { "$k8s/kubectl" --kubeconfig "$cp/kubeconfig" "$@"; }
for _ in $(seq 300); do
  if [[ "$(kc get node "$name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]; then
    echo "node $name Ready (netns $netns, $address; logs in $dir/logs)" >&2
    exit 0
  fi
  if ! kill -0 "$(cat "$dir/run.pid")" 2>/dev/null; then
    tail -n 20 "$dir"/logs/*.log >&2
    stop_node "$name"
    gw_die "node $name stopped before it was Ready (logs in $dir/logs)"
  fi
  sleep 0.2
done
tail -n 20 "$dir/logs/kubelet.log" >&2
stop_node "$name"
gw_die "node $name not Ready after 60 s (logs in $dir/logs)"
