#!/usr/bin/env bash
# Builds serving-image/Dockerfile with buildah (no Docker engine here) against the local stand-in base,
# so nothing is pulled from a registry. The tag is a hash of every build input; an existing tag is
# reused, so reruns take a second. Prints the image name on stdout; progress goes to stderr.
#   BASE_IMAGE=...   use this base instead of the stand-in (e.g. python:3.11.11-slim-bookworm)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
context="$repo/serving-image"
buildah=(buildah --storage-driver vfs)
log() { printf '[image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

base=${BASE_IMAGE:-$("$here/build-base.sh")}
base_id=$("${buildah[@]}" inspect --type image --format '{{.FromImageID}}' "$base" 2>/dev/null || echo "$base")

# Key: the base, this script, and every file the build context can see.
key=$(
  {
    echo "$base_id"
    sha256sum "$here/build-serving-image.sh"
    cd "$context" && find Dockerfile .dockerignore constraints.txt pyproject.toml README.md modelserve \
      -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-12
)
image=localhost/modelserve:$key

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
# --format docker keeps HEALTHCHECK (the OCI image config has no field for it).
"${buildah[@]}" bud --isolation chroot --format docker --layers \
  --build-arg BASE_IMAGE="$base" "${ca_args[@]}" \
  --tag "$image" --tag localhost/modelserve:dev \
  --file "$context/Dockerfile" "$context" >&2
log "built $image in $(( $(date +%s) - started ))s"
# vfs stores every image as a full copy: drop earlier builds (the layer cache stays for fast rebuilds).
"${buildah[@]}" images --format '{{.Name}}:{{.Tag}}' | grep -E '^localhost/modelserve:[0-9a-f]{12}$' |
  grep -vx "$image" | xargs -r "${buildah[@]}" rmi >/dev/null 2>&1 || true
echo "$image"
