#!/usr/bin/env bash
# The test command: sets up what is missing, lints, checks generated files, then runs every default test lane.
# Extra arguments go to pytest (e.g. `bash tests/run.sh -m "not e2e"`).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
source "$repo/scripts/lib.sh"
t0=$(date +%s)

bash scripts/setup.sh

# Bytecode caches outside the repository. Where PYTHONDONTWRITEBYTECODE is set (as on some CI machines) every
# server and operator subprocess would compile scikit-learn, kopf & co. from source again: ~3 s of CPU each.
export PYTHONPYCACHEPREFIX=${XDG_CACHE_HOME:-$HOME/.cache}/modeldeploy/pycache
unset PYTHONDONTWRITEBYTECODE

stage "Lint: ruff, import-linter layers, mypy on the operator, generated files"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports --config pyproject.toml
.venv/bin/mypy operator/modeldeploy/api operator/modeldeploy/desired operator/modeldeploy/reconcile operator/modeldeploy/workqueue operator/modeldeploy/objectcache operator/modeldeploy/crdgen.py operator/modeldeploy/handlers operator/modeldeploy/k8s operator/modeldeploy/metrics.py operator/modeldeploy/settings.py operator/modeldeploy/memory.py operator/modeldeploy/__main__.py
.venv/bin/python -m modeldeploy.crdgen --check
# Generated copies: chart CRD/dashboards/alerts and values table, argocd-cm snippet, API reference, venv lock.
.venv/bin/python charts/sync_chart_files.py --check
.venv/bin/python argocd/render_argocd_cm.py --check
.venv/bin/python docs/gen_api_reference.py --check
.venv/bin/python serving-image/gen_grpc_stubs.py --check
bash scripts/venv-lock.sh --check
end_stage

# The cluster starts here rather than inside pytest, so its stages (control plane, real node) are timed and shown.
if [[ " $* " != *"not e2e"* ]]; then
  stage "Local cluster: control plane, kwok nodes, the real node real-0"
  bash tests/cluster/cluster.sh up
  end_stage
  # Our images on the real node (the demo's test deploys them): built and imported once, reused by the tests.
  if bash tests/cluster/cluster.sh env | grep -q MODELDEPLOY_REAL_NODE_NAME; then
    stage "Images on the real node: modelserve and the operator (buildah, cached by their inputs)"
    images=$(bash tests/image/node-app-images.sh)
    # shellcheck disable=SC2086 # two NAME=VALUE words
    export $images
    end_stage
  fi
fi

# fake-gcs-server (Go module) and Azurite (npm) for the gs:// and azure:// fetch tests: ~8 and ~5.5 min cold.
stage "Object store emulators: fake-gcs-server and Azurite (built once, cached)"
.venv/bin/python -m harness.object_stores
end_stage

stage "Tests: pytest (unit, serving, e2e on the local control plane, chart, image)"
set +e
# The gitops lane is opt-in (`bash tests/run.sh -m gitops`; a later -m wins): 3-4 min with a cached Argo CD,
# but a cold build of Argo CD takes ~30 min of CPU, beyond the 15 minutes a fresh CI run may add.
.venv/bin/python -m pytest -m "not heavy and not gitops" --durations=20 "$@"
rc=$?
set -e
end_stage
# pytest's 5 means no test ran: that is a failure here, never a pass.
[ "$rc" -eq 5 ] && { echo "no tests ran"; rc=1; }
printf '\nTotal: %ss\n' "$(( $(date +%s) - t0 ))"
exit "$rc"
