#!/usr/bin/env bash
# The buildah steps both image scripts share: reuse a tag that exists, else build with the host's CA bundle for
# pip, tag NAME:KEY and NAME:dev, and drop earlier NAME:<key> builds. Prints the image name on stdout.
#   buildah-build.sh NAME KEY BASE DOCKERFILE CONTEXT
set -euo pipefail
name=$1 key=$2 base=$3 dockerfile=$4 context=$5
here=$(cd "$(dirname "$0")" && pwd)
buildah=("$here/buildah.sh")
log() { printf '[%s %s] %s\n' "${name##*/}" "$(date +%H:%M:%S)" "$*" >&2; }
image=$name:$key

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
  --tag "$image" --tag "$name:dev" \
  --file "$dockerfile" "$context" >&2
log "built $image in $(( $(date +%s) - started ))s"
# Drop earlier builds (on vfs each is a full copy); the layer cache stays for fast rebuilds.
"${buildah[@]}" images --format '{{.Name}}:{{.Tag}}' | grep -E "^$name:[0-9a-f]{12}\$" |
  grep -vx "$image" | xargs -r "${buildah[@]}" rmi >/dev/null 2>&1 || true
echo "$image"
