"""The Argo CD health check and resource actions, run as the actual Lua files under Lua 5.1 (lupa.lua51;
Argo CD runs gopher-lua, a Lua 5.1) against the cases in argocd/health_test.yaml and
argocd/actions/action_test.yaml — the format of Argo CD's own resource_customizations tests, so the folder
can be upstreamed as resource_customizations/modeldeploy.io/ModelDeployment. Every fixture's status must
survive the operator's own status models unchanged, so a renamed status field breaks these tests."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.lua import ACTION_TESTS, ACTIONS, ARGOCD, HEALTH_TESTS, load, lua_to_python, run_lua
from harness.scripts import load_script
from modeldeploy.api import ModelDeploymentStatus, RolloutControl
from modeldeploy.api.status import ControlAction

# Argo CD action name -> the rolloutControl.action the operator understands.
CONTROL = {
    "promote": ControlAction.promote,
    "promote-full": ControlAction.promote_full,
    "abort": ControlAction.abort,
    "retry": ControlAction.retry,
}


def status_fixtures() -> list[tuple[Path, str]]:
    inputs = [(ARGOCD, t["inputPath"]) for t in HEALTH_TESTS]
    inputs += [(ACTIONS, t["inputPath"]) for t in ACTION_TESTS["discoveryTests"]]
    inputs += [(ACTIONS, t["expectedOutputPath"]) for t in ACTION_TESTS["actionTests"]]
    return sorted(set(inputs))


# -- the fixtures are statuses the operator writes --------------------------------------------------------


@pytest.mark.parametrize(("directory", "relative"), status_fixtures(), ids=lambda v: str(v).split("/")[-1])
def test_fixture_status_survives_the_operators_status_model_unchanged(directory, relative):
    obj = load(directory, relative)
    if "status" not in obj:
        assert relative.endswith("noStatus.yaml")
        return
    parsed = ModelDeploymentStatus.model_validate(obj["status"])
    assert parsed.model_dump(mode="json", by_alias=True, exclude_unset=True) == obj["status"]


def test_health_cases_cover_every_health_status():
    assert {t["healthStatus"]["status"] for t in HEALTH_TESTS} == {
        "Healthy", "Progressing", "Degraded", "Suspended"
    }  # fmt: skip


# -- health ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", HEALTH_TESTS, ids=lambda t: t["inputPath"])
def test_health_check_gives_the_expected_status_and_message(case):
    result = run_lua(ARGOCD / "health.lua", load(ARGOCD, case["inputPath"]))
    assert {"status": result["status"], "message": result["message"]} == case["healthStatus"]


# -- actions ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ACTION_TESTS["discoveryTests"], ids=lambda t: t["inputPath"])
def test_action_discovery_enables_what_applies_to_the_rollout_phase(case):
    actions = lua_to_python(run_lua(ACTIONS / "discovery.lua", load(ACTIONS, case["inputPath"])))
    found = [{"name": name, "disabled": spec["disabled"]} for name, spec in actions.items()]
    # Argo CD checks each discovered action is listed; listing exactly the discovered ones is stricter.
    assert sorted(found, key=str) == sorted(case["result"], key=str)


@pytest.mark.parametrize("case", ACTION_TESTS["actionTests"], ids=lambda t: f"{t['action']}/{t['inputPath']}")
def test_action_writes_the_expected_rollout_control_request(case):
    source = load(ACTIONS, case["inputPath"])
    result = lua_to_python(run_lua(ACTIONS / case["action"] / "action.lua", copy.deepcopy(source)), source)
    assert result == load(ACTIONS, case["expectedOutputPath"])
    control = RolloutControl.model_validate(result["status"]["rolloutControl"])
    assert control.action == CONTROL[case["action"]]
    assert control.request_id == f"argocd-rv{source['metadata']['resourceVersion']}"


def test_every_action_is_discovered_rendered_and_tested():
    renderer = load_script(ARGOCD / "render_argocd_cm.py")
    rendered = renderer.ACTIONS
    on_disk = {p.parent.name for p in ACTIONS.glob("*/action.lua")}
    discovered = {a["name"] for case in ACTION_TESTS["discoveryTests"] for a in case["result"]}
    tested = {case["action"] for case in ACTION_TESTS["actionTests"]}
    assert on_disk == discovered == tested == set(rendered) == set(CONTROL)


@pytest.mark.parametrize("action", sorted(CONTROL))
def test_action_on_an_object_without_status_or_version_uses_a_timestamp_request_id(action):
    obj = {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment",
           "metadata": {"name": "iris", "namespace": "ml"}, "spec": {}}  # fmt: skip
    result = lua_to_python(run_lua(ACTIONS / action / "action.lua", obj))
    control = RolloutControl.model_validate(result["status"]["rolloutControl"])
    assert re.fullmatch(r"argocd-\d{8}T\d{6}Z", control.request_id)
    assert result["metadata"] == obj["metadata"]


def with_rollout(obj: dict, resource_version: str, phase_started_at: str | None, step: int = 0) -> dict:
    obj = copy.deepcopy(obj)
    obj["status"]["rollout"]["stepIndex"] = step
    obj["metadata"]["resourceVersion"] = resource_version
    if phase_started_at is not None:
        obj["status"]["rollout"]["phaseStartedAt"] = phase_started_at
    return obj


# (action, resourceVersion, rollout.phaseStartedAt) -> the requestId written
REQUEST_IDS = [
    ("promote", "4711", "2026-12-03T10:00:00Z", "argocd-promote-0-2026-12-03T10:00:00Z"),
    # the first press's own status write made a new object version: still the same request
    ("promote", "4712", "2026-12-03T10:00:00Z", "argocd-promote-0-2026-12-03T10:00:00Z"),
    # the operator moved on (a new phase or step began): a new request
    ("promote", "4713", "2026-12-03T10:00:04Z", "argocd-promote-0-2026-12-03T10:00:04Z"),
    (
        "promote-full",
        "4711",
        "2026-12-03T10:00:00.123456Z",
        "argocd-promoteFull-0-2026-12-03T10:00:00.123456Z",
    ),
    # a status without a rollout phase start: the object version names the request
    ("promote", "4711", None, "argocd-rv4711"),
]


def test_a_step_begun_in_the_same_second_as_the_last_makes_a_new_request():
    # phaseStartedAt has second precision: the step tells a promote's next pause from the last one
    paused = load(ACTIONS, "testdata/paused.yaml")
    promote = ACTIONS / "promote" / "action.lua"
    ids = {
        lua_to_python(run_lua(promote, with_rollout(paused, "4711", "2026-12-03T10:00:00Z", step)))["status"][
            "rolloutControl"
        ]["requestId"]
        for step in (0, 1)
    }
    assert ids == {"argocd-promote-0-2026-12-03T10:00:00Z", "argocd-promote-1-2026-12-03T10:00:00Z"}


@pytest.mark.parametrize(("action", "resource_version", "phase_started_at", "request_id"), REQUEST_IDS)
def test_request_id_names_the_rollout_phase_the_action_was_pressed_on(
    action, resource_version, phase_started_at, request_id
):
    paused = with_rollout(load(ACTIONS, "testdata/paused.yaml"), resource_version, phase_started_at)
    result = lua_to_python(run_lua(ACTIONS / action / "action.lua", paused))
    control = RolloutControl.model_validate(result["status"]["rolloutControl"])  # within the CRD's limits
    assert control.request_id == request_id


def test_argocd_cm_snippet_is_rendered_from_the_lua_files():
    result = subprocess.run(
        [sys.executable, str(ARGOCD / "render_argocd_cm.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
