#!/usr/bin/env bash
# Pins every package of .venv in scripts/venv.lock, so scripts/setup.sh installs without resolving: the
# resolve backtracks through ~1,300 botocore versions (kubernetes wants python-dateutil>=3, botocore <3) and
# takes ~150 s even with warm uv caches; installing the pinned list takes seconds.
#   bash scripts/venv-lock.sh           # re-resolve and write the lock (after editing either pyproject.toml)
#   bash scripts/venv-lock.sh --check   # exit 1 when the lock was resolved from other inputs (CI)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
source "$repo/scripts/lib.sh"
lock=scripts/venv.lock
inputs="# venv-lock-inputs: $(venv_lock_inputs .venv/bin/python)"

if [ "${1:-}" = "--check" ]; then
  [ "$(head -1 "$lock" 2>/dev/null)" = "$inputs" ] && exit 0
  echo "$lock is stale (a pyproject.toml changed): run bash scripts/venv-lock.sh and commit it" >&2
  exit 1
fi
pinned=$(printf '%s\n' "$VENV_REQUIREMENTS" | .venv/bin/uv pip compile --python .venv/bin/python -q \
  --custom-compile-command "bash scripts/venv-lock.sh" -)
printf '%s\n%s\n' "$inputs" "$pinned" > "$lock"
echo "wrote $lock ($(grep -c '==' "$lock") pinned packages)"
