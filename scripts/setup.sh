#!/usr/bin/env bash
# Installs everything the project and its tests need on a fresh machine; safe to run again (each stage is cached).
#   Debian packages -> Go-built control plane (tests/cluster/build.sh) -> Python virtualenv (.venv)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
source "$repo/scripts/lib.sh"

# containerd, runc, the CNI plugins, conntrack and iptables run the real node (tests/cluster/node.sh);
# busybox-static fills its test images; gcc and libc6-dev build its static pause binary.
APT_PACKAGES=(buildah debootstrap containerd runc containernetworking-plugins conntrack iptables busybox-static gcc libc6-dev)

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
# uv once per machine, outside the repository, so every clean clone reuses it: `uv venv` takes a second where
# `python3 -m venv` plus `pip install uv` take ~15 s.
uv_bootstrap=${XDG_CACHE_HOME:-$HOME/.cache}/modeldeploy/uv-bootstrap
if [ ! -x "$uv_bootstrap/bin/uv" ]; then
  python3 -m venv "$uv_bootstrap" && "$uv_bootstrap/bin/pip" install -q uv
fi
[ -x .venv/bin/python ] || "$uv_bootstrap/bin/uv" venv -q --seed --python "$(command -v python3)" .venv
[ -x .venv/bin/uv ] || "$uv_bootstrap/bin/uv" pip install -q --python .venv/bin/python uv
# The pinned list installs in seconds from warm caches; without a matching lock, resolve (minutes: see venv-lock.sh).
if bash scripts/venv-lock.sh --check 2>/dev/null; then
  .venv/bin/uv pip install --python .venv/bin/python -q -r scripts/venv.lock
else
  echo "scripts/venv.lock does not match the pyproject files or this Python: resolving (slow)"
  printf '%s\n' "$VENV_REQUIREMENTS" | .venv/bin/uv pip install --python .venv/bin/python -q -r -
fi
end_stage
