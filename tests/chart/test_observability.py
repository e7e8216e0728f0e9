"""Alerts and dashboard against real tools: promtool checks and unit tests of when each alert fires; every
metric they name is exported by modelserve (live /metrics) or the operator; and a real Prometheus that
scrapes two running modelserve processes and a running operator returns data for every dashboard query."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import joblib
import pytest
import yaml

from harness.chart import REPO
from harness.models import user_package

pytestmark = pytest.mark.chart
RULES = REPO / "alerts" / "modeldeploy.rules.yaml"
RULE_TESTS = REPO / "alerts" / "modeldeploy.rules.test.yaml"
DASHBOARD = REPO / "dashboards" / "modeldeploy.json"
METRIC_NAME = re.compile(r"\b(model(?:serve|deploy)_[a-zA-Z0-9_]+)\b")
# Targets that legitimately stay empty while nothing goes wrong, with the reason.
QUIET_TARGETS = {"errors {{error}}": "modeldeploy_reconcile_errors_total has series only after an error"}


def dashboard_targets() -> list[dict]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [{"panel": p["title"], **t} for p in panels for t in p.get("targets", [])]


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def operator_metric_names() -> set[str]:
    """Series names the operator's registry exposes (counters _total, histograms _bucket/_sum/_count)."""
    from modeldeploy.metrics import REGISTRY

    names = set()
    for family in REGISTRY.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
    return names


# -- promtool ------------------------------------------------------------------------------------------


def test_promtool_check_rules(cluster):
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True,
                            env=cluster.env)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_of_when_each_alert_fires(cluster):
    result = subprocess.run(["promtool", "test", "rules", str(RULE_TESTS)], capture_output=True, text=True,
                            env=cluster.env, cwd=RULE_TESTS.parent)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_that_fires_it():
    alerts = {
        r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r
    }
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts == tested


# -- a live scrape setup ---------------------------------------------------------------------------------


@dataclass
class Scraped:
    prometheus: str
    modelserve_exposition: str
    operator_exposition: str
    green_revision: str


def _gated_candidate(models, directory: Path) -> Path:
    """The shuffled-label model (fails the quality gate) that also answers 500 for MARKER rows."""
    with user_package(models.package, "probe_models") as probe_models:
        path = directory / "gated.joblib"
        joblib.dump(probe_models.FailOnMarker(joblib.load(models.bad)), path)
        return path


def _send_traffic(blue, green, rounds: int) -> None:
    """Predictions to both colours: blue must answer 200, green (MARKER rows make it raise) 500."""
    from harness.probes import clean_rows, marker_rows
    from harness.rollout import v2_body

    for _ in range(rounds):
        for server, row, expected in ((blue, clean_rows(1)[0], 200), (green, marker_rows(1)[0], 500)):
            got = server.client.post("/v2/models/iris/infer", json=v2_body(row)).status_code
            if got != expected:
                pytest.fail(f"{server.url} answered {got}, not {expected}: {server.stderr()[-2000:]}")


def _query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


