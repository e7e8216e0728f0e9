#!/usr/bin/env bash
# The real node `real-0`: containerd + kubelet + kube-proxy on this machine, joined to the default local cluster.
#   node.sh up                 start it (or reuse a healthy one); cleans what a killed run left first
#   node.sh down               stop it and remove everything it made; the egress guards go last
#   node.sh status             say whether it runs, with the guard rules
#   node.sh guards apply|check|remove   the mangle-table rules that keep cluster traffic on this machine
#   node.sh import FILE...     import OCI archives into the node's containerd (namespace k8s.io)
#   node.sh import-image REF...  push buildah images (e.g. localhost/modelserve:dev) and import them
#   node.sh env                print the exports the tests use (socket, node name, CIDRs)
# Needs root. Set MODELDEPLOY_REAL_NODE=0 to run the default cluster with kwok nodes only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/paths.sh"

NODE=real-0
POD_CIDR=10.244.0.0/22
SERVICE_CIDR=10.96.0.0/16
DNS_IP=10.96.0.10
TAINT_KEY=modeldeploy.io/real-node
METRICS_PORT=4443
state="$cache_root/realnode"
images="$cache_root/node-images"
root_dir=/var/lib/modeldeploy-node
run_dir=/run/modeldeploy-node
sock="$run_dir/containerd/containerd.sock"
# Kernel settings the kubelet and kube-proxy may change: saved before the first start, restored by down.
SYSCTLS=(net.ipv4.ip_forward vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.conf.all.route_localnet
  net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables)
GUARD_OUT=MODELDEPLOY-GUARD-OUT
GUARD_FWD=MODELDEPLOY-GUARD-FWD
GUARD_IN=MODELDEPLOY-GUARD-IN

