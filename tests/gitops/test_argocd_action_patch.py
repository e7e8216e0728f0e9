"""An Argo CD resource action applied the way Argo CD applies it, against the real API server.

Argo CD (server/application/application.go, RunResourceAction -> patchResource -> splitStatusPatch) runs
the action's Lua on the live object, computes a JSON merge patch from the live object to the result, and,
when the patch touches status, sends it to the status subresource first (falling back to a plain patch on
404), then the non-status remainder (if any) to the resource. This test makes exactly those requests with
kubectl and shows why the split matters: the same patch on the main resource is silently dropped."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from harness.lua import lua_to_python, run_lua

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
ACTIONS = REPO / "argocd" / "actions"
REPO_CRD = REPO / "crds" / "modeldeployments.yaml"
PAUSED_AT = "2026-12-03T10:00:00Z"
PAUSED_ROLLOUT = {
    "status": {
        "observedGeneration": 1,
        "phase": "Paused",
        "activeColor": "blue",
        "activeRevision": "7c9f1e2",
        "rollout": {
            "phase": "Paused",
            "revision": "a1b2c3d",
            "color": "green",
            "stepIndex": 0,
            "phaseStartedAt": PAUSED_AT,
        },
    }
}


def merge_patch(old: Any, new: Any) -> Any:
    """RFC 7386 merge patch from old to new (what Argo CD's jsonpatch.CreateMergePatch computes)."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    patch: dict[str, Any] = {key: None for key in old.keys() - new.keys()}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = merge_patch(old[key], value)
    return patch


@pytest.fixture(scope="module")
def paused(cluster, namespace) -> dict:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO_CRD))
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/modeldeployments.modeldeploy.io", "--timeout=60s"
    )
    body = {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris", "namespace": namespace},
        "spec": {"model": {"uri": "https://models.example.internal/iris/v3/model.joblib", "format": "sklearn",
                           "allowUnverifiedPickle": True}},
    }  # fmt: skip
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(body))
    cluster.kubectl("patch", "modeldeployment", "iris", "-n", namespace, "--subresource=status",
                    "--type=merge", "-p", json.dumps(PAUSED_ROLLOUT))  # fmt: skip
    return {"namespace": namespace}


def live(cluster, namespace: str) -> dict:
    return json.loads(cluster.kubectl("get", "modeldeployment", "iris", "-n", namespace, "-o", "json").stdout)


def run_action(action: str, obj: dict) -> dict:
    return lua_to_python(run_lua(ACTIONS / action / "action.lua", copy.deepcopy(obj)), obj)


def test_action_patch_touches_only_status(cluster, paused):
    before = live(cluster, paused["namespace"])
    patch = merge_patch(before, run_action("promote", before))
    assert set(patch) == {"status"}  # Argo CD's non-status patch is empty: spec and metadata stay the user's
    request_id = f"argocd-promote-0-{PAUSED_AT}"
    assert patch["status"] == {"rolloutControl": {"action": "promote", "requestId": request_id}}


def test_status_patch_lands_only_through_the_status_subresource(cluster, paused):
    namespace = paused["namespace"]
    before = live(cluster, namespace)
    patch = json.dumps(merge_patch(before, run_action("abort", before)))
    # On the main resource the API server drops status changes without an error ...
    cluster.kubectl("patch", "modeldeployment", "iris", "-n", namespace, "--type=merge", "-p", patch)
    assert "rolloutControl" not in live(cluster, namespace)["status"]
    # ... which is why Argo CD sends a status change to /status first, as here.
    cluster.kubectl("patch", "modeldeployment", "iris", "-n", namespace, "--subresource=status",
                    "--type=merge", "-p", patch)  # fmt: skip
    after = live(cluster, namespace)
    request_id = f"argocd-abort-0-{PAUSED_AT}"
    assert after["status"]["rolloutControl"] == {"action": "abort", "requestId": request_id}
    assert after["status"]["rollout"] == before["status"]["rollout"]  # the rest of status is left alone
    assert after["spec"] == before["spec"]
    # The next press sees a new object version but the same rollout phase: the same request for the operator.
    assert after["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]
    assert run_action("abort", after)["status"]["rolloutControl"]["requestId"] == request_id
