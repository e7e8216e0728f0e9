"""Rollout analysis through a real Prometheus, end to end: the operator runs with MODELDEPLOY_PROMETHEUS_URL
and judges each step from PromQL, not from the pods' /metrics.

Prometheus (built from Go modules by tests/cluster/build.sh) scrapes the local modelserve processes that
stand in for the colours' pods every second, with the target labels a Prometheus Operator ServiceMonitor
scrape of the operator's ``<name>-blue`` / ``<name>-green`` Services gives (namespace, service, job, pod,
container, endpoint): the analysis must find its series by those labels exactly as in a cluster. A good
candidate is promoted; a candidate answering 5xx to its clients is aborted and traffic returns.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from harness.cluster import prometheus_binary
from harness.operator import (
    kubectl_apply,
    wait_for,
)
from harness.rollout import (
    BLUE,
    BOTH,
    GREEN,
    EndpointWatcher,
    Pair,
    Traffic,
    body,
    event_reasons,
    in_phase,
    marker_rows,
    revision,
    rollout_of,
    rollout_operator,
    rollout_spec,
    serving,
    serving_pairs,
    start_pair,
    train_models,
    wait_rollout,
    wait_traffic_back,
)
from harness.serving import free_port

pytestmark = pytest.mark.e2e

ROLLOUT = {
    "steps": [{"weight": 50, "pauseSeconds": 6}],
    "analysis": {"maxErrorRate": 0.1, "minRequests": 5, "intervalSeconds": 2},
    "scaleDownDelaySeconds": 0,
    "progressDeadlineSeconds": 120,
}
# name: green (candidate) model; v1 is the good model on blue.
SCENARIOS = {"good": "good", "erroring": "failing"}


def service_monitor_labels(namespace: str, name: str, color: str) -> dict[str, str]:
    """The target labels Prometheus Operator gives a scrape of a ServiceMonitor endpoint (port `http`) of
    Service <name>-<color>: job is the Service name (no jobLabel set), pod and container from the pod."""
    service = f"{name}-{color}"
    return {
        "namespace": namespace,
        "service": service,
        "job": service,
        "endpoint": "http",
        "pod": f"{service}-0",
        "container": "modelserve",
    }


def prometheus_config(targets: Mapping[str, Mapping[str, str]]) -> str:
    """One scrape job, one static target group per pod (url -> target labels), scraped every second."""
    groups = [
        {"targets": [url.removeprefix("http://")], "labels": dict(labels)} for url, labels in targets.items()
    ]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "servicemonitor", "static_configs": groups}],
    }
    return json.dumps(config)  # JSON is YAML


@contextmanager
def running_prometheus(root: Path, targets: Mapping[str, Mapping[str, str]]) -> Iterator[str]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "prometheus.yml").write_text(prometheus_config(targets))
    port = free_port()
    log_path = root / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(prometheus_binary()),
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(
                lambda: _targets_up(url, process, log_path) == len(targets),
                timeout=60,
                interval=0.3,
                what=f"Prometheus scraping {len(targets)} targets",
            )
            yield url
        finally:
            process.terminate()
            process.wait(30)


def _targets_up(url: str, process: subprocess.Popen, log: Path) -> int:
    if process.poll() is not None:
        pytest.fail(f"prometheus exited {process.returncode}: {log.read_text()[-2000:]}")
    try:
        result = httpx.get(f"{url}/api/v1/query", params={"query": "count(up == 1)"}).json()["data"]["result"]
    except (httpx.HTTPError, KeyError, ValueError):
        return 0
    return int(float(result[0]["value"][1])) if result else 0


def _query(url: str, promql: str) -> list[dict]:
    return httpx.get(f"{url}/api/v1/query", params={"query": promql}).json()["data"]["result"]


class Env:
    def __init__(self, cluster, namespace: str, pairs: dict[str, Pair], prometheus: str, operator) -> None:
        self.cluster, self.namespace, self.pairs = cluster, namespace, pairs
        self.prometheus, self.operator = prometheus, operator

    def watch(self, name: str) -> EndpointWatcher:
        return EndpointWatcher(self.cluster, self.namespace, name)

    def traffic(self, name: str) -> Traffic:
        pair = self.pairs[name]
        return Traffic(name, [pair.blue.url, pair.green.url])


@pytest.fixture(scope="module")
def env(cluster, namespace, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("prometheus-rollout")
    models = train_models(workdir / "models")
    v1, v2 = rollout_spec("1", ROLLOUT), rollout_spec("2", ROLLOUT)
    pairs = {
        name: start_pair(workdir, name, v1, v2, models.good, getattr(models, green), models)
        for name, green in SCENARIOS.items()
    }
    with serving_pairs(pairs):
        targets = {
            server.url: service_monitor_labels(namespace, name, color)
            for name, pair in pairs.items()
            for color, server in (("blue", pair.blue), ("green", pair.green))
        }
        with (
            running_prometheus(workdir / "prometheus", targets) as prometheus,
            rollout_operator(
                cluster, namespace, workdir, pairs, {"MODELDEPLOY_PROMETHEUS_URL": prometheus}
            ) as operator,
        ):
            for name in pairs:  # both v1s at once
                kubectl_apply(cluster, body(name, namespace, v1))
            for name in pairs:
                wait_rollout(cluster, namespace, name, serving(revision(v1)), what=f"{name} v1 serving")
            yield Env(cluster, namespace, pairs, prometheus, operator)


def _assert_traffic_was_safe(watcher: EndpointWatcher) -> None:
    assert watcher.samples, "the EndpointSlice sampler took no sample"
    assert watcher.problems() == [], watcher.problems()[:5]


def _analyses(env: Env, name: str, seen: list[dict]) -> None:
    """Collects each distinct analysis verdict written to status while a rollout runs."""
    md = env.cluster.get_json("modeldeployment", name, "-n", env.namespace)
    found = rollout_of(md).get("analysis")
    if found and (not seen or seen[-1].get("at") != found.get("at")):
        seen.append(found)


def test_prometheus_series_carry_the_labels_a_service_monitor_scrape_gives(env):
    """The analysis selects on model, revision and colour (modelserve's labels) plus namespace (the
    scrape's): exactly one series set per colour Service, nothing renamed to exported_*."""
    pair = env.pairs["good"]
    found = _query(
        env.prometheus,
        f'modelserve_requests_total{{namespace="{env.namespace}",model="good",'
        f'revision="{revision(pair.v1)}",color="blue"}}',
    )
    assert found, "no series for the blue colour of `good`"
    for series in found:
        labels = series["metric"]
        assert labels["service"] == labels["job"] == "good-blue"
        assert not any(key.startswith("exported_") for key in labels), labels


def test_good_candidate_is_judged_by_promql_and_promoted(env):
    name, pair = "good", env.pairs["good"]
    verdicts: list[dict] = []
    with env.watch(name) as watcher, env.traffic(name):
        kubectl_apply(env.cluster, body(name, env.namespace, pair.v2))

        def promoted() -> bool:
            _analyses(env, name, verdicts)
            md = env.cluster.get_json("modeldeployment", name, "-n", env.namespace)
            return serving(revision(pair.v2))(md)

        wait_for(promoted, timeout=120, interval=0.3, what="v2 promoted")
        wait_for(lambda: watcher.samples[-1].colors == GREEN, timeout=20, what="all traffic on green")
    judged = [v for v in verdicts if v.get("passed") is not None]
    assert judged, verdicts
    assert all(v["passed"] is True for v in judged), judged
    assert all("(prometheus)" in v["message"] for v in judged), judged  # PromQL, not /metrics
    assert max(v["requests"] for v in judged) >= ROLLOUT["analysis"]["minRequests"]
    assert all(v["errorRate"] == 0 for v in judged), judged
    md = env.cluster.get_json("modeldeployment", name, "-n", env.namespace)
    assert md["status"]["history"][0]["outcome"] == "Promoted"
    _assert_traffic_was_safe(watcher)
    assert BOTH in watcher.color_sequence() and watcher.color_sequence()[-1] == GREEN


def test_candidate_raising_5xx_is_aborted_from_promql(env):
    name, pair = "erroring", env.pairs["erroring"]
    with env.watch(name) as watcher, env.traffic(name) as traffic:
        # Clients of the candidate send the rows it fails on (HTTP 500).
        traffic.rows_for = lambda url: marker_rows(1)[0] if url == pair.green.url else [5.1, 3.5, 1.4, 0.2]
        kubectl_apply(env.cluster, body(name, env.namespace, pair.v2))
        md = wait_rollout(env.cluster, env.namespace, name, in_phase("Aborted"), timeout=90, what="abort")
        wait_traffic_back(watcher, env.cluster, env.namespace, name, "blue")
    state = rollout_of(md)
    analysis = state["analysis"]
    assert analysis["passed"] is False and analysis["errorRate"] > 0.1, analysis
    assert analysis["message"].endswith("; prometheus)"), analysis["message"]
    assert "analysis failed at step 1" in state["abortReason"], state
    assert md["status"]["activeRevision"] == revision(pair.v1)
    assert "AnalysisFailed" in event_reasons(env.cluster, env.namespace, name)
    # Prometheus holds the same story: the candidate's 5xx series in this namespace.
    errors = _query(
        env.prometheus,
        f'sum(modelserve_requests_total{{namespace="{env.namespace}",model="erroring",'
        f'color="green",status_code=~"5.."}})',
    )
    assert errors and float(errors[0]["value"][1]) > 0, errors
    _assert_traffic_was_safe(watcher)
    assert BOTH in watcher.color_sequence() and watcher.color_sequence()[-1] == BLUE
