#!/usr/bin/env bash
# Builds the local control plane and the real node's Go binaries from Go modules.
# Each binary is built through a small wrapper module (go install refuses modules with replace directives) into
# store/<name>-<key>, where the key covers only that binary's own pins and build flags: changing one pin in
# versions.env rebuilds only what uses it. bin-<key of versions.env> holds hard links to the current set (PATH).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=build-lib.sh
source "$here/build-lib.sh"

cache_root=${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}
key=$(sha256sum "$here/versions.env" | cut -c1-12)
bin_dir="$cache_root/bin-$key"
data_dir="$cache_root/data-$key"
store="$cache_root/store"
mkdir -p "$bin_dir" "$data_dir" "$store"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step=0
total=10
log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
begin() { step=$((step + 1)); started=$(date +%s); log "($step/$total) $*"; }
done_step() { log "($step/$total) done in $(( $(date +%s) - started ))s"; }
# Links a stored binary into bin_dir; fails when the store does not have it yet.
link_stored() {
  local name=$1 ckey=$2
  [ -x "$store/$name-$ckey/$name" ] || return 1
  ln -f "$store/$name-$ckey/$name" "$bin_dir/$name"
}
# Moves a fresh build into the store and links it.
store_built() {
  local name=$1 ckey=$2 built=$3
  mkdir -p "$store/$name-$ckey"
  mv "$built" "$store/$name-$ckey/$name"
  link_stored "$name" "$ckey"
}

build_kubernetes() {
  local w="$work/k8s" minor gomod
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  wrapper "$w" k8s.io/kubernetes "$K8S_VERSION"
  gomod=$(module_path GoMod k8s.io/kubernetes "$K8S_VERSION")
  # Upstream's godebug line, and each staging module pinned to v0.<minor>.<patch>.
  grep '^godebug' "$gomod" >>"$w/go.mod" || true
  local staging_version="v0${K8S_VERSION#v1}"
  grep -oE '^\s*k8s.io/[a-z0-9-]+ => \./staging' "$gomod" | awk '{print $1}' | while read -r m; do
    (cd "$w" && go mod edit -replace="$m=$m@$staging_version")
  done
  log "    $(grep -c '=> k8s.io' "$w/go.mod") staging modules pinned to $staging_version"
  local date ldflags pkg="k8s.io/component-base/version" cpkg="k8s.io/client-go/pkg/version"
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  ldflags="-s -w"
  for p in $pkg $cpkg; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$date -X $p.gitCommit=0000000000000000000000000000000000000000"
  done
  local b ckey t0
  for b in "$@"; do
    ckey=$(kube_key "$b")
    link_stored "$b" "$ckey" && { log "    $b cached"; continue; }
    t0=$(date +%s)
    log "    building $b (k8s.io/kubernetes $K8S_VERSION)…"
    (cd "$w" && go build -trimpath -ldflags "$ldflags" -o "$work/$b.bin" "k8s.io/kubernetes/cmd/$b")
    store_built "$b" "$ckey" "$work/$b.bin"
    log "    $b built in $(( $(date +%s) - t0 ))s"
  done
}
kube_key() { component_key "$1" k8s.io/kubernetes "$K8S_VERSION" staging-pinned; }
# Links the stored kubernetes binaries that exist; true when all of them did.
kube_cached() { local b ok=0; for b in "$@"; do link_stored "$b" "$(kube_key "$b")" || ok=1; done; return $ok; }

# build_go_binary NAME MODULE VERSION PACKAGE [LDFLAGS [MAIN_GO]]
# MAIN_GO: the source of a main package written into the wrapper (PACKAGE is then ".").
build_go_binary() {
  local name=$1 module=$2 version=$3 package=$4 ldflags=${5:-"-s -w"} main_go=${6:-}
  local ckey; ckey=$(component_key "$name" "$module" "$version" "$package" "$ldflags" "$main_go")
  link_stored "$name" "$ckey" && { log "    $name cached"; return; }
  local w="$work/$name" t0
  t0=$(date +%s)
  wrapper "$w" "$module" "$version"
  [ -n "$main_go" ] && printf '%s\n' "$main_go" >"$w/main.go"
  log "    building $name ($module $version)…"
  (cd "$w" && go build -trimpath -ldflags "$ldflags" -o "$work/$name.bin" "$package")
  store_built "$name" "$ckey" "$work/$name.bin"
  log "    $name built in $(( $(date +%s) - t0 ))s"
}

