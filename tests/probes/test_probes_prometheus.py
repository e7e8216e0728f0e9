"""Analysis through a real Prometheus (built from Go modules by tests/cluster/build.sh) scraping two local
modelserve pods every second: same figures as direct scraping on the same traffic, including 5xx series
born inside the window, and traffic before the window left out."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from harness.cluster import prometheus_binary
from harness.probes import clean_rows, marker_rows, run_probe, send_rows
from harness.serving import Server, free_port, iris_env, start_server
from modeldeploy.api import Analysis
from modeldeploy.probes import SeriesSelector, StaticResolver, Target

REPO = Path(__file__).resolve().parents[2]
REVISION = "rev-prom"
SELECTOR = SeriesSelector(model="iris", revision=REVISION, color="green")
ANALYSIS = Analysis(max_error_rate=0.05, max_latency_p99_ms=2000, min_requests=20)
TARGET = Target(namespace="ml", service="iris-preview", color="green")
SCRAPE_SECONDS = 1
QUIET_SECONDS = 2.5  # > 2 scrape intervals: the last sample before `since` has seen all earlier traffic


@pytest.fixture(scope="module")
def prom_pods(tmp_path_factory, model_files: dict[str, Path], probe_package: Path) -> Iterator[list[Server]]:
    env = {
        "PYTHONPATH": str(probe_package),
        "MODELSERVE_MAX_BATCH_SIZE": "1",
        "MODELSERVE_MODEL_COLOR": "green",
        "MODELSERVE_MODEL_REVISION": REVISION,
    }
    pods = [
        start_server(
            tmp_path_factory.mktemp(f"prom-pod-{i}"), iris_env(model_files["failing"], **env), wait=False
        )
        for i in range(2)
    ]
    for pod in pods:  # started together, waited for together
        pod.wait_ready()
    yield pods
    for pod in pods:
        pod.stop()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory, prom_pods: list[Server]) -> Iterator[str]:
    root = tmp_path_factory.mktemp("prometheus")
    targets = ", ".join(f'"127.0.0.1:{p.port}"' for p in prom_pods)
    config = root / "prometheus.yml"
    config.write_text(
        f"global: {{scrape_interval: {SCRAPE_SECONDS}s, evaluation_interval: {SCRAPE_SECONDS}s}}\n"
        "scrape_configs:\n"
        # The namespace label a Kubernetes scrape config adds; the probes match on it.
        "  - job_name: modelserve\n"
        f"    static_configs: [{{targets: [{targets}], labels: {{namespace: ml}}}}]\n"
    )
    port = free_port()
    log = (root / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            str(prometheus_binary()),
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_scraping(url, process, len(prom_pods), root / "prometheus.log")
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def _wait_until_scraping(url: str, process: subprocess.Popen, pods: int, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"prometheus exited {process.returncode}: {log.read_text()[-2000:]}")
        try:
            doc = httpx.get(f"{url}/api/v1/query", params={"query": 'sum(up{job="modelserve"})'}).json()
            result = doc["data"]["result"]
            if result and float(result[0]["value"][1]) == pods:
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"prometheus did not scrape {pods} pods within 60s: {log.read_text()[-2000:]}")


def _direct(pods: list[Server]):
    return StaticResolver(pods={"green": [p.url for p in pods]})


def _prometheus_result(prometheus: str, pods: list[Server], since: datetime, analysis: Analysis = ANALYSIS):
    return run_probe(
        _direct(pods),
        lambda c: c.analyse(TARGET, SELECTOR, analysis, since=since),
        prometheus_url=prometheus,
    ).result


def _prometheus_once_scraped(prometheus, pods, since, requests: int, analysis: Analysis = ANALYSIS):
    """Polls until Prometheus has scraped all `requests` of the window (one or two scrape intervals)."""
    deadline = time.monotonic() + 20
    while True:
        result = _prometheus_result(prometheus, pods, since, analysis)
        if result.requests == requests or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def _quiet_then_since() -> datetime:
    time.sleep(QUIET_SECONDS)
    return datetime.now(UTC)


def test_prometheus_mode_agrees_with_direct_mode_on_the_same_traffic(prometheus, prom_pods):
    since = _quiet_then_since()
    first = run_probe(_direct(prom_pods), lambda c: c.analyse(TARGET, SELECTOR, ANALYSIS, since=since))
    baseline = first.baseline
    assert baseline is not None
    assert sum(p.errors for p in baseline.pods.values()) == 0  # the 5xx series do not exist yet
    assert send_rows(prom_pods[0].url, clean_rows(30)) == [200] * 30
    assert send_rows(prom_pods[1].url, clean_rows(10) + marker_rows(4)) == [200] * 10 + [500] * 4

    direct = run_probe(
        _direct(prom_pods),
        lambda c: c.analyse(TARGET, SELECTOR, ANALYSIS, since=since, baseline=baseline),
    ).result
    via_prometheus = _prometheus_once_scraped(prometheus, prom_pods, since, requests=44)

    assert direct.requests == via_prometheus.requests == 44
    assert direct.error_rate == pytest.approx(4 / 44)
    assert via_prometheus.error_rate == pytest.approx(direct.error_rate)
    assert via_prometheus.latency_p99_ms == pytest.approx(direct.latency_p99_ms, rel=1e-6)
    assert direct.passed is via_prometheus.passed is False
    assert via_prometheus.message.endswith("; prometheus)")
    assert direct.message.endswith("; 2 pods)")


def test_prometheus_leaves_out_traffic_before_the_window(prometheus, prom_pods):
    assert send_rows(prom_pods[1].url, marker_rows(10)) == [500] * 10
    since = _quiet_then_since()
    assert send_rows(prom_pods[0].url, clean_rows(25)) == [200] * 25
    result = _prometheus_once_scraped(prometheus, prom_pods, since, requests=25)
    assert result.passed is True, result.message
    assert result.requests == 25 and result.error_rate == 0.0


def test_prometheus_with_too_few_requests_is_inconclusive(prometheus, prom_pods):
    since = _quiet_then_since()
    send_rows(prom_pods[0].url, clean_rows(3))
    result = _prometheus_once_scraped(prometheus, prom_pods, since, requests=3)
    assert result.passed is None
    assert result.requests == 3 and "3 of 20 requests needed" in result.message


def test_series_of_another_namespace_are_not_counted(prometheus, prom_pods):
    since = _quiet_then_since()
    send_rows(prom_pods[0].url, clean_rows(5))
    assert _prometheus_once_scraped(prometheus, prom_pods, since, requests=5).requests == 5
    elsewhere = Target(namespace="other", service="iris-preview", color="green")
    result = run_probe(
        _direct(prom_pods),
        lambda c: c.analyse(elsewhere, SELECTOR, ANALYSIS, since=since),
        prometheus_url=prometheus,
    ).result
    assert result.requests == 0 and result.passed is None


def test_unreachable_prometheus_is_inconclusive_with_the_address(prom_pods):
    result = _prometheus_result("http://127.0.0.1:9", prom_pods, datetime.now(UTC))
    assert result.passed is None
    assert "Prometheus" in result.message and "127.0.0.1:9" in result.message
