#!/usr/bin/env bash
# Builds Argo Rollouts' controller and copies its CRDs from the pinned Go module into a cache keyed by the pin
# and this script. Logs go to stderr; the last line on stdout is the cache directory.
# Built through a wrapper module because go install refuses modules with replace directives.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=version.env
source "$here/version.env"

module=github.com/argoproj/argo-rollouts
version=$ARGO_ROLLOUTS_VERSION
cache_root=${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}
key=$(cat "$here/version.env" "$here/build.sh" | sha256sum | cut -c1-12)
out="$cache_root/argo-rollouts-$key"
log() { printf '[argo-rollouts %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ -x "$out/rollouts-controller" ] && [ -n "$(ls -A "$out/crds" 2>/dev/null)" ]; then
  log "cached: $out"
  echo "$out"
  exit 0
fi

# CPU is shared: lowest priority and one package at a time unless the caller says otherwise.
if [ -n "${MODELDEPLOY_BUILD_JOBS:-}" ]; then
  nice=() jobs=$MODELDEPLOY_BUILD_JOBS
else
  nice=(nice -n 19) jobs=1
fi
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$(date +%s)
log "building $module $version into $out"

gomod=$(cd "$work" && GOFLAGS= go mod download -json "$module@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
src=$(cd "$work" && GOFLAGS= go mod download -json "$module@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
[ -n "$gomod" ] && [ -d "$src" ] || { log "cannot download $module@$version"; exit 1; }

# Wrapper module: upstream's go line (a dependency may not need a newer Go than the main module), the pin,
# and upstream's replace directives, which only apply in the main module.
go_line=$(grep -m1 '^go ' "$gomod")
printf 'module modeldeploy.local/argo-rollouts\n\n%s\n' "$go_line" >"$work/go.mod"
(cd "$work" && go mod edit -require="$module@$version")
sed -n '/^replace (/,/^)/p; /^replace [^(]/p' "$gomod" | grep '=>' | sed 's/^replace //' |
  while read -r old _ new new_version; do
    (cd "$work" && go mod edit -replace="$old=$new${new_version:+@$new_version}")
  done
log "    $(grep -c '=>' "$work/go.mod") replace directives copied from upstream's go.mod"

# Network first: fetch every module the controller's packages need, then compile offline.
t0=$(date +%s)
(cd "$work" && go list -deps "$module/cmd/rollouts-controller" >/dev/null)
log "    modules downloaded in $(( $(date +%s) - t0 ))s"

# Upstream's Makefile ldflags; the module zip carries no commit, so a zero hash marks a clean tagged build.
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
pkg="$module/utils/version"
ldflags="-s -w -X $pkg.version=${version#v} -X $pkg.buildDate=$date -X $pkg.gitTag=$version"
ldflags+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000 -X $pkg.gitTreeState=clean"
mkdir -p "$out"
t0=$(date +%s)
(cd "$work" && "${nice[@]}" go build -p "$jobs" -trimpath -ldflags "$ldflags" -o "$out/rollouts-controller.tmp" \
  "$module/cmd/rollouts-controller")
mv "$out/rollouts-controller.tmp" "$out/rollouts-controller"
log "    rollouts-controller built in $(( $(date +%s) - t0 ))s ($(du -h "$out/rollouts-controller" | cut -f1))"

# The CRDs of the same release (kustomization.yaml is not a CRD).
rm -rf "$out/crds" && mkdir -p "$out/crds"
cp "$src"/manifests/crds/*-crd.yaml "$out/crds/"
chmod -R u+w "$out/crds"
log "    $(ls "$out/crds" | wc -l) CRDs copied from $module $version"
log "all done in $(( $(date +%s) - started ))s"
echo "$out"
