#!/usr/bin/env bash
# Builds operator/Dockerfile with buildah (no Docker engine here) against the local stand-in base
# (tests/image/build-base.sh), so nothing is pulled from a registry. The tag is a hash of every build
# input; an existing tag is reused. Prints the image name on stdout; progress goes to stderr.
#   BASE_IMAGE=...   use this base instead of the stand-in (e.g. python:3.11.11-slim-bookworm)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
buildah=("$repo/tests/image/buildah.sh")
log() { printf '[operator-image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

base=${BASE_IMAGE:-$("$repo/tests/image/build-base.sh")}
base_id=$("${buildah[@]}" inspect --type image --format '{{.FromImageID}}' "$base" 2>/dev/null || echo "$base")

# Key: the base, this script, and every file the Dockerfile copies.
key=$(
  {
    echo "$base_id"
    # Paths relative to the repository: the same content gives the same key in every clone.
    cd "$repo" && sha256sum tests/image/buildah-build.sh tests/chart/build-operator-image.sh
    cd "$repo" && find operator/Dockerfile pyproject.toml README.md operator/modeldeploy \
      -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-12
)
# The context is the repository root (pyproject.toml and operator/ live there).
exec "$repo/tests/image/buildah-build.sh" localhost/modeldeploy-operator "$key" "$base" "$repo/operator/Dockerfile" "$repo"
