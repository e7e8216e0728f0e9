"""Rollout reaction times on the local control plane (issue 5 targets: under 1 s each).

    .venv/bin/python benchmarks/rollout_bench.py [--rounds 5]

1. candidate Ready -> traffic applied: from the moment the candidate Deployment reports all replicas Ready
   (kwok) to the stable Service selecting both colours (the first 50% step), and to its EndpointSlices
   listing both colours. Once with no pre-promotion checks, once with a smoke test (its time included).
2. failed analysis -> traffic back: from the failing analysis' /metrics snapshot (status.rollout.analysis.at)
   to the stable Service selecting the active colour only, and to its EndpointSlices.
Times are read by polling the API server every 20 ms from this process (so up to ~20 ms is sampling).
The operator is the real `python -m modeldeploy` subprocess; model servers are local modelserve processes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from kubernetes import client, config  # noqa: E402
from operator_fixtures import (  # noqa: E402
    OperatorProcess,
    create_operator_identity,
    create_peering,
    install_crds,
    kubectl_apply,
)
from rollout_fixtures import (  # noqa: E402
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

from conftest import CLUSTER_SH, Cluster, _parse_exports  # noqa: E402

POLL = 0.02


def shared_cluster() -> Cluster:
    subprocess.run(["bash", str(CLUSTER_SH), "up"], check=True, timeout=5400, stdout=subprocess.DEVNULL)
    exports = subprocess.run(
        ["bash", str(CLUSTER_SH), "env"], check=True, capture_output=True, text=True
    ).stdout
    env = _parse_exports(exports, dict(os.environ))
    os.environ.update({k: v for k, v in env.items() if k.startswith(("KUBECONFIG", "MODELDEPLOY_", "PATH"))})
    return Cluster(kubeconfig=env["KUBECONFIG"], env=env)


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


def failed_analysis_to_traffic_back(
    cluster: Cluster, ns: str, name: str, pair, rounds: int
) -> list[tuple[float, float]]:
    probe = Probe(ns, name)
    figures = []
    kubectl_apply(cluster, body(name, ns, pair.v2))
    for round_ in range(rounds):
        if round_:
            plugin(cluster, "retry", ns, name)
        poll_until(lambda: probe.selector_colors() is None, 90, "candidate gets traffic")
        t_back = poll_until(lambda: probe.selector_colors() == {"blue"}, 90, "Service back on blue")
        t_slices = poll_until(lambda: probe.endpoint_colors() == {"blue"}, 60, "EndpointSlices back on blue")
        analysis = (probe.md()["status"].get("rollout") or {}).get("analysis") or {}
        assert analysis.get("passed") is False, analysis
        t_fail = dt.datetime.fromisoformat(analysis["at"].replace("Z", "+00:00")).timestamp()
        figures.append((t_back - t_fail, t_slices - t_fail))
    return figures


def summary(label: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    each = " ".join(f"{v * 1000:.0f}" for v in values)
    return f"{label:<58} median {statistics.median(ms):6.0f} ms  max {ms[-1]:6.0f} ms  (each: {each})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cluster = shared_cluster()
    config.load_kube_config(cluster.kubeconfig)
    workdir = Path(tempfile.mkdtemp(prefix="rollout-bench-"))
    ns = f"rollout-bench-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    models = train_models(workdir / "models")
    analysis = {"maxErrorRate": 0.1, "minRequests": 5, "intervalSeconds": 1}
    erroring = {"steps": [{"weight": 50, "pauseSeconds": 3600}], "analysis": analysis}
    plain = {"steps": [{"weight": 50, "pauseSeconds": 3600}]}
    pairs = {
        "plain": start_pair(workdir, "plain", rollout_spec("1", plain), rollout_spec("2", plain),
                            models.good, models.good, models),
        "smoke": start_pair(workdir, "smoke", rollout_spec("1", plain), rollout_spec("2", plain),
                            models.good, models.good, models),
        "erroring": start_pair(workdir, "erroring", rollout_spec("1", erroring), rollout_spec("2", erroring),
                               models.good, models.failing, models),
    }  # fmt: skip
    operator = None
    try:
        wait_all_ready(list(pairs.values()))
        install_crds(cluster)
        create_peering(cluster, ns)
        identity = create_operator_identity(cluster, ns, workdir)
        operator = OperatorProcess(
            identity, ns, workdir / "operator.log", extra_env=start_operator_env(ns, list(pairs.values()))
        ).start()
        for name, pair in pairs.items():
            kubectl_apply(cluster, body(name, ns, pair.v1))
        for name in pairs:
            probe = Probe(ns, name)
            poll_until(lambda p=probe: phase(p) == "Completed", 90, f"{name} v1 serving")
        print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores shared with other work)")
        plain_figures = ready_to_traffic(cluster, ns, "plain", pairs["plain"], args.rounds, smoke=False)
        smoke_figures = ready_to_traffic(cluster, ns, "smoke", pairs["smoke"], args.rounds, smoke=True)
        erroring = pairs["erroring"]
        with Traffic("erroring", [erroring.blue.url, erroring.green.url]) as traffic:
            traffic.rows_for = lambda url: (
                marker_rows(1)[0] if url == erroring.green.url else [5.1, 3.5, 1.4, 0.2]
            )
            back_figures = failed_analysis_to_traffic_back(cluster, ns, "erroring", erroring, args.rounds)
        print(summary("candidate Ready -> Service selects both (no checks)", [a for a, _ in plain_figures]))
        print(summary("candidate Ready -> EndpointSlices both (no checks)", [b for _, b in plain_figures]))
        print(
            summary("candidate Ready -> Service selects both (smoke included)", [a for a, _ in smoke_figures])
        )
        print(summary("failed analysis -> Service back on active", [a for a, _ in back_figures]))
        print(summary("failed analysis -> EndpointSlices back on active", [b for _, b in back_figures]))
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
