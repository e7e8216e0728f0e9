#!/usr/bin/env bash
# Builds operator/Dockerfile with buildah (no Docker engine here) against the local stand-in base
# (tests/image/build-base.sh), so nothing is pulled from a registry. The tag is a hash of every build
# input; an existing tag is reused. Prints the image name on stdout; progress goes to stderr.
#   BASE_IMAGE=...   use this base instead of the stand-in (e.g. python:3.11.11-slim-bookworm)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
buildah=(buildah --storage-driver vfs)
log() { printf '[operator-image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

base=${BASE_IMAGE:-$("$repo/tests/image/build-base.sh")}
base_id=$("${buildah[@]}" inspect --type image --format '{{.FromImageID}}' "$base" 2>/dev/null || echo "$base")

# Key: the base, this script, and every file the Dockerfile copies.
key=$(
  {
    echo "$base_id"
    sha256sum "$here/build-operator-image.sh"
    cd "$repo" && find operator/Dockerfile pyproject.toml README.md operator/modeldeploy \
      -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-12
)
image=localhost/modeldeploy-operator:$key

if "${buildah[@]}" inspect --type image "$image" >/dev/null 2>&1; then
  log "cached: $image"
  echo "$image"
  exit 0
fi

ca_args=()
host_ca=/etc/ssl/certs/ca-certificates.crt
# pip inside RUN steps trusts the host's CA bundle (the package index may sit behind a TLS proxy).
[ -r "$host_ca" ] && ca_args=(--volume "$host_ca:/host-ca.crt:ro" --build-arg PIP_CERT=/host-ca.crt)

started=$(date +%s)
log "building $image from $base"
# The context is the repository root (pyproject.toml and operator/ live there).
"${buildah[@]}" bud --isolation chroot --format docker --layers \
  --build-arg BASE_IMAGE="$base" "${ca_args[@]}" \
  --tag "$image" --tag localhost/modeldeploy-operator:dev \
  --file "$repo/operator/Dockerfile" "$repo" >&2
log "built $image in $(( $(date +%s) - started ))s"
# vfs stores every image as a full copy: drop earlier builds (the layer cache stays for fast rebuilds).
"${buildah[@]}" images --format '{{.Name}}:{{.Tag}}' | grep -E '^localhost/modeldeploy-operator:[0-9a-f]{12}$' |
  grep -vx "$image" | xargs -r "${buildah[@]}" rmi >/dev/null 2>&1 || true
echo "$image"
