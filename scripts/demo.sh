#!/usr/bin/env bash
# The main job: set the machine up, start the local control plane, install the chart, run the operator and show a
# blue/green rollout of a real model with real modelserve processes answering.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
source "$repo/scripts/lib.sh"
bash scripts/setup.sh
stage "Local control plane"
bash tests/cluster/cluster.sh up
eval "$(bash tests/cluster/cluster.sh env)"
end_stage
stage "Demo: chart, operator, model, rollout"
.venv/bin/python scripts/demo.py
end_stage
