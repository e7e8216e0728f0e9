"""The revision: what changes the pods changes it, nothing else does."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modeldeploy.api import parse_spec
from modeldeploy.desired.revision import revision_of

BASE: dict[str, Any] = {
    "model": {"uri": "https://models.example/iris/v3/model.onnx", "version": "3"},
    "replicas": 2,
    "resources": {"requests": {"cpu": "250m"}},
}


def changed(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(BASE)
    node = spec
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return spec


ROLLS = [
    ("model.uri", "https://models.example/iris/v4/model.onnx"),
    ("model.version", "4"),
    ("model.sha256", "a" * 64),
    ("resources.requests", {"cpu": "500m"}),
    ("server.workers", 4),
    ("server.image", "registry.local/custom:1"),
    ("server.env", [{"name": "A", "value": "1"}]),
    ("security.apiKeySecretRef", {"name": "keys"}),
    ("logging.sampleRate", 0.5),
]
STAYS = [
    ("replicas", 7),
    ("autoscaling", {"minReplicas": 2, "maxReplicas": 9}),
    ("rollout.steps", [{"weight": 10, "pauseSeconds": 5}]),
    ("rollout.autoPromote", False),
    ("monitoring.serviceMonitor", {"enabled": True}),
    ("server.workers", 1),  # the default, written out
]


@pytest.mark.parametrize(("path", "value"), ROLLS, ids=[p for p, _ in ROLLS])
def test_pod_changes_make_a_new_revision(path, value):
    assert revision_of(parse_spec(changed(path, value))) != revision_of(parse_spec(BASE))


@pytest.mark.parametrize(("path", "value"), STAYS, ids=[f"{p}={v}" for p, v in STAYS])
def test_other_changes_keep_the_revision(path, value):
    assert revision_of(parse_spec(changed(path, value))) == revision_of(parse_spec(BASE))


def test_revision_is_short_and_stable():
    first = revision_of(parse_spec(BASE))
    assert first == revision_of(parse_spec(copy.deepcopy(BASE)))
    assert len(first) == 10 and int(first, 16) >= 0


DRIFT = {"referenceUri": "https://d.example/iris/reference.csv", "sha256": "ab" * 32}
WITH_DRIFT = {**BASE, "monitoring": {"drift": DRIFT}}
# (change to monitoring.drift, rolls the pods?): what reaches the pods (init container, env) rolls them.
DRIFT_CHANGES = [
    ({"referenceUri": "https://d.example/iris/reference-2.csv"}, True),
    ({"sha256": "cd" * 32}, True),
    ({"features": ["petal_length"]}, True),
    ({"windowRows": 500}, True),
    ({"threshold": 0.1}, False),
    ({"intervalSeconds": 600}, False),
    ({"windowRows": 1000}, False),  # the default, written out
]


def test_adding_drift_rolls_the_pods_and_evaluation_alone_does_not():
    evaluation = {
        "datasetUri": "https://d.example/f.csv",
        "labelColumn": "y",
        "metric": "f1",
        "threshold": 0.9,
    }
    base = revision_of(parse_spec(BASE))
    assert revision_of(parse_spec(WITH_DRIFT)) != base
    assert revision_of(parse_spec({**BASE, "monitoring": {"evaluation": evaluation}})) == base


@pytest.mark.parametrize(("change", "rolls"), DRIFT_CHANGES, ids=[str(c) for c, _ in DRIFT_CHANGES])
def test_drift_changes_roll_the_pods_only_when_the_pods_use_them(change, rolls):
    spec = {**BASE, "monitoring": {"drift": {**DRIFT, **change}}}
    assert (revision_of(parse_spec(spec)) != revision_of(parse_spec(WITH_DRIFT))) is rolls
