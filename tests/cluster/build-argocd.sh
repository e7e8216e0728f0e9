#!/usr/bin/env bash
# Builds Argo CD from its Go module into a cache keyed by its pins and this script, and prints the build time.
# One binary acts as argocd, argocd-server, argocd-repo-server or argocd-application-controller by the name it
# is called with, so the other three are symlinks. The UI is not built: the module ships a placeholder for it.
# The module's CRD manifests land in <cache>/crds. Prints the cache folder on stdout (logs go to stderr).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=build-lib.sh
source "$here/build-lib.sh"

module=github.com/argoproj/argo-cd/v3
engine_module=github.com/argoproj/gitops-engine
cache_root=${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}
# Only Argo CD's own pins: a Kubernetes pin change must not cost a 30-minute rebuild.
key=$(component_key argocd "$ARGOCD_VERSION" "$ARGOCD_GITOPS_ENGINE_VERSION" "$ARGOCD_GIT_COMMIT" \
  "$(sha256sum "$here/build-argocd.sh" | cut -c1-64)")
out="$cache_root/argocd-$key"
log() { printf '[build-argocd %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=mod -p=${MODELDEPLOY_BUILD_JOBS:-1}"
work=$(mktemp -d)
trap 'rm -rf "$work" "$out.tmp"' EXIT

# True when BINARY reports exactly the pinned release and commit.
reports_pins() {
  local v
  v=$("$1" version --client 2>/dev/null) || return 1
  grep -qx "argocd: $ARGOCD_VERSION" <<<"$v" && grep -q "GitCommit: $ARGOCD_GIT_COMMIT" <<<"$v"
}

link_names() {
  local name
  for name in argocd-server argocd-repo-server argocd-application-controller; do ln -sf argocd "$1/$name"; done
}

# An earlier build of the same pins, cached under another key (this script changed since): copy it instead of
# recompiling for ~30 minutes. Only a binary that reports the pinned version and commit is taken.
seed_from_earlier_build() {
  local candidate
  for candidate in "$cache_root"/argocd-*/argocd; do
    [ -x "$candidate" ] && [ "$(dirname "$candidate")" != "$out" ] || continue
    reports_pins "$candidate" || continue
    log "seeding $out from $(dirname "$candidate") (a build of the same pins: $ARGOCD_VERSION $ARGOCD_GIT_COMMIT)"
    mkdir -p "$out.tmp"
    cp "$candidate" "$out.tmp/argocd" || return 1
    link_names "$out.tmp"
    mv "$out.tmp" "$out"
    return 0
  done
  return 1
}

build() {
  local started t0 gomod engine kubectl_version ldflags pkg=$module/common
  started=$(date +%s)
  log "building $module $ARGOCD_VERSION into $out (GOFLAGS=$GOFLAGS)"
  gomod=$(module_path GoMod "$module" "$ARGOCD_VERSION")
  # The wrapper requires the pins and carries upstream's go, godebug and replace lines (go install ignores them).
  wrapper "$work/argocd" "$module" "$ARGOCD_VERSION" "$(sed -n 's/^go //p' "$gomod")"
  cd "$work/argocd"
  go mod edit -require="$engine_module@$ARGOCD_GITOPS_ENGINE_VERSION"
  grep '^godebug' "$gomod" >>go.mod || true
  # Every "old [v] => new v" line of upstream's go.mod; a local-path replace cannot be copied and stops the build.
  if grep -qE '=>\s*\.' "$gomod"; then
    log "upstream go.mod replaces a module by a local path; cannot build through a wrapper"
    exit 1
  fi
  grep -E '^\s*(replace\s+)?\S+(\s+v\S+)?\s+=>\s+\S+\s+v\S+' "$gomod" | sed -E 's/^\s*(replace\s+)?//' |
    while read -r old a b c d; do
      if [ "$a" = "=>" ]; then go mod edit -replace="$old=$b@$c"; else go mod edit -replace="$old@$a=$c@$d"; fi
    done
  log "    $(grep -c '=>' go.mod) replace directives copied from upstream"

  # Network first (module downloads), then the CPU-bound compile.
  t0=$(date +%s)
  go list -deps "$module/cmd" >/dev/null
  engine=$(go list -m -f '{{.Version}}' "$engine_module")
  if [ "$engine" != "$ARGOCD_GITOPS_ENGINE_VERSION" ]; then
    log "gitops-engine resolved to $engine, pinned $ARGOCD_GITOPS_ENGINE_VERSION"
    exit 1
  fi
  log "    modules downloaded in $(( $(date +%s) - t0 ))s (gitops-engine $engine)"

  # Version stamps as upstream's Makefile sets them (package common).
  kubectl_version=$(go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' k8s.io/client-go)
  ldflags="-s -w -X $pkg.version=${ARGOCD_VERSION#v} -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  ldflags+=" -X $pkg.gitCommit=$ARGOCD_GIT_COMMIT -X $pkg.gitTreeState=clean -X $pkg.gitTag=$ARGOCD_VERSION"
  ldflags+=" -X $pkg.kubectlVersion=$kubectl_version"
  t0=$(date +%s)
  mkdir -p "$out.tmp"
  # CPU is shared: one package at a time unless the caller asks for more, at the lowest priority.
  nice -n 19 go build -trimpath -ldflags "$ldflags" -o "$out.tmp/argocd" "$module/cmd"
  link_names "$out.tmp"
  rm -rf "$out"
  mv "$out.tmp" "$out"
  log "    compiled in $(( $(date +%s) - t0 ))s; binary $(du -h "$out/argocd" | cut -f1)"
  log "argocd $ARGOCD_VERSION built in $(( $(date +%s) - started ))s: $out"
}

if [ -x "$out/argocd" ]; then
  log "cached: $out"
else
  seed_from_earlier_build || build
fi
# Application, AppProject and ApplicationSet CRDs (not the folder's kustomization.yaml).
copy_crds "$module" "$ARGOCD_VERSION" manifests/crds "$out/crds" '*-crd.yaml'
echo "$out"
