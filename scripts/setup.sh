#!/usr/bin/env bash
# Installs everything the project and its tests need on a fresh machine; safe to run again (each stage is cached).
#   Debian packages -> Go-built control plane (tests/cluster/build.sh) -> Python virtualenv (.venv)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
source "$repo/scripts/lib.sh"

APT_PACKAGES=(buildah debootstrap)

stage "Debian packages: ${APT_PACKAGES[*]}"
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
end_stage

stage "Control plane binaries (Go modules, cached under ~/.cache/modeldeploy)"
bash tests/cluster/build.sh
end_stage

stage "Python virtualenv .venv (operator, modelserve, test tools)"
[ -x .venv/bin/python ] || python3 -m venv .venv
[ -x .venv/bin/uv ] || .venv/bin/pip install -q uv
.venv/bin/uv pip install --python .venv/bin/python -q -e '.[dev]' -e "./serving-image[all,tensorflow,test]"
end_stage
