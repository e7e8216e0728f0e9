#!/usr/bin/env bash
# Builds a local stand-in for the python slim base image (no registry pulls here): a Debian bookworm
# minbase root made by debootstrap with python3 + python3-venv, imported into buildah's vfs storage
# as `FROM scratch` + `ADD rootfs.tar.gz /`. Cached by a key over this script, so reruns take a second.
# Prints the image name on stdout; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

suite=${BASE_SUITE:-bookworm}
mirror=${BASE_MIRROR:-http://deb.debian.org/debian}
packages=python3,python3-venv
cache_root=${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}
key=$(printf '%s\n' "$suite" "$mirror" "$packages" | cat - "$here/build-base.sh" | sha256sum | cut -c1-12)
image=localhost/modeldeploy-stand-in-base:$key
base_dir="$cache_root/base-$key"
buildah=("$here/buildah.sh")

log() { printf '[base %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if "${buildah[@]}" inspect --type image "$image" >/dev/null 2>&1; then
  log "cached: $image"
  echo "$image"
  exit 0
fi

mkdir -p "$base_dir"
if [ ! -s "$base_dir/rootfs.tar.gz" ]; then
  started=$(date +%s)
  rootfs=$(mktemp -d "$base_dir/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  log "debootstrap $suite (minbase + $packages) into $rootfs"
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$base_dir/debootstrap.log" 2>&1 ||
    { tail -20 "$base_dir/debootstrap.log" >&2; exit 1; }
  # Trim what an image never needs: apt lists and caches, docs, man pages.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
  tar -C "$rootfs" --numeric-owner -czf "$base_dir/rootfs.tar.gz.part" .
  mv "$base_dir/rootfs.tar.gz.part" "$base_dir/rootfs.tar.gz"
  rm -rf "$rootfs"
  log "rootfs.tar.gz: $(du -h "$base_dir/rootfs.tar.gz" | cut -f1) in $(( $(date +%s) - started ))s"
fi

printf 'FROM scratch\nADD rootfs.tar.gz /\nCMD ["python3"]\n' >"$base_dir/Containerfile"
log "importing as $image"
"${buildah[@]}" bud --isolation chroot --layers=false -f "$base_dir/Containerfile" -t "$image" "$base_dir" >&2
echo "$image"
