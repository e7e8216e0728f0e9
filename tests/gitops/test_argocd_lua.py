"""The Argo CD health check and resource actions, run as the actual Lua files under Lua 5.1 (lupa.lua51;
Argo CD runs gopher-lua, a Lua 5.1) against statuses built with the operator's own status models, so a
renamed status field breaks these tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from lupa import lua51

from modeldeploy.api import ModelDeploymentStatus, RolloutControl

REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "argocd"
NOW = "2026-01-01T00:00:00Z"


def ready(status: str, reason: str, message: str = "") -> dict:
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": NOW,
    }


def degraded(status: str, reason: str, message: str = "") -> dict:
    return {
        "type": "Degraded",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": NOW,
    }


def model_deployment(generation: int = 2, **status) -> dict:
    meta = {"name": "iris", "namespace": "ml", "generation": generation}
    body = {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment", "metadata": meta, "spec": {}}
    if status:
        # Through the operator's model: exactly the field names and shapes the operator writes.
        body["status"] = ModelDeploymentStatus.model_validate(status).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
    return body


def run_lua(path: Path, obj: dict):
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals()["obj"] = lua.table_from(obj, recursive=True)
    return lua, lua.execute(path.read_text())


def lua_to_python(value):
    if lua51.lua_type(value) == "table":
        items = dict(value.items())
        if items and all(isinstance(k, int) for k in items):
            return [lua_to_python(items[k]) for k in sorted(items)]
        return {k: lua_to_python(v) for k, v in items.items()}
    return value


SERVING = {"activeColor": "blue", "activeRevision": "7c9f1e2", "modelVersion": "3"}


@pytest.mark.parametrize(
    ("obj", "health", "message_part"),
    [
        (model_deployment(), "Progressing", "pick up"),
        (model_deployment(generation=3, observedGeneration=2, phase="Healthy",
                          conditions=[ready("True", "Serving", "revision 7c9f1e2 serves 100%")], **SERVING),
         "Progressing", "generation 3"),
        (model_deployment(observedGeneration=2, phase="Healthy",
                          conditions=[ready("True", "Serving", "revision 7c9f1e2 serves 100%")], **SERVING),
         "Healthy", "revision 7c9f1e2 serves 100%"),
        (model_deployment(observedGeneration=2, phase="Pending", conditions=[ready("False", "Deploying")]),
         "Progressing", "Phase Pending"),
        (model_deployment(observedGeneration=2, phase="Progressing", conditions=[ready("True", "Serving")],
                          rollout={"phase": "Stepping", "revision": "a1b2c3d", "color": "green",
                                   "stepIndex": 1, "message": "step 2/2: green gets 50%"}, **SERVING),
         "Progressing", "step 2/2: green gets 50%"),
        (model_deployment(observedGeneration=2, phase="Paused", conditions=[ready("True", "Serving")],
                          rollout={"phase": "Paused", "revision": "a1b2c3d", "color": "green"}, **SERVING),
         "Suspended", "revision a1b2c3d waits for promotion (promote: kubectl modeldeploy promote iris)"),
        (model_deployment(observedGeneration=2, phase="Degraded",
                          conditions=[ready("True", "Serving"),
                                      degraded("True", "RolloutAborted", "analysis: error rate 0.2 > 0.01")],
                          rollout={"phase": "Aborted", "abortReason": "analysis"}, **SERVING),
         "Degraded", "analysis: error rate 0.2 > 0.01"),
        (model_deployment(observedGeneration=2, phase="Failed",
                          conditions=[ready("False", "ModelLoadFailed", "sha256 mismatch for model.joblib")]),
         "Degraded", "sha256 mismatch for model.joblib"),
        (model_deployment(generation=5, observedGeneration=4, phase="Failed",
                          conditions=[ready("False", "InvalidSpec", "old message")]),
         "Progressing", "generation 5"),
    ],
    ids=["no status yet", "observedGeneration lags", "healthy", "pending", "rollout stepping",
         "waiting for promotion", "degraded with message", "failed with message", "failed but stale"],
)  # fmt: skip
def test_health_check(obj, health, message_part):
    _, result = run_lua(ARGOCD / "health.lua", obj)
    assert result["status"] == health
    assert message_part in result["message"]


@pytest.mark.parametrize(
    ("rollout_phase", "enabled"),
    [
        (None, set()),
        ("Completed", set()),
        ("Stepping", {"promote", "abort"}),
        ("Paused", {"promote", "abort"}),
        ("PostPromotion", {"abort"}),
        ("Aborted", {"retry"}),
    ],
)
def test_action_discovery_enables_what_applies_to_the_rollout_phase(rollout_phase, enabled):
    rollout = {"rollout": {"phase": rollout_phase}} if rollout_phase else {}
    obj = model_deployment(observedGeneration=2, phase="Healthy", **rollout)
    _, actions = run_lua(ARGOCD / "actions" / "discovery.lua", obj)
    actions = lua_to_python(actions)
    assert set(actions) == {"promote", "abort", "retry"}
    assert {name for name, spec in actions.items() if not spec["disabled"]} == enabled


@pytest.mark.parametrize("action", ["promote", "abort", "retry"])
@pytest.mark.parametrize("with_status", [True, False], ids=["existing status", "no status"])
def test_action_writes_a_rollout_control_request_the_operator_accepts(action, with_status):
    obj = model_deployment(observedGeneration=2, phase="Paused") if with_status else model_deployment()
    _, result = run_lua(ARGOCD / "actions" / action / "action.lua", obj)
    result = lua_to_python(result)
    control = RolloutControl.model_validate(result["status"]["rolloutControl"])
    assert control.action == action
    assert control.request_id.startswith("argocd-")
    if with_status:
        assert result["status"]["phase"] == "Paused"  # the rest of status is left alone
    assert result["metadata"] == obj["metadata"]


def test_argocd_cm_snippet_is_rendered_from_the_lua_files():
    result = subprocess.run(
        [sys.executable, str(ARGOCD / "render_argocd_cm.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
