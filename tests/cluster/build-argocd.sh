#!/usr/bin/env bash
# Builds Argo CD from its Go module into a cache keyed by the pin and this script, and prints the build time.
# One binary acts as argocd, argocd-server, argocd-repo-server or argocd-application-controller by the name it
# is called with, so the other three are symlinks. The UI is not built: the module ships a placeholder for it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=argocd.env
source "$here/argocd.env"

cache_root=${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}
key=$(cat "$here/argocd.env" "$here/build-argocd.sh" | sha256sum | cut -c1-12)
out="$cache_root/argocd-$key"
module=github.com/argoproj/argo-cd/v3
log() { printf '[build-argocd %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if [ -x "$out/argocd" ]; then
  log "cached: $out"
  exit 0
fi

# CPU is shared: one package at a time unless the caller asks for more, at the lowest priority.
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=mod -p=${MODELDEPLOY_BUILD_JOBS:-1}"
work=$(mktemp -d)
trap 'rm -rf "$work" "$out.tmp"' EXIT
started=$(date +%s)
log "building $module $ARGOCD_VERSION into $out (GOFLAGS=$GOFLAGS)"

# The wrapper module: requires the pin and carries upstream's replace (and godebug) lines, which go install ignores.
printf 'module modeldeploy.local/build-argocd\n\ngo 1.25.5\n' >"$work/go.mod"
cd "$work"
gomod=$(GOFLAGS= go mod download -json "$module@$ARGOCD_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
go mod edit -require="$module@$ARGOCD_VERSION" \
  -require="github.com/argoproj/gitops-engine@$ARGOCD_GITOPS_ENGINE_VERSION"
grep '^godebug' "$gomod" >>go.mod || true
# Every "old [v] => new v" line of upstream's go.mod; a local-path replace cannot be copied and stops the build.
if grep -qE '=>\s*\.' "$gomod"; then
  log "upstream go.mod replaces a module by a local path; cannot build through a wrapper" >&2
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
engine=$(go list -m -f '{{.Version}}' github.com/argoproj/gitops-engine)
if [ "$engine" != "$ARGOCD_GITOPS_ENGINE_VERSION" ]; then
  log "gitops-engine resolved to $engine, pinned $ARGOCD_GITOPS_ENGINE_VERSION" >&2
  exit 1
fi
log "    modules downloaded in $(( $(date +%s) - t0 ))s (gitops-engine $engine)"

# Version stamps as upstream's Makefile sets them (package common).
pkg=$module/common
kubectl_version=$(go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' k8s.io/client-go)
ldflags="-s -w -X $pkg.version=${ARGOCD_VERSION#v} -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ldflags+=" -X $pkg.gitCommit=$ARGOCD_GIT_COMMIT -X $pkg.gitTreeState=clean -X $pkg.gitTag=$ARGOCD_VERSION"
ldflags+=" -X $pkg.kubectlVersion=$kubectl_version"
t0=$(date +%s)
mkdir -p "$out.tmp"
nice -n 19 go build -trimpath -ldflags "$ldflags" -o "$out.tmp/argocd" "$module/cmd"
for name in argocd-server argocd-repo-server argocd-application-controller; do
  ln -sf argocd "$out.tmp/$name"
done
rm -rf "$out"
mv "$out.tmp" "$out"
log "    compiled in $(( $(date +%s) - t0 ))s; binary $(du -h "$out/argocd" | cut -f1)"
log "argocd $ARGOCD_VERSION built in $(( $(date +%s) - started ))s: $out"
