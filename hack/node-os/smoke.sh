#!/usr/bin/env bash
# Boots the node OS image in QEMU (TCG, 2 vCPU, 1536 MiB, QEMU user networking with restrict=on:
# nothing leaves the VM) with a NoCloud config drive (FAT labelled CIDATA, meta-data, netplan
# network-config of the controller's shape, user-data = testdata/cabpk-join.yaml, CABPK's output)
# and checks the serial console: containerd up, both images imported, the cloud-config's files
# and runcmd done, the kubelet started through the systemctl shim, the CABPK sentinel written,
# kubeadm join's preflight checks, and the app answering from a Pod. No API server here: the user-data gets one extra file,
# /usr/local/bin/kubeadm (first on runcmd's PATH), standing in for `kubeadm join` — it runs the
# real kubeadm (version), then does what join does on the node: writes /var/lib/kubelet/config.yaml
# (a standalone kubelet with a static hello Pod) and kubeadm-flags.env, then the same systemctl
# calls (daemon-reload, enable, restart kubelet, is-active).
#   hack/node-os/smoke.sh [--firmware bios|uefi] [--image RAW]   (default: build it)
# Exits non-zero when any check fails within the deadline (GW_SMOKE_TIMEOUT, default 300 s).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
here="$GW_ROOT/hack/node-os"
fw=bios image=""
while [[ $# -gt 0 ]]; do
  [[ $# -ge 2 ]] || gw_usage 2 "$1 needs a value"
  case "$1" in
    --firmware) fw="$2" ;;
    --image) image="$2" ;;
    *) gw_usage 2 "unknown option $1" ;;
  esac
  shift 2
done
timeout="${GW_SMOKE_TIMEOUT:-300}"
export PATH="$PATH:/usr/sbin:/sbin"

work="$(mktemp -d /tmp/gw-node-os-smoke.XXXXXX)"
qemu_pid=""
cleanup() { gw_stop_pid "$qemu_pid"; rm -rf "$work"; }
trap cleanup EXIT
if [[ -z "$image" ]]; then
  image="$work/node-os.raw"
  "$here/build.sh" "$image" >/dev/null
fi
image="$(realpath -e "$image")"

# The disk: a copy-on-write overlay (the image itself stays untouched, it is the cache's).
qemu-img create -q -f qcow2 -b "$image" -F raw "$work/disk.qcow2"

# The config drive, as the agent writes it (here a second disk; the OS finds it by label).
mac=52:54:00:6e:0d:01
mkdir -p "$work/seed"
cat >"$work/seed/meta-data" <<EOT
instance-id: smoke-$(date +%s)
local-hostname: smoke-node-0
groundwork-server: fra1/smoke-node-0
provider-id: groundwork://fra1/smoke-node-0
EOT
# GW_SMOKE_NET=dhcp: no network-config (the OS then tries DHCP on every NIC).
[[ "${GW_SMOKE_NET:-static}" == dhcp ]] || cat >"$work/seed/network-config" <<EOT
version: 2
ethernets:
  id0:
    match:
      macaddress: "$mac"
    addresses:
      - 10.0.2.15/24
    routes:
      - to: default
        via: 10.0.2.2
    nameservers:
      addresses:
        - 10.0.2.3
EOT
# The stand-in for `kubeadm join` and the Pod check, inserted as the first write_files entries.
standin="$(cat <<'EOT'
#!/bin/sh
# smoke stand-in for `kubeadm join` (no API server in the smoke test)
echo "smoke: kubeadm $(/usr/bin/kubeadm version -o short) (the real binary runs)"
# kubeadm join's own preflight checks on this node. After them, join's preflight phase goes on
# to discovery (the API server in the fixture is not there): a run still going after the checks
# printed no [ERROR …] has passed them.
/usr/bin/kubeadm join phase preflight --config /run/kubeadm/kubeadm-join-config.yaml >/tmp/preflight.log 2>&1 &
p=$!
i=0
while kill -0 $p 2>/dev/null && [ $i -lt 300 ] && ! grep -q 'Service-kubelet\|fatal errors' /tmp/preflight.log; do sleep 0.2; i=$((i + 1)); done
sleep 2
kill $p 2>/dev/null
grep -E 'ERROR|WARNING' /tmp/preflight.log | head -n 20 | sed 's/^/smoke: preflight: /'
tail -n 2 /tmp/preflight.log | sed 's/^/smoke: preflight (last lines): /'
if grep -q 'Running pre-flight checks' /tmp/preflight.log && ! grep -q 'ERROR\|fatal errors' /tmp/preflight.log; then
  echo "smoke: kubeadm join preflight checks passed"
else
  echo "smoke: kubeadm join preflight checks FAILED"
fi
echo "smoke: kube-proxy $(kube-proxy --version 2>&1)"
mkdir -p /var/lib/kubelet /etc/kubernetes/manifests
cat >/var/lib/kubelet/config.yaml <<'YAML'
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
failSwapOn: false
# containerd writes the CNI network from this (a joined kubelet: the Node's spec.podCIDRs).
podCIDR: 10.88.0.0/16
staticPodPath: /etc/kubernetes/manifests
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
YAML
echo 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/containerd/containerd.sock --hostname-override=smoke-node-0"' >/var/lib/kubelet/kubeadm-flags.env
cat >/etc/kubernetes/manifests/hello.yaml <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: hello, namespace: default}
spec:
  containers:
  - name: hello
    image: groundwork.dev/hello:v1
    imagePullPolicy: Never
    env: [{name: NODE_NAME, value: smoke-node-0}]