@pytest.fixture(scope="module")
def scraped(cluster, namespace, tmp_path_factory) -> Iterator[Scraped]:
    """A real rollout first, so the operator exports every series the dashboard shows: v1 (good model)
    serves on blue; v2 on green fails its quality gate (check scores, traffic weights, an Aborted rollout).
    Then both colours take traffic (green answers 500 for MARKER rows) while Prometheus scrapes them."""
    from harness.operator import (
        create_operator_identity,
        create_peering,
        install_crds,
        kubectl_apply,
        running_operator,
    )
    from harness.probes import file_server
    from harness.rollout import (
        body,
        in_phase,
        revision,
        rollout_spec,
        serving,
        start_operator_env,
        start_pair,
        train_models,
        wait_all_ready,
        wait_rollout,
        write_drift_reference,
    )
    from harness.serving import free_port

    work = tmp_path_factory.mktemp("observability")
    models = train_models(work / "models")
    prometheus = None
    with file_server(models.holdout_dir) as dataset_url:
        gate = {"datasetUri": f"{dataset_url}/holdout.csv", "labelColumn": "species", "metric": "accuracy",
                "threshold": 0.8, "maxRegression": 0.05}  # fmt: skip
        rollout = {"steps": [{"weight": 50}], "qualityGate": gate}
        v1, v2 = rollout_spec("1", rollout), rollout_spec("2", rollout)
        write_drift_reference(work / "reference.csv")  # the serving pods' drift series
        drift = {"MODELSERVE_DRIFT_REFERENCE_FILE": str(work / "reference.csv")}
        pair = start_pair(work, "iris", v1, v2, models.good, _gated_candidate(models, work), models, drift)
        wait_all_ready([pair])
        install_crds(cluster)
        create_peering(cluster, namespace)
        identity = create_operator_identity(cluster, namespace, work)
        operator_env = start_operator_env(namespace, [pair])
        try:
            log = work / "operator.log"
            with running_operator(identity, namespace, log, extra_env=operator_env) as operator:
                kubectl_apply(cluster, body("iris", namespace, v1))
                wait_rollout(cluster, namespace, "iris", serving(revision(v1)), what="v1 serving on blue")
                kubectl_apply(cluster, body("iris", namespace, v2))
                wait_rollout(cluster, namespace, "iris", in_phase("Aborted"), timeout=120,
                             what="v2 stopped by its quality gate")  # fmt: skip
                port = free_port()
                config = {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(RULES)],
                    "scrape_configs": [
                        {"job_name": "modelserve", "static_configs": [{
                            "targets": [f"127.0.0.1:{pair.blue.port}", f"127.0.0.1:{pair.green.port}"],
                            "labels": {"namespace": namespace}}]},
                        # As the chart's ServiceMonitor: the operator's own namespace label wins.
                        {"job_name": "modeldeploy-operator", "honor_labels": True,
                         "static_configs": [{"targets": [f"127.0.0.1:{operator.metrics_port}"]}]},
                    ],
                }  # fmt: skip
                (work / "prometheus.yml").write_text(yaml.safe_dump(config))
                prometheus = subprocess.Popen(
                    ["prometheus", f"--config.file={work / 'prometheus.yml'}",
                     f"--storage.tsdb.path={work / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                    stdout=subprocess.DEVNULL, stderr=(work / "prometheus.log").open("wb"), env=cluster.env,
                )  # fmt: skip
                base = f"http://127.0.0.1:{port}"
                # Traffic across several scrapes, so every rate() has two samples that differ.
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline:
                    _send_traffic(pair.blue, pair.green, rounds=5)
                    time.sleep(0.5)
                    try:
                        if len(_query(base, "up == 1")) == 3 and _query(
                            base, "modeldeploy:inference_errors:rate5m > 0"
                        ):
                            break
                    except OSError:
                        continue
                # rate()[5m] divides by the whole window: enough requests to clear the alert's 0.1 rps floor.
                _send_traffic(pair.blue, pair.green, rounds=60)
                time.sleep(2.5)
                yield Scraped(
                    prometheus=base,
                    modelserve_exposition=httpx.get(f"{pair.blue.url}/metrics").text,
                    operator_exposition=operator.metrics(),
                    green_revision=revision(v2),
                )
        finally:
            if prometheus is not None:
                prometheus.terminate()
                prometheus.wait(30)
            pair.stop()


def test_dashboard_and_rules_name_only_exported_metrics(scraped):
    from prometheus_client.parser import text_string_to_metric_families

    exported = operator_metric_names()
    for family in text_string_to_metric_families(scraped.modelserve_exposition):
        exported |= {sample.name for sample in family.samples}
    used = {name for text in [t["expr"] for t in dashboard_targets()] + rule_expressions()
            for name in METRIC_NAME.findall(text)}  # fmt: skip
    assert used, "no metric names found"
    assert used <= exported, f"not exported by modelserve or the operator: {sorted(used - exported)}"


def test_running_operator_exports_what_its_registry_declares(scraped):
    from prometheus_client.parser import text_string_to_metric_families

    live = {s.name for f in text_string_to_metric_families(scraped.operator_exposition) for s in f.samples}
    # Labelled counters without children have no samples yet; the rest must be there.
    assert {"modeldeploy_reconciles_total", "modeldeploy_modeldeployments",
            "modeldeploy_reconcile_duration_seconds_bucket"} <= live  # fmt: skip


@pytest.mark.parametrize("target", dashboard_targets(), ids=lambda t: f"{t['panel']} / {t['legendFormat']}")
def test_dashboard_query_returns_data_from_a_real_prometheus(scraped, target):
    expr = target["expr"].replace("$namespace", ".*").replace("$model", ".*")
    result = _query(scraped.prometheus, expr)
    if target["legendFormat"] in QUIET_TARGETS:
        return
    assert result, f"no data for {target['panel']}: {expr}"


@pytest.mark.parametrize(
    ("expr", "labels"),
    [
        ("modeldeploy:inference_requests:rate5m", {"color": "blue"}),
        ("modeldeploy:inference_errors:rate5m", {"color": "green", "revision": "<v2>"}),
        ("modeldeploy:inference_latency_seconds:p99_5m", {"color": "blue", "model": "iris"}),
    ],
)
def test_recording_rules_evaluate_on_real_series(scraped, expr, labels):
    labels = {k: scraped.green_revision if v == "<v2>" else v for k, v in labels.items()}
    result = _query(scraped.prometheus, expr)
    assert any(labels.items() <= r["metric"].items() for r in result), result


def _values(scraped: Scraped, expr: str) -> dict[tuple[str, ...], float]:
    result = _query(scraped.prometheus, expr)
    return {tuple(r["metric"].values()): float(r["value"][1]) for r in result}


def test_rollout_series_say_what_the_quality_gate_decided(scraped):
    """The series behind the rollout panels carry the rollout that just happened: the gate scored the
    shuffled-label candidate below its 0.8 threshold and the serving model above it, the rollout ended
    Aborted, and the operator's split is all blue."""
    selector = f'check="quality_gate", name="iris", revision="{scraped.green_revision}"'
    scores = _values(scraped, f"max by (metric) (modeldeploy_check_score{{{selector}}})")
    assert scores[("score",)] < 0.8 <= scores[("active_score",)], scores
    outcomes = _values(scraped, 'sum by (outcome) (modeldeploy_rollouts_total{name="iris"})')
    assert outcomes.get(("Aborted",)) == 1, outcomes
    weights = _values(scraped, 'sum by (color) (modeldeploy_traffic_weight_percent{name="iris"})')
    assert weights == {("blue",): 100.0}, weights


def test_error_rate_alert_is_pending_or_firing_for_the_failing_colour(scraped):
    # The ALERTS series appears as soon as the expression is true (pending before `for` elapses).
    alerts = _query(scraped.prometheus, 'ALERTS{alertname="ModelServingHighErrorRate"}')
    assert {a["metric"]["color"] for a in alerts} == {"green"}, alerts
