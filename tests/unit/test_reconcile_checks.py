"""The rollout-check glue's pure parts: which pods are probed, where, with which key; the saved windows'
merge patch; and the rollout metrics recorded after a status write."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from modeldeploy import metrics
from modeldeploy.api import CheckResult
from modeldeploy.probes import Target
from modeldeploy.reconcile.checks import (
    AddressBook,
    ProbeCheckRunner,
    _log_text,
    first_api_key,
    ready_pod_ips,
)
from modeldeploy.reconcile.status import merge_patch
from modeldeploy.settings import OperatorSettings


def _pod(color: str, ip: str | None, ready: bool) -> dict:
    status: dict = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
    return {"metadata": {"labels": {"modeldeploy.io/color": color}}, "status": status}


def test_ready_pod_ips_keep_only_ready_pods_with_an_ip_per_colour():
    pods = [
        _pod("green", "10.0.0.9", True),
        _pod("blue", "10.0.0.2", True),
        _pod("green", "10.0.0.3", False),
        _pod("green", None, True),
        _pod("blue", "10.0.0.1", True),
    ]
    assert ready_pod_ips(pods) == {"blue": ["10.0.0.1", "10.0.0.2"], "green": ["10.0.0.9"]}


@pytest.mark.parametrize(
    ("text", "key"),
    [("k1\nk2\n", "k1"), ("# rotated 2026-01\n\n  k2  \n", "k2"), ("# only comments\n\n", None), ("", None)],
    ids=["first-line", "comments-and-blanks-skipped", "no-key", "empty"],
)
def test_first_api_key_follows_the_keys_file_format(text, key):
    assert first_api_key(text) == key


BOOK = AddressBook({"ml/iris": {"blue": ["http://127.0.0.1:1"], "green": ["http://127.0.0.1:2"]}})


@pytest.mark.parametrize(
    ("target", "pods", "service"),
    [
        (Target("ml", "iris-preview", "green"), ["http://127.0.0.1:2"], "http://127.0.0.1:2"),
        (Target("ml", "iris-blue", "blue"), ["http://127.0.0.1:1"], "http://127.0.0.1:1"),
        (
            Target("ml", "other-green", "green", ("10.0.0.7",)),
            ["http://10.0.0.7:8080"],
            "http://other-green.ml.svc.cluster.local:80",
        ),
        (
            Target("prod", "iris-preview", "green", ("fd00::7",)),
            ["http://[fd00::7]:8080"],
            "http://iris-preview.prod.svc.cluster.local:80",
        ),
    ],
    ids=["listed-preview", "listed-colour-service", "unlisted-uses-cluster", "other-namespace-uses-cluster"],
)
def test_address_book_serves_listed_modeldeployments_and_falls_back_to_the_cluster(target, pods, service):
    assert BOOK.pod_urls(target) == pods
    assert BOOK.service_url(target) == service


def test_probe_addresses_setting_is_json_from_the_environment(monkeypatch):
    monkeypatch.setenv("MODELDEPLOY_PROBE_ADDRESSES", '{"ml/iris": {"blue": ["http://127.0.0.1:9"]}}')
    monkeypatch.setenv("MODELDEPLOY_PROMETHEUS_URL", "http://prometheus:9090")
    settings = OperatorSettings()
    assert settings.probe_addresses == {"ml/iris": {"blue": ["http://127.0.0.1:9"]}}
    assert settings.prometheus_url == "http://prometheus:9090"


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        ({}, {"green": {"takenAt": "t1"}}, {"green": {"takenAt": "t1"}}),
        (
            {"green": {"takenAt": "t0", "pods": {"a": {"requests": 1}, "b": {"requests": 2}}}},
            {"green": {"takenAt": "t1", "pods": {"a": {"requests": 5}}}},
            {"green": {"takenAt": "t1", "pods": {"a": {"requests": 5}, "b": None}}},
        ),
        (
            {"blue": {"takenAt": "t0"}, "green": {"takenAt": "t1"}},
            {"green": {"takenAt": "t1"}},
            {"blue": None},
        ),
        ({"green": {"takenAt": "t1"}}, {"green": {"takenAt": "t1"}}, {}),
    ],
    ids=["first-window", "pod-gone-is-removed", "colour-gone-is-removed", "unchanged"],
)
def test_saved_windows_patch_turns_the_old_into_the_new(old, new, patch):
    assert merge_patch(old, new) == patch


def _sample(name: str, labels: dict[str, str]) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


def test_record_rollout_counts_each_finished_rollout_once_and_exports_the_split():
    ns, name = "unit-metrics", "iris"
    promoted = {"revision": "r2", "outcome": "Promoted"}
    split = [
        {"color": "blue", "revision": "r1", "weight": 50},
        {"color": "green", "revision": "r2", "weight": 50},
    ]
    metrics.record_rollout(ns, name, {}, {"history": [promoted], "traffic": split})
    metrics.record_rollout(ns, name, {"history": [promoted]}, {"history": [promoted], "traffic": split[1:]})
    counted = {"namespace": ns, "name": name, "outcome": "Promoted"}
    assert _sample("modeldeploy_rollouts_total", counted) == 1.0
    weight = "modeldeploy_traffic_weight_percent"
    assert _sample(weight, {"namespace": ns, "name": name, "color": "green", "revision": "r2"}) == 50.0
    assert _sample(weight, {"namespace": ns, "name": name, "color": "blue", "revision": "r1"}) is None


@pytest.mark.parametrize(
    ("evaluation", "failing"),
    [
        ({"revision": "r2", "result": {"passed": False, "message": "accuracy 0.5 < 0.8"}}, 1.0),
        ({"revision": "r2", "result": {"passed": True, "message": "accuracy 0.9"}}, 0.0),
        ({"revision": "r2", "result": {"passed": None, "message": "inconclusive"}}, 0.0),
        ({"revision": "r1", "result": {"passed": False, "message": "an older revision failed"}}, 0.0),
    ],
    ids=["serving-revision-failed", "passed", "inconclusive", "another-revision-failed"],
)
def test_live_evaluation_failing_is_exported_for_the_serving_revision_only(evaluation, failing):
    ns, name = "unit-live-eval", f"iris-{failing}-{evaluation['revision']}"
    metrics.record_rollout(ns, name, {}, {"activeRevision": "r2", "evaluation": evaluation})
    series = {"namespace": ns, "name": name, "revision": "r2"}
    assert _sample("modeldeploy_live_evaluation_failing", series) == failing
    metrics.record_rollout(ns, name, {}, {"activeRevision": "r1", "evaluation": evaluation})
    assert _sample("modeldeploy_live_evaluation_failing", series) is None  # r2 no longer serves


def test_drift_detected_is_exported_for_the_revision_read_and_dropped_with_the_figures():
    ns, name = "unit-drift", "iris"
    series = {"namespace": ns, "name": name, "revision": "r2"}
    metrics.record_rollout(ns, name, {}, {"drift": {"revision": "r2", "drifting": True}})
    assert _sample("modeldeploy_drift_detected", series) == 1.0
    metrics.record_rollout(ns, name, {}, {"drift": {"revision": "r2", "drifting": False}})
    assert _sample("modeldeploy_drift_detected", series) == 0.0
    metrics.record_rollout(ns, name, {}, {})  # drift no longer watched
    assert _sample("modeldeploy_drift_detected", series) is None


@pytest.mark.parametrize(
    ("passed", "message", "logged"),
    [
        (False, "error rate 40.00% > maxErrorRate 10.00%", "failed: error rate 40.00% > maxErrorRate 10.00%"),
        (True, "60 requests, error rate 0.00%", "passed: 60 requests, error rate 0.00%"),
        (None, "inconclusive: 3 of 20 requests needed", "inconclusive: 3 of 20 requests needed"),
    ],
    ids=["failed", "passed", "inconclusive-not-doubled"],
)
def test_check_log_line_carries_the_verdict_and_the_snapshot_time(passed, message, logged):
    at = datetime(2026, 11, 25, 18, 0, 1, 250000, tzinfo=UTC)
    text = _log_text(CheckResult(passed=passed, message=message, at=at))
    assert text == f"{logged} [at 2026-11-25T18:00:01.250000+00:00]"  # benchmarks/rollout_bench.py parses it


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "http://iris-preview.ml.svc.cluster.local:80"),
        ({"MODELDEPLOY_CLUSTER_DOMAIN": "corp.example"}, "http://iris-preview.ml.svc.corp.example:80"),
    ],
)
def test_checks_call_services_in_the_configured_cluster_domain(monkeypatch, env, url):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runner = ProbeCheckRunner(kube=None, settings=OperatorSettings())  # type: ignore[arg-type]
    assert runner.client.resolver.service_url(Target("ml", "iris-preview")) == url


def test_a_cluster_domain_that_is_no_dns_name_is_refused_at_start(monkeypatch):
    monkeypatch.setenv("MODELDEPLOY_CLUSTER_DOMAIN", "cluster.local/evil")
    with pytest.raises(ValueError, match="cluster_domain"):
        OperatorSettings()
