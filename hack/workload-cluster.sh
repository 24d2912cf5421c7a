#!/usr/bin/env bash
# The lab's own API server as the control plane of a Cluster API workload cluster (self-hosted),
# for a control plane made by `hack/controlplane.sh up DIR --cluster [--node-address IP]` with
# Cluster API running (`hack/capi.sh up DIR`):
#
#   hack/workload-cluster.sh up   DIR NAMESPACE CLUSTER
#   hack/workload-cluster.sh down DIR NAMESPACE CLUSTER
#
# up (idempotent) makes what Cluster API and its kubeadm bootstrap provider (CABPK) need before a
# worker can join, the way a control-plane provider and `kubeadm init` would:
#  - an externally managed control-plane object, ExternalControlPlane NAMESPACE/CLUSTER
#    (controlplane.lab.groundwork.dev/v1alpha1, a lab CRD with the cluster.x-k8s.io/v1beta2
#    contract label): spec.controlPlaneEndpoint = the API server of DIR/kubeconfig,
#    status.initialization.controlPlaneInitialized and status.externalManagedControlPlane true.
#    A Cluster points at it with
#      controlPlaneRef: {apiGroup: controlplane.lab.groundwork.dev, kind: ExternalControlPlane, name: CLUSTER}
#    and Cluster API copies the endpoint into Cluster.spec.controlPlaneEndpoint;
#  - the Secrets CLUSTER-kubeconfig (`value`: the lab admin kubeconfig, certificates inlined: what
#    Cluster API uses to reach the workload cluster) and CLUSTER-ca (`tls.crt` + `tls.key`: the lab
#    CA; CABPK puts the CA's hash in the join configuration), type cluster.x-k8s.io/secret,
#    labelled cluster.x-k8s.io/cluster-name=CLUSTER;
#  - cluster-wide, once per API server, kubeadm's own `init` phases run against it: `upload-config
#    all` (ConfigMaps kubeadm-config and kubelet-config in kube-system, and the Roles that let
#    bootstrap tokens and nodes read them) and `bootstrap-token` (the cluster-info ConfigMap in
#    kube-public, readable anonymously and signed for each bootstrap token by the controller
#    manager's bootstrap signer, and the RBAC of node bootstrap). The token that phase insists on
#    creating is deleted again: CABPK makes one per Machine.
#  - cluster-wide, ClusterRoleBinding groundwork-lab:node-proxier: ClusterRole system:node-proxier
#    for Group system:nodes, because the node OS runs kube-proxy with the kubelet's credentials
#    (see the binding below for why).
# down deletes the control-plane object and the two Secrets (delete the Cluster first: Cluster API
# treats a control plane that vanishes after initialization as an error); the cluster-wide kubeadm
# objects and the node-proxier binding stay (they describe the API server, not the Cluster object,
# and `up` rewrites them).
# Run up after the control plane has its final address: cluster-info carries DIR/kubeconfig's server.
# Kubernetes version of the kubeadm configuration: GW_K8S_VERSION (default: the lab's binaries').
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ "${1:-}" != -h && "${1:-}" != --help ]] || gw_usage 0
(($# == 4)) || gw_usage 2
cmd="$1" dir="$2" ns="$3" cluster="$4"
[[ -f "$dir/kubeconfig" ]] || gw_die "$dir has no control plane (hack/controlplane.sh up $dir --cluster)"
dir="$(cd "$dir" && pwd)"
kc() { "$dir/kubectl" --kubeconfig "$dir/kubeconfig" "$@"; }
group=controlplane.lab.groundwork.dev

case "$cmd" in
down)
  kc -n "$ns" delete --ignore-not-found "externalcontrolplanes.$group" "$cluster" >/dev/null 2>&1 || true
  kc -n "$ns" delete --ignore-not-found secret "$cluster-kubeconfig" "$cluster-ca" >/dev/null
  exit 0 ;;
up) ;;
*) gw_usage 2 "unknown command $cmd" ;;
esac
[[ -f "$dir/kube-controller-manager.pid" ]] || gw_die "$dir was not started with --cluster (no bootstrap signer, no token auth)"
bins="$("$GW_ROOT/hack/k8s-bins/build.sh")"
version="${GW_K8S_VERSION:-$("$bins/kubeadm" version -o short)}"
work="$(mktemp -d /tmp/gw-workload-cluster.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# The endpoint nodes use: the server of DIR/kubeconfig (the --node-address one, if given).
kc config view --raw --flatten >"$work/admin.conf"
server="$(kc config view -o jsonpath='{.clusters[0].cluster.server}')"
hostport="${server#https://}"
host="${hostport%:*}" port="${hostport##*:}"
[[ "$host" != 127.* ]] || gw_log "warning: the API server listens on $host only: no VM can reach it (controlplane.sh --node-address)"

# kubeadm init's phases against the running API server (no files of a kubeadm-made node needed).
token="$("$bins/kubeadm" token generate)"
cat >"$work/kubeadm.yaml" <<EOF
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: "$token"
  ttl: 1m0s
  description: "hack/workload-cluster.sh: made by kubeadm init phase bootstrap-token, deleted right away"
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: $cluster
kubernetesVersion: $version
controlPlaneEndpoint: "$hostport"
networking:
  serviceSubnet: 10.96.0.0/24
  podSubnet: 10.244.0.0/16
