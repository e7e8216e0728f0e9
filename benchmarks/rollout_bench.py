"""Rollout reaction times on the local control plane (target: under 1 s each).

    .venv/bin/python benchmarks/rollout_bench.py [--rounds 5] [--only ready|smoke|back ...]

1. candidate Ready -> traffic applied: from the moment the candidate Deployment reports all replicas Ready
   (kwok) to the stable Service selecting both colours (the first 50% step), and to its EndpointSlices
   listing both colours. Once with no pre-promotion checks, once with a smoke test (its time included).
2. failed analysis -> traffic back: from the failing verdict's /metrics snapshot (its `at`, as the operator
   logs it with the verdict) to the stable Service selecting the active colour only, and to its
   EndpointSlices; then where that time went (scrapes, status + pass, apply), read from the operator's log.
   The analysis interval before the verdict is configured time and not counted. The status' own
   rollout.analysis.at is checked against the verdict: a mismatch (a stale analysis kept in status) is
   reported, never timed from.
Times are read by polling the API server every 20 ms from this process (so up to ~20 ms is sampling).
The operator is the real `python -m modeldeploy` subprocess; model servers are local modelserve processes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

from harness.cluster import Cluster, start_cluster
from harness.operator import (
    OperatorProcess,
    create_operator_identity,
    create_peering,
    install_crds,
    kubectl_apply,
)
from harness.rollout import (
    Traffic,
    body,
    marker_rows,
    plugin,
    revision,
    rollout_spec,
    start_operator_env,
    start_pair,
    train_models,
    v2_body,
    wait_all_ready,
)

POLL = 0.02
PHASES = ("ready", "smoke", "back")


def poll_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Polls every 20 ms; returns the wall-clock time (time.time()) at which check() first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.time()
        time.sleep(POLL)
    raise TimeoutError(f"{what} not within {timeout}s")


class Probe:
    """Reads what the benchmark times, with the official client (keep-alive, no subprocess per read)."""

    def __init__(self, namespace: str, name: str) -> None:
        self.ns, self.name = namespace, name
        self.core, self.apps = client.CoreV1Api(), client.AppsV1Api()
        self.discovery = client.DiscoveryV1Api()
        self.custom = client.CustomObjectsApi()

    def md(self) -> dict:
        return self.custom.get_namespaced_custom_object(
            "modeldeploy.io", "v1alpha1", self.ns, "modeldeployments", self.name
        )

    def candidate_ready(self, color: str, revision_: str, replicas: int) -> bool:
        try:
            dep = self.apps.read_namespaced_deployment(f"{self.name}-{color}", self.ns)
        except client.ApiException:
            return False
        labels = dep.spec.template.metadata.labels or {}
        return (
            labels.get("modeldeploy.io/revision") == revision_
            and (dep.status.ready_replicas or 0) >= replicas
        )

    def selector_colors(self) -> set[str] | None:
        """None: the stable Service selects every colour (weighted step)."""
        selector = self.core.read_namespaced_service(self.name, self.ns).spec.selector or {}
        color = selector.get("modeldeploy.io/color")
        return {color} if color else None

    def endpoint_colors(self) -> set[str]:
        slices = self.discovery.list_namespaced_endpoint_slice(
            self.ns, label_selector=f"kubernetes.io/service-name={self.name}"
        ).items
        pods = {
            p.metadata.name: p.metadata.labels.get("modeldeploy.io/color")
            for p in self.core.list_namespaced_pod(
                self.ns, label_selector=f"modeldeploy.io/name={self.name}"
            ).items
        }
        colors = set()
        for piece in slices:
            for endpoint in piece.endpoints or []:
                if endpoint.conditions and endpoint.conditions.ready and endpoint.target_ref:
                    colors.add(pods.get(endpoint.target_ref.name, "?"))
        return colors


def phase(probe: Probe) -> str | None:
    return ((probe.md().get("status") or {}).get("rollout") or {}).get("phase")


def ready_to_traffic(
    cluster: Cluster, ns: str, name: str, pair, rounds: int, smoke: bool
) -> list[tuple[float, float]]:
    """(Service, EndpointSlices) delays after the candidate is Ready, one per round (alternating colours)."""
    probe = Probe(ns, name)
    figures = []
    for round_ in range(rounds):
        rollout = {"steps": [{"weight": 50, "pauseSeconds": 3600}], "scaleDownDelaySeconds": 0}
        if smoke:
            path = f"/v2/models/{name}/infer"
            rollout["smoke"] = {"requests": [{"path": path, "body": v2_body([5.1, 3.5, 1.4, 0.2])}]}
        spec = rollout_spec(f"{round_ + 2}", rollout)
        status = probe.md()["status"]
        candidate = "green" if status["activeColor"] == "blue" else "blue"
        kubectl_apply(cluster, body(name, ns, spec))
        wanted = revision(spec)
        t_ready = poll_until(
            lambda c=candidate, r=wanted: probe.candidate_ready(c, r, 2), 60, "candidate Ready"
        )
        t_service = poll_until(lambda: probe.selector_colors() is None, 60, "Service selects both colours")
        t_slices = poll_until(lambda: probe.endpoint_colors() == {"blue", "green"}, 60, "EndpointSlices")
        figures.append((t_service - t_ready, t_slices - t_ready))
        plugin(cluster, "promote", ns, name, "--full")

        def promoted(c: str = candidate) -> bool:
            md = probe.md()
            return (
                md["status"].get("activeColor") == c
                and (md["status"].get("rollout") or {}).get("phase") == "Completed"
            )

        poll_until(promoted, 60, "promoted")
    return figures


@dataclass
class BackRound:
    """One failed-analysis round: wall-clock times (time.time()) seen by the benchmark and the operator."""

    failed_at: float  # the failing verdict's /metrics snapshot (operator log: "check analysis ... [at T]")
    checked_at: float  # operator log: the analysis check returned its verdict
    service_write_at: float | None  # operator log: the stable Service update was sent
    service_back_at: float  # polled: the stable Service selects the active colour only
    slices_back_at: float  # polled: its EndpointSlices list the active colour only
    status_at: float | None  # status.rollout.analysis.at read afterwards (should equal failed_at)


@dataclass(frozen=True)
class LogLine:
    at: float  # when the operator logged it (kopf's text format: local time, ms)
    text: str


def operator_log(log: Path, needle: str) -> list[LogLine]:
    """Operator log lines containing `needle`, with their time.time()."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if needle in line and line.startswith("["):
            stamp = dt.datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
            found.append(LogLine(stamp.timestamp(), line))
    return found


def _inside(lines: list[LogLine], start: float, end: float) -> list[LogLine]:
    return [x for x in lines if start - 0.05 <= x.at <= end + 0.05]  # log stamps are ms, polls 20 ms


def _iso(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def failed_analysis_to_traffic_back(
    cluster: Cluster, ns: str, name: str, pair, rounds: int, log: Path
) -> list[BackRound]:
    """The clock starts at the failing verdict's snapshot as the operator logged it: the analysis interval
    before it (baseline pass -> judging pass) is configured time, not reaction time."""
    probe = Probe(ns, name)
    figures = []
    kubectl_apply(cluster, body(name, ns, pair.v2))
    for round_ in range(rounds):
        if round_:
            plugin(cluster, "retry", ns, name)
        t_split = poll_until(lambda: probe.selector_colors() is None, 90, "candidate gets traffic")
        t_back = poll_until(lambda: probe.selector_colors() == {"blue"}, 90, "Service back on blue")
        t_slices = poll_until(lambda: probe.endpoint_colors() == {"blue"}, 60, "EndpointSlices back on blue")
        failed = _inside(operator_log(log, f"check analysis of {ns}/{name}: failed: "), t_split, t_back)
        assert failed, f"no failing analysis logged between {t_split} and {t_back}"
        verdict = failed[-1]
        writes = _inside(operator_log(log, f"update Service {ns}/{name} "), verdict.at, t_back)
        status_at = ((probe.md()["status"].get("rollout") or {}).get("analysis") or {}).get("at")
        figures.append(
            BackRound(
                failed_at=_iso(verdict.text.rsplit("[at ", 1)[1].rstrip("]")),
                checked_at=verdict.at,
                service_write_at=writes[0].at if writes else None,
                service_back_at=t_back,
                slices_back_at=t_slices,
                status_at=_iso(status_at) if status_at else None,
            )
        )
    return figures


def back_breakdown(rounds: list[BackRound]) -> list[str]:
    """Where the failed-analysis -> traffic-back time goes, per stage (operator log + polling)."""

    def stage(label: str, start: str, end: str) -> str:
        values = [
            getattr(r, end) - getattr(r, start)
            for r in rounds
            if getattr(r, start) is not None and getattr(r, end) is not None
        ]
        return summary(f"  {label}", values) if values else f"  {label:<56} n/a (log lines not found)"

    return [
        stage("snapshot -> verdict (scrapes, A/B stats)", "failed_at", "checked_at"),
        stage("verdict -> Service update sent (status, pass)", "checked_at", "service_write_at"),
        stage("Service update sent -> visible to a reader", "service_write_at", "service_back_at"),
        _stale_status(rounds),
    ]


def _stale_status(rounds: list[BackRound]) -> str:
    """status.rollout.analysis.at should be the failing verdict's snapshot; an older stamp there means the
    status kept an earlier pass's analysis (timing from it would count the analysis interval)."""
    stale = [
        r.failed_at - r.status_at
        for r in rounds
        if r.status_at is None or abs(r.failed_at - r.status_at) > 0.001
    ]
    if not stale:
        return "  status.rollout.analysis.at equals the failing verdict's snapshot in every round"
    return (
        f"  status.rollout.analysis.at NOT the failing verdict in {len(stale)}/{len(rounds)} rounds (off by "
        + (" ".join(f"{d * 1000:.0f}" for d in stale) + " ms)")
    )


def summary(label: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    each = " ".join(f"{v * 1000:.0f}" for v in values)
    return f"{label:<58} median {statistics.median(ms):6.0f} ms  max {ms[-1]:6.0f} ms  (each: {each})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--only", choices=PHASES, action="append", help="run only these phases (repeatable; default all)"
    )
    args = parser.parse_args()
    phases = args.only or list(PHASES)
    cluster = start_cluster(quiet=True)
    config.load_kube_config(cluster.kubeconfig)
    workdir = Path(tempfile.mkdtemp(prefix="rollout-bench-"))
    ns = f"rollout-bench-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    models = train_models(workdir / "models")
    analysis = {"maxErrorRate": 0.1, "minRequests": 5, "intervalSeconds": 1}
    erroring = {"steps": [{"weight": 50, "pauseSeconds": 3600}], "analysis": analysis}
    plain = {"steps": [{"weight": 50, "pauseSeconds": 3600}]}
    wanted = {"plain": "ready", "smoke": "smoke", "erroring": "back"}
    specs = {
        "plain": (plain, models.good),
        "smoke": (plain, models.good),
        "erroring": (erroring, models.failing),
    }
    pairs = {
        name: start_pair(workdir, name, rollout_spec("1", rollout), rollout_spec("2", rollout), models.good,
                         green, models)
        for name, (rollout, green) in specs.items()
        if wanted[name] in phases
    }  # fmt: skip
    log = workdir / "operator.log"
    operator = None
    try:
        wait_all_ready(list(pairs.values()))
        install_crds(cluster)
        create_peering(cluster, ns)
        identity = create_operator_identity(cluster, ns, workdir)
        operator = OperatorProcess(
            identity, ns, log, extra_env=start_operator_env(ns, list(pairs.values()))
        ).start()
        for name, pair in pairs.items():
            kubectl_apply(cluster, body(name, ns, pair.v1))
        for name in pairs:
            probe = Probe(ns, name)
            poll_until(lambda p=probe: phase(p) == "Completed", 90, f"{name} v1 serving")
        print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores shared with other work)")
        if "ready" in phases:
            plain_figures = ready_to_traffic(cluster, ns, "plain", pairs["plain"], args.rounds, smoke=False)
            print(
                summary("candidate Ready -> Service selects both (no checks)", [a for a, _ in plain_figures])
            )
            print(
                summary("candidate Ready -> EndpointSlices both (no checks)", [b for _, b in plain_figures])
            )
        if "smoke" in phases:
            smoke_figures = ready_to_traffic(cluster, ns, "smoke", pairs["smoke"], args.rounds, smoke=True)
            print(
                summary(
                    "candidate Ready -> Service selects both (smoke included)", [a for a, _ in smoke_figures]
                )
            )
        if "back" in phases:
            pair = pairs["erroring"]
            with Traffic("erroring", [pair.blue.url, pair.green.url]) as traffic:
                traffic.rows_for = lambda url: (
                    marker_rows(1)[0] if url == pair.green.url else [5.1, 3.5, 1.4, 0.2]
                )
                back = failed_analysis_to_traffic_back(cluster, ns, "erroring", pair, args.rounds, log)
            print(
                summary(
                    "failed analysis -> Service back on active",
                    [r.service_back_at - r.failed_at for r in back],
                )
            )
            print(
                summary(
                    "failed analysis -> EndpointSlices back on active",
                    [r.slices_back_at - r.failed_at for r in back],
                )
            )
            print("\n".join(back_breakdown(back)))
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        if operator is not None:
            operator.stop()
        for pair in pairs.values():
            pair.stop()
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


if __name__ == "__main__":
    threading.current_thread().name = "rollout-bench"
    main()
