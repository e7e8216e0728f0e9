"""One table of the kinds the operator owns: the kopf watches and indexes are registered from it."""

from __future__ import annotations

import kopf
import pytest

import modeldeploy.handlers  # noqa: F401  (registers the handlers)
from modeldeploy.handlers.children import OURS
from modeldeploy.handlers.runtime import CHILD_INDEXES, POD_INDEX
from modeldeploy.k8s import (
    CHILD_KINDS,
    HPA,
    HTTP_ROUTE,
    OPTIONAL_CHILD_KINDS,
    POD,
    SERVICE,
    WATCHED_CHILD_KINDS,
    WATCHED_KINDS,
    Kind,
)


def _registered(handlers) -> dict[str, tuple[str, str, str]]:
    # kopf keeps its registries private; ids and selectors are what the handlers are registered under.
    return {
        handler.id: (handler.selector.group, handler.selector.version, handler.selector.any_name)
        for handler in handlers
        if handler.labels == OURS
    }


def test_every_watched_kind_gets_one_index_and_one_event_handler():
    registry = kopf.get_default_registry()
    indexes = _registered(registry._indexing.get_all_handlers())
    events = _registered(registry._watching.get_all_handlers())
    resources = {(kind.group, kind.version, kind.plural) for kind in WATCHED_KINDS}
    assert set(indexes.values()) == resources
    assert set(events.values()) == resources
    assert set(indexes) == {*CHILD_INDEXES, POD_INDEX}


def test_children_are_watched_or_read_behind_their_crd_and_pods_are_watched_not_owned():
    assert {kind.kind for kind in WATCHED_CHILD_KINDS} == {
        "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
    }  # fmt: skip
    assert {kind.kind: kind.crd_name for kind in OPTIONAL_CHILD_KINDS} == {
        "ServiceMonitor": "servicemonitors.monitoring.coreos.com",
        "HTTPRoute": "httproutes.gateway.networking.k8s.io",
    }
    assert set(CHILD_KINDS) == {*WATCHED_CHILD_KINDS, *OPTIONAL_CHILD_KINDS}
    assert POD in WATCHED_KINDS and POD not in CHILD_KINDS  # owned by ReplicaSets


@pytest.mark.parametrize(
    ("kind", "group", "version", "path"),
    [
        (SERVICE, "", "v1", "/api/v1/namespaces/ml/services/iris"),
        (HPA, "autoscaling", "v2", "/apis/autoscaling/v2/namespaces/ml/horizontalpodautoscalers/iris"),
        (HTTP_ROUTE, "gateway.networking.k8s.io", "v1",
         "/apis/gateway.networking.k8s.io/v1/namespaces/ml/httproutes/iris"),
    ],
    ids=["core", "group", "optional CRD"],
)  # fmt: skip
def test_a_kind_knows_its_group_version_and_url(kind: Kind, group, version, path):
    assert (kind.group, kind.version, kind.path("ml", "iris")) == (group, version, path)
