#!/usr/bin/env bash
# The main job: set the machine up, start the local control plane with its real node, build our images into the
# node's containerd, then install the chart and show a blue/green rollout with every part running as a real pod.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
source "$repo/scripts/lib.sh"
bash scripts/setup.sh
stage "Local control plane and the real node"
bash tests/cluster/cluster.sh up
eval "$(bash tests/cluster/cluster.sh env)"
end_stage
stage "Images: modelserve and the operator, built with buildah, imported into real-0's containerd"
images=$(bash tests/image/node-app-images.sh)
export $images
echo "$images"
end_stage
stage "Demo: chart, operator pod, model store, model, rollout"
.venv/bin/python scripts/demo.py
end_stage