EOF
"$bins/kubeadm" init phase upload-config all --config "$work/kubeadm.yaml" --kubeconfig "$work/admin.conf" >"$work/kubeadm.log" 2>&1 \
  && "$bins/kubeadm" init phase bootstrap-token --config "$work/kubeadm.yaml" --kubeconfig "$work/admin.conf" >>"$work/kubeadm.log" 2>&1 \
  || { cat "$work/kubeadm.log" >&2; gw_die "kubeadm init phases failed"; }
kc -n kube-system delete --ignore-not-found secret "bootstrap-token-${token%%.*}" >/dev/null

kc create namespace "$ns" --dry-run=client -o yaml | kc apply -f - >/dev/null
kc apply --server-side --force-conflicts -f - >/dev/null <<EOF
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: externalcontrolplanes.$group
  labels:
    # Cluster API contract v1beta2, served by this CRD's v1alpha1.
    cluster.x-k8s.io/v1beta2: v1alpha1
spec:
  group: $group
  scope: Namespaced
  names: {kind: ExternalControlPlane, listKind: ExternalControlPlaneList, plural: externalcontrolplanes, singular: externalcontrolplane, categories: [cluster-api]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Endpoint, type: string, jsonPath: .spec.controlPlaneEndpoint.host}
    - {name: Initialized, type: boolean, jsonPath: .status.initialization.controlPlaneInitialized}
    schema:
      openAPIV3Schema:
        description: >-
          A Kubernetes control plane that exists outside Cluster API (the lab's own API server),
          for Cluster API's control-plane contract: Cluster API reads the endpoint and the
          initialization status, and creates no control-plane Machines.
        type: object
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec:
            type: object
            properties:
              controlPlaneEndpoint:
                type: object
                properties:
                  host: {type: string, minLength: 1}
                  port: {type: integer, format: int32, minimum: 1, maximum: 65535}
              version: {type: string, description: "Kubernetes version of the API server"}
          status:
            type: object
            properties:
              initialization:
                type: object
                properties:
                  controlPlaneInitialized: {type: boolean}
              externalManagedControlPlane: {type: boolean}
              version: {type: string}
              conditions:
                type: array
                items: {type: object, x-kubernetes-preserve-unknown-fields: true}
---
# What Cluster API's own RBAC would need (aggregated into its manager role); the lab runs Cluster
# API as the lab admin, so this is for completeness.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: capi-lab-externalcontrolplanes
  labels: {cluster.x-k8s.io/aggregate-to-manager: "true"}
rules:
- apiGroups: [$group]
  resources: [externalcontrolplanes, externalcontrolplanes/status]
  verbs: [get, list, watch, create, update, patch, delete]
---
# kube-proxy on the nodes. The node OS (hack/node-os) runs it as a host service with the kubelet's
# own credentials (/etc/kubernetes/kubelet.conf: user system:node:NAME, group system:nodes), not
# as kubeadm's DaemonSet with the kube-system/kube-proxy ServiceAccount (no addon phase runs
# here, and no image registry is reachable). The Node authorizer only grants a node what its own
# Pods need (their Services for environment variables, its Node object…), not the cluster-wide
# list/watch of EndpointSlices that kube-proxy needs: so the nodes get kube-proxy's own
# ClusterRole, as kubeadm gives it to its kube-proxy ServiceAccount (binding kubeadm:node-proxier).
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: groundwork-lab:node-proxier
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:node-proxier"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: "system:nodes"}
EOF
kc wait --for condition=Established --timeout 60s "crd/externalcontrolplanes.$group" >/dev/null

b64() { base64 -w0 <"$1"; }
kc apply --server-side --force-conflicts -f - >/dev/null <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: $cluster-kubeconfig
  namespace: $ns
  labels: {cluster.x-k8s.io/cluster-name: $cluster}
type: cluster.x-k8s.io/secret
data:
  value: $(b64 "$work/admin.conf")
---
apiVersion: v1
kind: Secret
metadata:
  name: $cluster-ca
  namespace: $ns
  labels: {cluster.x-k8s.io/cluster-name: $cluster}
type: cluster.x-k8s.io/secret
data:
  tls.crt: $(b64 "$dir/pki/ca.crt")
  tls.key: $(b64 "$dir/pki/ca.key")
---
apiVersion: $group/v1alpha1
kind: ExternalControlPlane
metadata:
  name: $cluster
  namespace: $ns
spec:
  controlPlaneEndpoint: {host: "$host", port: $port}
  version: $version
EOF
kc -n "$ns" patch "externalcontrolplanes.$group" "$cluster" --subresource status --type merge -p "$(cat <<EOF
{"status": {"initialization": {"controlPlaneInitialized": true}, "externalManagedControlPlane": true, "version": "$version",
 "conditions": [{"type": "Available", "status": "True", "reason": "External", "message": "the lab's API server at $hostport",
   "lastTransitionTime": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"}]}}
EOF
)" >/dev/null
gw_log "workload cluster $ns/$cluster: control plane at $hostport; controlPlaneRef {apiGroup: $group, kind: ExternalControlPlane, name: $cluster}"
