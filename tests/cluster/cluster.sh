#!/usr/bin/env bash
# The local control plane: kube-apiserver + etcd + kube-controller-manager + kube-scheduler + kwok, on loopback.
#   cluster.sh up       build (if needed) and start, or reuse a healthy cluster; two Ready kwok nodes, and in the
#                       default cluster the real node real-0 (node.sh; needs root, MODELDEPLOY_REAL_NODE=0 skips it)
#   cluster.sh down     stop everything (the real node first) and remove the cluster's state
#   cluster.sh env      print the exports (KUBECONFIG, PATH, audit log, CRD folders) for `eval`
#   cluster.sh status   say whether the API server answers and list the nodes
#   cluster.sh install-crds gateway-api|prometheus-operator   apply the pinned third-party CRDs
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=paths.sh
source "$here/paths.sh"

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }
healthy() { [ -f "$kubeconfig" ] && kc get --raw /readyz >/dev/null 2>&1; }

nodes_ready() {
  local n
  n=$(kc get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null | grep -c True || true)
  [ "$n" -ge 2 ]
}

# A cluster started by an older cluster.sh lacks the flags the real node relies on (kwok's node selector).
current_flags() { grep -q 'manage-nodes-with-annotation-selector' "$cluster_dir/kwok.yaml" 2>/dev/null; }

add_nodes_and_stages() {
  kc apply -f "$data_dir/kwok-stages/" >/dev/null
  for i in 0 1; do
    kc apply -f - >/dev/null <<NODE
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {type: kwok, kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "250"}
  capacity: {cpu: "32", memory: 256Gi, pods: "250"}
NODE
  done
}

cmd_up() {
  local t0; t0=$(date +%s)
  if real_node_wanted && [ "$(id -u)" -ne 0 ]; then
    log "ERROR: the default cluster '$name' includes the real node real-0, which needs root (containerd, the kubelet, iptables)."
    log "Run as root, or set MODELDEPLOY_REAL_NODE=0 (kwok nodes only), or MODELDEPLOY_CLUSTER_NAME=<other> for a second cluster."
    exit 1
  fi
  bash "$here/build.sh" >&2
  if healthy && nodes_ready && current_flags; then
    log "reusing the healthy cluster '$name' ($(( $(date +%s) - t0 ))s)"
    up_real_node
    return
  fi
  [ -d "$cluster_dir" ] && { log "removing a stale cluster '$name'"; cmd_down; }
  log "starting cluster '$name' (kube $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION)"
  local t1; t1=$(date +%s)
  # kwok fakes only the nodes annotated as fake (the real node is the kubelet's own); the API server listens on all
  # addresses so pods reach it through the `kubernetes` Service, dials kubelets by InternalIP with a client
  # certificate (the kubelet authenticates and authorises every request).
  # kwokctl v0.8.0 groups --extra-args by the index of a component's first one: the first arg of each component
  # must come before any second arg (apiserver at 0, controller-manager at 1, kwok at 2), or it panics.
  kwokctl --config "$here/kwokctl.yaml" create cluster --name "$name" --runtime binary \
    --kube-apiserver-binary "$bin_dir/kube-apiserver" \
    --kube-controller-manager-binary "$bin_dir/kube-controller-manager" \
    --kube-scheduler-binary "$bin_dir/kube-scheduler" \
    --kwok-controller-binary "$bin_dir/kwok" \
    --etcd-binary "$bin_dir/etcd" \
    --kube-authorization \
    --kube-audit-policy "$here/audit-policy.yaml" \
    --enable-crds Stage \
    --disable-qps-limits \
    --extra-args kube-apiserver=service-cluster-ip-range=10.96.0.0/16 \
    --extra-args kube-controller-manager=service-cluster-ip-range=10.96.0.0/16 \
    --extra-args kwok-controller=manage-all-nodes=false \
    --extra-args kwok-controller=manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --extra-args kube-apiserver=bind-address=0.0.0.0 \
    --extra-args kube-apiserver=kubelet-preferred-address-types=InternalIP,Hostname \
    --extra-args "kube-apiserver=kubelet-client-certificate=$cluster_dir/pki/admin.crt" \
    --extra-args "kube-apiserver=kubelet-client-key=$cluster_dir/pki/admin.key" \
    --extra-args "kube-apiserver=requestheader-client-ca-file=$cluster_dir/pki/ca.crt" \
    --extra-args kube-apiserver=requestheader-allowed-names=kwok-admin \
    --extra-args kube-apiserver=requestheader-username-headers=X-Remote-User \
    --extra-args kube-apiserver=requestheader-group-headers=X-Remote-Group \
    --extra-args kube-apiserver=requestheader-extra-headers-prefix=X-Remote-Extra- \
    --kubeconfig "$kubeconfig" \
    --wait 120s >&2
  add_nodes_and_stages
  local i
  for i in $(seq 1 120); do nodes_ready && break; sleep 0.5; done
  nodes_ready || { log "nodes did not become Ready"; kc get nodes >&2; exit 1; }
  log "cluster up in $(( $(date +%s) - t1 ))s (total $(( $(date +%s) - t0 ))s); $(kc get nodes --no-headers | wc -l) nodes Ready"
  up_real_node
}

up_real_node() {
  real_node_wanted || return 0
  local t0; t0=$(date +%s)
  bash "$here/node.sh" up
  log "real node stage: $(( $(date +%s) - t0 ))s"
}

cmd_down() {
  [ "$name" = "$default_name" ] && bash "$here/node.sh" down
  if command -v kwokctl >/dev/null && [ -d "$cluster_dir" ]; then
    kwokctl delete cluster --name "$name" >&2 || true
  fi
  rm -rf "$cluster_dir"
  log "cluster '$name' is down"
}

cmd_env() {
  cat <<ENV
export KUBECONFIG="$kubeconfig"
export PATH="$bin_dir:\$PATH"
export MODELDEPLOY_AUDIT_LOG="$cluster_dir/logs/audit.log"
export MODELDEPLOY_GATEWAY_API_CRDS="$data_dir/gateway-api-crds"
export MODELDEPLOY_PROMETHEUS_OPERATOR_CRDS="$data_dir/prometheus-operator-crds"
export MODELDEPLOY_KWOK_STAGES="$data_dir/kwok-stages"
export MODELDEPLOY_BIN_DIR="$bin_dir"
ENV
  real_node_wanted && bash "$here/node.sh" env
  return 0
}

cmd_status() {
  if healthy; then
    echo "cluster '$name' is up: $(kc version -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -1)"
    kc get nodes
  else
    echo "cluster '$name' is not running"
    return 1
  fi
}

cmd_install_crds() {
  case ${1:-} in
    gateway-api) kc apply --server-side -f "$data_dir/gateway-api-crds/" ;;
    prometheus-operator) kc apply --server-side -f "$data_dir/prometheus-operator-crds/" ;;
    *) echo "usage: cluster.sh install-crds gateway-api|prometheus-operator" >&2; exit 2 ;;
  esac
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  env) cmd_env ;;
  status) cmd_status ;;
  install-crds) shift; cmd_install_crds "$@" ;;
  *) echo "usage: $0 up|down|env|status|install-crds NAME" >&2; exit 2 ;;
esac