log() { printf '[node %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }
ipt() { iptables -w 5 "$@"; }
ctr_() { ctr --address "$sock" -n k8s.io "$@"; }
since() { echo "$(( $(date +%s%N) / 1000000 - $1 ))ms"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

require_root() {
  [ "$(id -u)" -eq 0 ] && return
  die "the real node '$NODE' needs root (containerd, the kubelet, kube-proxy and iptables). Run as root, or set MODELDEPLOY_REAL_NODE=0 to start the cluster with kwok nodes only."
}

uplink() { ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }'; }
node_ip() { ip -4 -o addr show dev "$(uplink)" | awk '{split($4, a, "/"); print a[1]; exit}'; }
# IPv4 resolvers of this machine: their traffic is never blocked (every package download needs them).
resolvers() { awk '$1 == "nameserver" && $2 ~ /^[0-9.]+$/ {print $2}' /etc/resolv.conf; }
apiserver_port() { kc config view --minify -o jsonpath='{.clusters[0].cluster.server}' | sed 's/.*://'; }

# ---------------------------------------------------------------------------------------------------------------
# Egress guards. Everything lives in the mangle table (kube-proxy never writes there), in three chains jumped to
# from rule 1 of POSTROUTING, FORWARD and INPUT. Applied atomically with iptables-restore before ip_forward is set.
guards_rules() {
  local up=$1 api_port=$2 r
  echo '*mangle'
  echo ":$GUARD_OUT - [0:0]"
  echo ":$GUARD_FWD - [0:0]"
  echo ":$GUARD_IN - [0:0]"
  # The machine's DNS resolver first: blocking it would stop every package download.
  for r in $(resolvers); do echo "-A $GUARD_OUT -d $r/32 -j ACCEPT"; done
  # Nothing the cluster rewrote (a ClusterIP DNATed by kube-proxy) and nothing from a pod leaves by the uplink,
  echo "-A $GUARD_OUT -o $up -m conntrack --ctstate DNAT -j DROP"
  echo "-A $GUARD_OUT -o $up -s $POD_CIDR -j DROP"
  # nor anything addressed to a private range (the pod and Service ranges are inside 10.0.0.0/8).
  for r in 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16; do echo "-A $GUARD_OUT -o $up -d $r -j DROP"; done
  # Nothing is forwarded out of (or into) the machine: pods talk to pods, Services and the API server only.
  echo "-A $GUARD_FWD -o $up -j DROP"
  echo "-A $GUARD_FWD -i $up -j DROP"
  # The kubelet, metrics-server and the API server listen on the uplink's address: nobody outside may connect.
  echo "-A $GUARD_IN -i $up -p tcp -m multiport --dports 10250,$METRICS_PORT,$api_port -j DROP"
  # Pods reach the host only at the API server's port (the `kubernetes` Service); replies to the host pass.
  echo "-A $GUARD_IN -s $POD_CIDR -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN"
  echo "-A $GUARD_IN -s $POD_CIDR -p tcp --dport $api_port -j RETURN"
  echo "-A $GUARD_IN -s $POD_CIDR -j DROP"
  echo 'COMMIT'
}

# Puts `-j CHAIN` at rule 1 of BUILTIN (inserted first, then older copies removed: no moment without it).
jump_first() {
  local builtin=$1 chain=$2
  [ "$(ipt -t mangle -S "$builtin" | sed -n 2p)" = "-A $builtin -j $chain" ] && return
  ipt -t mangle -I "$builtin" 1 -j "$chain"
  while [ "$(ipt -t mangle -S "$builtin" | grep -c -- "-j $chain\$")" -gt 1 ]; do
    ipt -t mangle -D "$builtin" "$(ipt -t mangle -L "$builtin" --line-numbers | awk -v c="$chain" '$2 == c {n = $1} END {print n}')"
  done
}

guards_apply() {
  local up api_port
  up=$(uplink)
  [ -n "$up" ] || die "no default route: cannot tell the uplink the guards must close"
  [ -n "$(resolvers)" ] || log "warning: no IPv4 nameserver in /etc/resolv.conf"
  api_port=$(apiserver_port)
  [ -n "$api_port" ] || die "cannot read the API server's port from $kubeconfig"
  guards_rules "$up" "$api_port" | iptables-restore -w 5 --noflush
  jump_first POSTROUTING "$GUARD_OUT"
  jump_first FORWARD "$GUARD_FWD"
  jump_first INPUT "$GUARD_IN"
}

# True when all three jumps are rule 1 and the chains hold their rules.
guards_check() {
  local b c
  for b in POSTROUTING:$GUARD_OUT FORWARD:$GUARD_FWD INPUT:$GUARD_IN; do
    c=${b#*:}
    [ "$(ipt -t mangle -S "${b%%:*}" 2>/dev/null | sed -n 2p)" = "-A ${b%%:*} -j $c" ] || return 1
    [ "$(ipt -t mangle -S "$c" 2>/dev/null | grep -c -- '-j DROP')" -ge 1 ] || return 1
  done
}

guards_remove() {
  local b
  for b in POSTROUTING:$GUARD_OUT FORWARD:$GUARD_FWD INPUT:$GUARD_IN; do
    while ipt -t mangle -D "${b%%:*}" -j "${b#*:}" 2>/dev/null; do :; done
    ipt -t mangle -F "${b#*:}" 2>/dev/null || true
    ipt -t mangle -X "${b#*:}" 2>/dev/null || true
  done
}

# ---------------------------------------------------------------------------------------------------------------
# Sysctls: snapshot once (a killed run keeps the first snapshot: it holds the machine's own values).
sysctl_snapshot() {
  [ -f "$state/sysctl.orig" ] && return
  local s
  for s in "${SYSCTLS[@]}"; do
    [ -e "/proc/sys/${s//.//}" ] && echo "$s=$(cat "/proc/sys/${s//.//}")"
  done >"$state/sysctl.orig.tmp"
  mv "$state/sysctl.orig.tmp" "$state/sysctl.orig"
}

sysctl_restore() {
  [ -f "$state/sysctl.orig" ] || return 0
  local line
  while IFS= read -r line; do sysctl -qw "$line" >/dev/null || log "could not restore $line"; done <"$state/sysctl.orig"
  rm -f "$state/sysctl.orig"
}

# ---------------------------------------------------------------------------------------------------------------
# Processes, by PID file; a PID is only signalled while it still runs the binary we started.
start_daemon() {
  local label=$1
  shift
  setsid "$@" >>"$state/logs/$label.log" 2>&1 </dev/null &
  echo $! >"$state/$label.pid"
}

running() {
  local label=$1 pid exe
  pid=$(cat "$state/$label.pid" 2>/dev/null) || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [[ $(basename "$exe") == "$label"* ]]
}

stop_daemon() {
  local label=$1 pid i
  if running "$label"; then
    pid=$(cat "$state/$label.pid")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$state/$label.pid"
}

# Processes of pods: those in the kubelet's cgroups, and shims serving our containerd socket.
pod_pids() {
  local f
  for f in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/unified/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$f" ] && find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -un
}

shim_pids() {
  local p
  for p in /proc/[0-9]*; do
    { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "containerd-shim.* -address $sock" && basename "$p"
  done
}

kill_pids() { local p; for p in "$@"; do kill -9 "$p" 2>/dev/null || true; done; }

# ---------------------------------------------------------------------------------------------------------------
# Identities: client certificates from the cluster's CA for the kubelet (system:node:real-0, Node authorizer)
# and kube-proxy (system:kube-proxy, the system:node-proxier role).
client_kubeconfig() {
  local out=$1 cn=$2 org=$3 server pki="$cluster_dir/pki"
  server=$(kc config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$out.key" -subj "/O=$org/CN=$cn" \
    2>/dev/null | openssl x509 -req -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 30 \
    -out "$out.crt" 2>/dev/null
  cat >"$out" <<KC
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "$server", certificate-authority: "$pki/ca.crt"}}]
users: [{name: "$cn", user: {client-certificate: "$out.crt", client-key: "$out.key"}}]
contexts: [{name: local, context: {cluster: local, user: "$cn"}}]
current-context: local
KC
}

render() {
  sed -e "s|@ROOT@|$root_dir|g" -e "s|@RUN@|$run_dir|g" -e "s|@STATE@|$state|g" -e "s|@POD_CIDR@|$POD_CIDR|g" \
    -e "s|@NODE@|$NODE|g" -e "s|@NODE_IP@|$(node_ip)|g" -e "s|@DNS_IP@|$DNS_IP|g" \
    -e "s|@CA@|$cluster_dir/pki/ca.crt|g" -e "s|@COREDNS_VERSION@|$COREDNS_VERSION|g" \
    -e "s|@METRICS_SERVER_VERSION@|$METRICS_SERVER_VERSION|g" -e "s|@METRICS_PORT@|$METRICS_PORT|g" "$here/node/$1"
}

# ---------------------------------------------------------------------------------------------------------------
# Images: built with buildah into OCI archives (cached by their inputs), imported with `ctr images import`.
image_archive() { echo "$images/$1-$2.tar"; }

build_scratch_image() {
  local ref=$1 out=$2 setup=$3 c m
  c=$(buildah from scratch)
  m=$(buildah mount "$c")
  "$setup" "$m" "$c"
  buildah umount "$c" >/dev/null
  buildah commit -q "$c" "$ref" >/dev/null
  buildah rm "$c" >/dev/null
  rm -f "$out.tmp"
  buildah push -q "$ref" "oci-archive:$out.tmp:$ref" >/dev/null
  mv "$out.tmp" "$out"
}

setup_pause() {
  gcc -Os -static -o "$1/pause" "$here/node/pause.c" && strip "$1/pause"
  buildah config --entrypoint '["/pause"]' --user 65535:65535 "$2"
}

setup_tools() {
  mkdir -p "$1/bin" "$1/tmp" "$1/etc"
  cp /bin/busybox "$1/bin/busybox"
  chroot "$1" /bin/busybox --install -s /bin
  chmod 1777 "$1/tmp"
  echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >"$1/etc/passwd"
  buildah config --cmd '["/bin/sh"]' --user 65534:65534 "$2"
}

setup_coredns() {
  mkdir -p "$1/etc/coredns"
  cp "$bin_dir/coredns" "$1/coredns"
  buildah config --entrypoint '["/coredns"]' --cmd '["-conf", "/etc/coredns/Corefile"]' --user 65534:65534 "$2"
}

setup_metrics_server() {
  mkdir -p "$1/tmp"
  cp "$bin_dir/metrics-server" "$1/metrics-server"
  buildah config --entrypoint '["/metrics-server"]' --user 65534:65534 "$2"
}

# The node's own images: name, tag, inputs of the cache key, setup function.
node_images() {
  echo "localhost/pause:3.10 $(sha256sum "$here/node/pause.c" | cut -c1-12) setup_pause"
  echo "localhost/modeldeploy-tools:local $(dpkg-query -W -f='${Version}' busybox-static | sha256sum | cut -c1-12) setup_tools"
  echo "localhost/coredns:$COREDNS_VERSION $(sha256sum "$bin_dir/coredns" | cut -c1-12) setup_coredns"
  echo "localhost/metrics-server:$METRICS_SERVER_VERSION $(sha256sum "$bin_dir/metrics-server" | cut -c1-12) setup_metrics_server"
}

build_images() {
  mkdir -p "$images"
  local ref ikey setup out t0 base
  while read -r ref ikey setup; do
    base=${ref#localhost/}
    out=$(image_archive "${base%%:*}" "$ikey")
    [ -f "$out" ] && continue
    t0=$(now_ms)
    build_scratch_image "$ref" "$out" "$setup"
    log "image $ref built in $(since "$t0")"
  done < <(node_images)
}

import_archives() {
  local f
  for f in "$@"; do ctr_ images import "$f" >/dev/null; done
}

import_node_images() {
  local ref ikey setup base
  while read -r ref ikey setup; do
    base=${ref#localhost/}
    import_archives "$(image_archive "${base%%:*}" "$ikey")"
  done < <(node_images)
}

# Pushes buildah images to a temporary archive each and imports them (for modelserve, the operator, …).
import_buildah_images() {
  local ref tmp
  tmp=$(mktemp -d)
  for ref in "$@"; do
    buildah push -q "$ref" "oci-archive:$tmp/image.tar:$ref" >/dev/null
    import_archives "$tmp/image.tar"
    rm -f "$tmp/image.tar"
  done
  rm -rf "$tmp"
}

# ---------------------------------------------------------------------------------------------------------------
node_ready() {
  [ "$(kc get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

healthy() {
  running containerd && running kubelet && running kube-proxy && guards_check && node_ready
}

wait_for() {
  local what=$1 tries=$2
  shift 2
  local i
  for i in $(seq 1 "$tries"); do "$@" && return 0; sleep 0.2; done
  die "$what did not happen within $((tries / 5))s (logs: $state/logs/)"
}

socket_answers() { ctr --address "$sock" version >/dev/null 2>&1; }
proxy_healthy() { curl -sf http://127.0.0.1:10256/healthz >/dev/null 2>&1; }

# kwok manages only the nodes annotated as fake (cluster.sh's flags); a Lease held by the node before it registers
# keeps kwok away even if those flags were lost (kwok treats a node whose lease another holder renews as read-only).
precreate_lease() {
  kc apply -f - >/dev/null <<LEASE
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: $NODE, namespace: kube-node-lease}
spec: {holderIdentity: $NODE, leaseDurationSeconds: 40, renewTime: "$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)"}
LEASE
}

node_up() {
  require_root
  [ -f "$kubeconfig" ] || die "cluster '$name' has no kubeconfig: start it with cluster.sh up"
  local t0 t
  t0=$(now_ms)
  if healthy; then
    log "reusing the healthy node $NODE"
    return
  fi
  [ -d "$state" ] && [ -n "$(ls -A "$state" 2>/dev/null)" ] && { log "cleaning what an earlier run left"; node_down keep-guards; }
  mkdir -p "$state/logs" "$root_dir" "$run_dir"
  [ -d /var/log/pods ] || touch "$state/made-var-log-pods"

  sysctl_snapshot
  guards_apply
  log "egress guards in place (mangle: $GUARD_OUT, $GUARD_FWD, $GUARD_IN)"

  t=$(now_ms)
  build_images
  client_kubeconfig "$state/kubelet.kubeconfig" "system:node:$NODE" system:nodes
  client_kubeconfig "$state/kube-proxy.kubeconfig" system:kube-proxy system:node-proxier
  mkdir -p "$state/cni"
  render cni.conflist >"$state/cni/10-modeldeploy.conflist"
  render containerd.toml >"$state/containerd.toml"
  render kubelet.yaml >"$state/kubelet.yaml"
  render kube-proxy.yaml >"$state/kube-proxy.yaml"
  echo 'nameserver 127.0.0.1' >"$state/resolv.conf"
  log "images and configuration ready in $(since "$t")"

  t=$(now_ms)
  # Registries are unreachable on purpose: the proxy variables point every pull at a port that refuses.
  start_daemon containerd env HTTP_PROXY=http://127.0.0.1:1 HTTPS_PROXY=http://127.0.0.1:1 NO_PROXY= \
    containerd --config "$state/containerd.toml"
  wait_for "containerd's socket" 100 socket_answers
  import_node_images
  log "containerd up, images imported in $(since "$t")"

  t=$(now_ms)
  kc delete node "$NODE" --ignore-not-found --wait=false >/dev/null
  precreate_lease
  start_daemon kubelet "$bin_dir/kubelet" --config="$state/kubelet.yaml" --kubeconfig="$state/kubelet.kubeconfig" \
    --root-dir="$root_dir/kubelet" --hostname-override="$NODE" --node-ip="$(node_ip)" \
    --node-labels="$TAINT_KEY=true" --v=1
  wait_for "node $NODE Ready" 300 node_ready
  log "kubelet up, node $NODE Ready in $(since "$t")"

  t=$(now_ms)
  guards_check || die "the egress guards are not in place: refusing to enable forwarding"
  sysctl -qw net.ipv4.ip_forward=1
  start_daemon kube-proxy "$bin_dir/kube-proxy" --config="$state/kube-proxy.yaml" --v=1
  wait_for "kube-proxy healthz" 150 proxy_healthy
  guards_apply
  log "kube-proxy up in $(since "$t")"

  t=$(now_ms)
  render coredns.yaml | kc apply -f - >/dev/null
  render metrics-server.yaml | kc apply -f - >/dev/null
  kc -n kube-system rollout status deployment/coredns --timeout=120s >/dev/null
  log "CoreDNS ready in $(since "$t")"
  kc -n kube-system rollout status deployment/metrics-server --timeout=120s >/dev/null
  kc wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout=60s >/dev/null
  log "metrics-server ready, metrics.k8s.io available in $(since "$t")"
  log "node $NODE up in $(since "$t0")"
}

unmount_under() {
  local dir=$1 m
  { grep -o " $dir[^ ]*" /proc/self/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# Rules and chains kube-proxy and the kubelet made (kube-proxy --cleanup misses the KUBE-FIREWALL chains).
remove_kube_chains() {
  local cmd table rule chain
  for cmd in iptables ip6tables; do
    for table in filter nat mangle; do
      { "$cmd" -w 5 -t "$table" -S 2>/dev/null || true; } | { grep -- '-j KUBE-' || true; } | { grep -v '^-A KUBE-' || true; } |
        sed 's/^-A //' | while read -r rule; do eval "$cmd -w 5 -t $table -D $rule" 2>/dev/null || true; done
      for chain in $("$cmd" -w 5 -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do
        "$cmd" -w 5 -t "$table" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$cmd" -w 5 -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do
        "$cmd" -w 5 -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
}

remove_kube_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/unified/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

# $1 = keep-guards: an `up` cleaning a killed run keeps the guards (it re-applies them right after).
node_down() {
  local keep=${1:-}
  if [ "$(id -u)" -ne 0 ]; then
    [ -d "$state" ] && [ -n "$(ls "$state"/*.pid 2>/dev/null)" ] && require_root
    return 0
  fi
  local t0
  t0=$(now_ms)
  stop_daemon kube-proxy
  stop_daemon kubelet
  if socket_answers; then
    local id
    for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
  fi
  kill_pids $(pod_pids)
  stop_daemon containerd
  kill_pids $(shim_pids) $(pod_pids)
  sleep 0.2
  unmount_under "$run_dir"
  unmount_under "$root_dir"
  local ns
  for ns in /run/netns/cni-*; do
    [ -e "$ns" ] || continue
    umount "$ns" 2>/dev/null || true
    rm -f "$ns"
  done
  ip link del cni0 2>/dev/null || true
  rm -rf "$root_dir" "$run_dir"
  [ -x "$bin_dir/kube-proxy" ] && "$bin_dir/kube-proxy" --cleanup >/dev/null 2>&1 || true
  remove_kube_chains
  remove_kube_cgroups
  if [ -f "$state/made-var-log-pods" ]; then rm -rf /var/log/pods /var/log/containers; fi
  if [ -f "$kubeconfig" ] && kc get --raw /readyz >/dev/null 2>&1; then
    kc delete node "$NODE" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    kc -n kube-node-lease delete lease "$NODE" --ignore-not-found >/dev/null 2>&1 || true
  fi
  sysctl_restore
  [ "$keep" = keep-guards ] || guards_remove
  rm -rf "$state"
  log "node $NODE removed in $(since "$t0")$([ "$keep" = keep-guards ] && echo ' (guards kept)')"
}

node_status() {
  if healthy; then echo "node $NODE is up"; else echo "node $NODE is not running"; fi
  iptables -w 5 -t mangle -S 2>/dev/null | grep MODELDEPLOY || echo "no guard rules"
  healthy
}

node_env() {
  cat <<ENV
export MODELDEPLOY_REAL_NODE_NAME="$NODE"
export MODELDEPLOY_REAL_NODE_TAINT="$TAINT_KEY"
export MODELDEPLOY_REAL_NODE_STATE="$state"
export MODELDEPLOY_REAL_NODE_SOCKET="$sock"
export MODELDEPLOY_POD_CIDR="$POD_CIDR"
export MODELDEPLOY_SERVICE_CIDR="$SERVICE_CIDR"
ENV
}

case ${1:-} in
  up) node_up ;;
  down) node_down ;;
  status) node_status ;;
  env) node_env ;;
  guards)
    require_root
    case ${2:-} in
      apply) guards_apply ;;
      check) guards_check ;;
      remove) guards_remove ;;
      *) echo "usage: $0 guards apply|check|remove" >&2; exit 2 ;;
    esac ;;
  import) shift; require_root; import_archives "$@" ;;
  import-image) shift; require_root; import_buildah_images "$@" ;;
  *) echo "usage: $0 up|down|status|env|guards|import FILE...|import-image REF..." >&2; exit 2 ;;
esac