YAML
systemctl daemon-reload && systemctl enable kubelet && systemctl restart kubelet || exit 1
i=0
until [ "$(systemctl is-active kubelet)" = active ]; do i=$((i + 1)); [ $i -lt 50 ] || exit 1; sleep 0.2; done
setsid /usr/local/bin/smoke-check </dev/null >/dev/console 2>&1 &
exit 0
EOT
)"
check="$(cat <<'EOT'
#!/bin/sh
# The static Pod is the first on the CNI bridge (host-local hands out 10.88.0.2 first).
i=0
while [ $i -lt 600 ]; do
  if r="$(timeout 3 wget -q -O - http://10.88.0.2:8080/ 2>/dev/null)" && [ -n "$r" ]; then
    echo "smoke: app answered: $r"
    exit 0
  fi
  i=$((i + 1)); sleep 0.5
done
echo "smoke: app never answered; kubelet log:"; tail -n 30 /var/log/kubelet.log
EOT
)"
indent() { sed 's/^/      /'; }
{
  sed -n '1,3p' "$here/testdata/cabpk-join.yaml" | sed -n '1,2p'
  echo "write_files:"
  printf -- '-   path: /usr/local/bin/kubeadm\n    permissions: '"'"'0755'"'"'\n    content: |\n'; indent <<<"$standin"
  printf -- '-   path: /usr/local/bin/smoke-check\n    permissions: '"'"'0755'"'"'\n    content: |\n'; indent <<<"$check"
  sed '1,3d' "$here/testdata/cabpk-join.yaml"
} >"$work/seed/user-data"
grep -q '^write_files:$' <(sed -n 3p "$here/testdata/cabpk-join.yaml") || gw_die "fixture: line 3 is not write_files:"
truncate -s 8M "$work/cidata.img"
mkfs.vfat -n CIDATA "$work/cidata.img" >/dev/null
MTOOLS_SKIP_CHECK=1 mcopy -i "$work/cidata.img" "$work/seed/"* ::/

args=(-accel tcg -smp 2 -m 1536 -nodefaults -display none -vga none -monitor none -no-reboot
  -serial "file:$work/serial.log"
  -netdev user,id=n0,restrict=on -device "virtio-net-pci,netdev=n0,mac=$mac,romfile="
  -drive "if=none,id=d0,format=qcow2,file=$work/disk.qcow2" -device virtio-blk-pci,drive=d0,bootindex=1
  -drive "if=none,id=d1,format=raw,file=$work/cidata.img" -device virtio-blk-pci,drive=d1
  -pidfile "$work/qemu.pid" -daemonize)
