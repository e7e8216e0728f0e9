#!/usr/bin/env bash
# Builds serving-image/Dockerfile with buildah (no Docker engine here) against the local stand-in base,
# so nothing is pulled from a registry. The tag is a hash of every build input; an existing tag is
# reused, so reruns take a second. Prints the image name on stdout; progress goes to stderr.
#   BASE_IMAGE=...   use this base instead of the stand-in (e.g. python:3.11.11-slim-bookworm)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
context="$repo/serving-image"
buildah=("$here/buildah.sh")
log() { printf '[image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

base=${BASE_IMAGE:-$("$here/build-base.sh")}
base_id=$("${buildah[@]}" inspect --type image --format '{{.FromImageID}}' "$base" 2>/dev/null || echo "$base")

# Key: the base, this script, and every file the build context can see.
key=$(
  {
    echo "$base_id"
    # Paths relative to the repository: the same content gives the same key in every clone.
    cd "$repo" && sha256sum tests/image/buildah-build.sh tests/image/build-serving-image.sh
    cd "$context" && find Dockerfile .dockerignore constraints.txt pyproject.toml README.md modelserve \
      -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-12
)
exec "$repo/tests/image/buildah-build.sh" localhost/modelserve "$key" "$base" "$context/Dockerfile" "$context"
