"""The operator's own metrics: series labelled with a ModelDeployment go when it goes."""

from __future__ import annotations

from modeldeploy import metrics


def _series_of(namespace: str, name: str) -> set[str]:
    """Names of the exported samples labelled with one ModelDeployment."""
    return {
        sample.name
        for family in metrics.REGISTRY.collect()
        for sample in family.samples
        if sample.labels.get("namespace") == namespace and sample.labels.get("name") == name
    }


def test_a_deleted_model_deployments_series_are_removed_and_its_neighbours_kept():
    ns = "unit-metrics-forget"
    promoted = {"revision": "r2", "outcome": "Promoted"}
    split = [
        {"color": "blue", "revision": "r1", "weight": 50},
        {"color": "green", "revision": "r2", "weight": 50},
    ]
    for name in ("iris", "wine"):
        metrics.record_rollout(ns, name, {}, {"history": [promoted], "traffic": split})
        metrics.set_check_score(ns, name, "r2", "analysis", "error_rate", 0.01)
    exported = {
        "modeldeploy_rollouts_total",
        "modeldeploy_traffic_weight_percent",
        "modeldeploy_check_score",
    }
    assert exported <= _series_of(ns, "iris")

    metrics.forget(ns, "iris")

    assert _series_of(ns, "iris") == set()
    assert exported <= _series_of(ns, "wine")
    weight = {"namespace": ns, "name": "wine", "color": "blue", "revision": "r1"}
    assert metrics.REGISTRY.get_sample_value("modeldeploy_traffic_weight_percent", weight) == 50.0


def test_a_model_deployment_recreated_after_its_delete_exports_again():
    ns, name = "unit-metrics-recreate", "iris"
    traffic = {"traffic": [{"color": "blue", "revision": "r1", "weight": 100}]}
    metrics.record_rollout(ns, name, {}, traffic)
    metrics.forget(ns, name)
    metrics.forget(ns, name)  # a second DELETED event (another watch) finds nothing left to remove
    metrics.record_rollout(ns, name, {}, traffic)
    labels = {"namespace": ns, "name": name, "color": "blue", "revision": "r1"}
    assert metrics.REGISTRY.get_sample_value("modeldeploy_traffic_weight_percent", labels) == 100.0