# GW_SMOKE_RNG=1: a virtio RNG (the guest's Go programs then don't wait ~4 s for the kernel's
# entropy pool; the lab's VMs have none).
[[ "${GW_SMOKE_RNG:-0}" != 1 ]] || args+=(-device virtio-rng-pci)
case "$fw" in
  bios) args+=(-machine pc) ;;
  uefi)
    cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vars.fd"
    args+=(-machine q35 -drive "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
      -drive "if=pflash,format=raw,unit=1,file=$work/vars.fd") ;;
  *) gw_usage 2 "--firmware must be bios or uefi" ;;
esac
t0="${EPOCHREALTIME//[^0-9]/}"
qemu-system-x86_64 "${args[@]}"
qemu_pid="$(cat "$work/qemu.pid")"
gw_log "QEMU $qemu_pid ($fw) started; serial log $work/serial.log"

# Each check: a name and an extended regex the console must show.
checks=(
  "initramfs found the root|groundwork-initrd: root /dev/vda2"
  "containerd up|groundwork-node: containerd up"
  "images imported|groundwork-node: images: .*groundwork.dev/hello:v1.*|groundwork-node: images: .*registry.k8s.io/pause:3.10.2"
  "config drive, hostname + network|groundwork-node: config drive /dev/vdb|groundwork-node: hostname=smoke-node-0 addresses=10.0.2.15/24"
  "write_files (gzip+base64, jinja)|gw-cloud-init: wrote /run/kubeadm/kubeadm-join-config.yaml"
  "pre-kubeadm command|pre-kubeadm: smoke-node-0 hello from a gzip\\+base64 file"
  "kubeadm's join preflight checks pass|smoke: kubeadm join preflight checks passed"
  "kubelet started (systemctl shim)|groundwork-node: kubelet started"
  "kube-proxy runs, supervised (waits for the join)|smoke: kube-proxy Kubernetes v|groundwork-node: kube-proxy started"
  "CABPK sentinel|gw-cloud-init: cluster-api bootstrap succeeded"
  "runner finished without errors|gw-cloud-init: finished[[:space:]]*$"
  "app Pod answers|smoke: app answered: hello from smoke-node-0"
)
declare -A seen=()
failed=0
while :; do
  now="${EPOCHREALTIME//[^0-9]/}"
  el=$(((now - t0) / 100000))
  pending=0
  for c in "${checks[@]}"; do
    name="${c%%|*}" re="${c#*|}"
    [[ -n "${seen[$name]:-}" ]] && continue
    ok=1
    IFS='|' read -r -a res <<<"$re"
    for r in "${res[@]}"; do grep -Eq "$r" "$work/serial.log" 2>/dev/null || ok=0; done
    if ((ok)); then
      seen[$name]=1
      printf '[%4d.%d s] ok   %s\n' $((el / 10)) $((el % 10)) "$name"
    else
      pending=1
    fi
  done
  ((pending)) || break
  if grep -Eq 'Kernel panic|gw-cloud-init: ERROR|rescue shell|groundwork-node: (kubelet|containerd|kube-proxy) exited' "$work/serial.log" 2>/dev/null || ! kill -0 "$qemu_pid" 2>/dev/null || ((el >= timeout * 10)); then
    failed=1
    break
  fi
  sleep 0.2
done
if ((failed)); then
  for c in "${checks[@]}"; do [[ -n "${seen[${c%%|*}]:-}" ]] || echo "FAIL ${c%%|*}"; done
  echo "--- serial console (last 60 lines) ---"
  tail -n 60 "$work/serial.log"
  exit 1
fi
grep -E 'groundwork-node: (containerd up|images|kubelet started)|smoke: ' "$work/serial.log" | sed 's/^/  console: /'
echo "PASS ($fw): all ${#checks[@]} checks"
