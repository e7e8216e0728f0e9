"""Argo CD's own Lua evaluator (`argocd admin settings resource-overrides`, the same sandbox its controller
and API server use) over every case of argocd/health_test.yaml and argocd/actions/action_test.yaml, with the
shipped argocd-cm: it must agree with the expectations our lupa tests (test_argocd_lua.py) check."""

from __future__ import annotations

import pytest

from harness.argocd import offline_action_changes, offline_actions, offline_health
from harness.lua import ACTION_TESTS, ACTIONS, ARGOCD, HEALTH_TESTS, load

pytestmark = pytest.mark.gitops


@pytest.mark.parametrize("case", HEALTH_TESTS, ids=lambda t: t["inputPath"])
def test_argocd_health_matches_the_health_cases(argocd_bin, case):
    assert offline_health(argocd_bin, load(ARGOCD, case["inputPath"])) == case["healthStatus"]


@pytest.mark.parametrize("case", ACTION_TESTS["discoveryTests"], ids=lambda t: t["inputPath"])
def test_argocd_discovers_the_actions_of_the_discovery_cases(argocd_bin, case):
    found = offline_actions(argocd_bin, load(ACTIONS, case["inputPath"]))
    assert sorted(found, key=str) == sorted(case["result"], key=str)


@pytest.mark.parametrize("case", ACTION_TESTS["actionTests"], ids=lambda t: f"{t['action']}/{t['inputPath']}")
def test_argocd_action_writes_only_the_expected_rollout_control(argocd_bin, case):
    added, removed = offline_action_changes(argocd_bin, load(ACTIONS, case["inputPath"]), case["action"])
    control = load(ACTIONS, case["expectedOutputPath"])["status"]["rolloutControl"]
    assert removed == []
    assert sorted(added) == sorted(
        ["rolloutControl:", f"action: {control['action']}", f"requestId: {control['requestId']}"]
    )
