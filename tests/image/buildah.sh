#!/usr/bin/env bash
# buildah on the storage driver every image script and test shares. overlay where the kernel has it: layers are
# diffs, so a cached build takes seconds. Else vfs, which copies the whole root filesystem for every layer and
# container (a cached build of the serving image takes over a minute). MODELDEPLOY_BUILDAH_DRIVER overrides.
set -euo pipefail
driver=vfs
grep -qw overlay /proc/filesystems && driver=overlay
exec buildah --storage-driver "${MODELDEPLOY_BUILDAH_DRIVER:-$driver}" "$@"
