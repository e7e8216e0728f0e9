#!/usr/bin/env bash
# Our own images on the real node: builds modelserve and the operator with buildah (each cached by a hash of its
# build inputs), keeps an OCI archive of each in ~/.cache/modeldeploy/node-images/<name>-<key>.tar, and imports
# it into real-0's containerd when missing. Prints the refs the demo and tests deploy:
#   MODELDEPLOY_SERVING_IMAGE=localhost/modelserve:<key>
#   MODELDEPLOY_OPERATOR_IMAGE=localhost/modeldeploy-operator:<key>
# Progress (with each stage's duration) goes to stderr. Needs root and a running real node (`cluster.sh up`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
archives=${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}/node-images
sock=$(bash "$repo/tests/cluster/node.sh" env | sed -n 's/^export MODELDEPLOY_REAL_NODE_SOCKET="\(.*\)"$/\1/p')
buildah=("$here/buildah.sh")
log() { printf '[node-app-images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
ctr_() { ctr --address "$sock" -n k8s.io "$@"; }

[ -S "$sock" ] || { log "ERROR: no containerd socket at $sock: start the real node with tests/cluster/cluster.sh up"; exit 1; }

# Builds (or reuses) one image, archives it once per key, imports it into containerd unless it is there already.
place() {
  local script=$1 ref name key archive started
  started=$(date +%s)
  ref=$("$script")
  name=${ref##*/}
  name=${name%%:*}
  key=${ref##*:}
  archive="$archives/$name-$key.tar"
  log "$ref ready in $(( $(date +%s) - started ))s"
  mkdir -p "$archives"
  if [ ! -s "$archive" ]; then
    started=$(date +%s)
    "${buildah[@]}" push -q "$ref" "oci-archive:$archive.tmp:$ref" >/dev/null
    mv "$archive.tmp" "$archive"
    # Earlier keys of the same image are dead weight (each archive is ~200 MB).
    find "$archives" -maxdepth 1 -name "$name-*.tar" ! -name "$name-$key.tar" -delete
    log "archived $archive in $(( $(date +%s) - started ))s"
  fi
  if ! ctr_ images ls -q "name==$ref" | grep -qx "$ref"; then
    started=$(date +%s)
    ctr_ images import "$archive" >/dev/null
    log "imported $ref into real-0's containerd in $(( $(date +%s) - started ))s"
  fi
  echo "$ref"
}

serving=$(place "$here/build-serving-image.sh")
operator=$(place "$repo/tests/chart/build-operator-image.sh")
echo "MODELDEPLOY_SERVING_IMAGE=$serving"
echo "MODELDEPLOY_OPERATOR_IMAGE=$operator"