# kwok's default node and pod Stages (applied as objects, since the Stage CRD is enabled) and its chaos Stages.
copy_stages() {
  local dest="$data_dir/kwok-stages" dir
  [ -d "$dest" ] && [ -n "$(ls -A "$dest")" ] && { log "    kwok-stages cached"; return; }
  dir=$(module_path Dir sigs.k8s.io/kwok "$KWOK_VERSION")
  mkdir -p "$dest"
  cp "$dir"/kustomize/stage/node/fast/node-initialize.yaml \
    "$dir"/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    "$dir"/kustomize/stage/pod/fast/pod-*.yaml "$dir"/kustomize/stage/pod/chaos/pod-*.yaml "$dest/"
  chmod -R u+w "$dest"
  log "    $(ls "$dest" | wc -l) kwok Stages from sigs.k8s.io/kwok $KWOK_VERSION"
}

all_started=$(date +%s)
log "cache: $bin_dir"

kube_control_plane=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
begin "kubernetes $K8S_VERSION: ${kube_control_plane[*]}"
kube_cached "${kube_control_plane[@]}" && log "    cached" || build_kubernetes "${kube_control_plane[@]}"
done_step

begin "etcd $ETCD_VERSION"
build_go_binary etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3
done_step

begin "kwok and kwokctl $KWOK_VERSION"
kwok_ld="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$K8S_VERSION"
build_go_binary kwok sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok "$kwok_ld"
build_go_binary kwokctl sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwokctl "$kwok_ld"
done_step

begin "helm $HELM_VERSION"
# Helm's Makefile: version, and the Kubernetes version `helm template` assumes (major+1.minor of its client-go).
helm_k8s=$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\.\([0-9]*\).*/\1 \2/p' \
  "$(module_path GoMod helm.sh/helm/v3 "$HELM_VERSION")")
helm_major=$(( ${helm_k8s%% *} + 1 ))
helm_minor=$(echo "$helm_k8s" | cut -d' ' -f2)
helm_ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
helm_ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in pkg/lint/rules pkg/chartutil; do
  helm_ld+=" -X helm.sh/helm/v3/$p.k8sVersionMajor=$helm_major -X helm.sh/helm/v3/$p.k8sVersionMinor=$helm_minor"
done
build_go_binary helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm "$helm_ld"
done_step

kube_node=(kubelet kube-proxy)
begin "real node: ${kube_node[*]} (kubernetes $K8S_VERSION), coredns $COREDNS_VERSION"
kube_cached "${kube_node[@]}" && log "    kubelet, kube-proxy cached" || build_kubernetes "${kube_node[@]}"
# CoreDNS with only the plugins a cluster DNS needs (no forward plugin: nothing is resolved off the machine).
coredns_main='package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The plugin order of the server blocks (CoreDNS normally generates it from plugin.cfg).
func init() {
	dnsserver.Directives = []string{"errors", "log", "health", "ready", "cache", "loadbalance", "kubernetes"}
}

func main() { coremain.Run() }'
build_go_binary coredns github.com/coredns/coredns "$COREDNS_VERSION" . \
  "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" "$coredns_main"
done_step

begin "metrics-server $METRICS_SERVER_VERSION"
build_go_binary metrics-server sigs.k8s.io/metrics-server "$METRICS_SERVER_VERSION" sigs.k8s.io/metrics-server/cmd/metrics-server \
  "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION -X k8s.io/component-base/version.gitVersion=$METRICS_SERVER_VERSION"
done_step

begin "promtool and prometheus (github.com/prometheus/prometheus $PROMETHEUS_MODULE_VERSION)"
# Module v0.3XX.Y is Prometheus 3.XX.Y.
prom_version=$(echo "$PROMETHEUS_MODULE_VERSION" | sed -E 's/^v0\.3([0-9]{2})\.([0-9]+)$/3.\1.\2/; s/^3\.0([0-9])/3.\1/')
prom_ld="-s -w -X github.com/prometheus/common/version.Version=$prom_version -X github.com/prometheus/common/version.Branch=release"
build_go_binary promtool github.com/prometheus/prometheus "$PROMETHEUS_MODULE_VERSION" github.com/prometheus/prometheus/cmd/promtool "$prom_ld"
build_go_binary prometheus github.com/prometheus/prometheus "$PROMETHEUS_MODULE_VERSION" github.com/prometheus/prometheus/cmd/prometheus "$prom_ld"
done_step

begin "Gateway API $GATEWAY_API_VERSION standard CRDs"
copy_crds sigs.k8s.io/gateway-api "$GATEWAY_API_VERSION" config/crd/standard "$data_dir/gateway-api-crds"
done_step

begin "prometheus-operator $PROMETHEUS_OPERATOR_VERSION CRDs"
copy_crds github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION" example/prometheus-operator-crd "$data_dir/prometheus-operator-crds"
done_step

begin "kwok $KWOK_VERSION Stages"
copy_stages
done_step

log "all built in $(( $(date +%s) - all_started ))s; cache uses $(du -sh "$cache_root" | cut -f1)"
