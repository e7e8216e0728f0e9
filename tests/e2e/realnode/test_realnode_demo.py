"""`scripts/demo.py` on the real node as on a fresh machine: no CRDs of ours beforehand; the chart installs
them and runs the operator as a pod on `real-0`; a model store pod serves the model files; iris goes from v1
to v2 through a rollout while predictions travel through the stable Service's ClusterIP. One run, many
checks."""

from __future__ import annotations

import ast
import base64
import hashlib
import ipaddress
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.realnode.fresh_crds import OUR_CRDS, existing, without_our_crds
from harness.realnode.pods import require_real_node

pytestmark = [pytest.mark.e2e, pytest.mark.realnode]

REPO = Path(__file__).resolve().parents[3]
RELEASE = "demo-e2e"
MAX_CPU_MILLI = 50


@dataclass
class DemoRun:
    namespace: str
    release_namespace: str
    crds_before: list[dict]
    returncode: int
    out: str
    err: str
    seconds: float
    crds_after: list[dict]
    peerings: list[dict]
    md: dict
    pods: list[dict]  # every pod on the real node while the demo's objects still exist
    operator_pod: dict
    store_files: dict[str, bytes]
    store_log: str  # busybox httpd's: one line per response, with the client's address
    operator_api_calls: list[dict]  # audit events of the operator's ServiceAccount

    def line(self, prefix: str) -> str:
        found = [line.strip() for line in self.out.splitlines() if line.strip().startswith(prefix)]
        assert found, f"no line starting with {prefix!r} in:\n{self.out[-4000:]}"
        return found[-1]


def cpu_milli(quantity: str) -> float:
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def audit_events(audit_log: Path | None, username: str) -> list[dict]:
    if audit_log is None or not audit_log.exists():
        return []
    with audit_log.open() as lines:
        return [json.loads(line) for line in lines if username in line]


def store_files(cluster, namespace: str) -> dict[str, bytes]:
    cm = cluster.get_json("configmap", "model-store", "-n", namespace)
    return {name: base64.b64decode(data) for name, data in cm.get("binaryData", {}).items()}


def run_demo(cluster, namespace: str, release_namespace: str) -> subprocess.CompletedProcess:
    env = {
        **cluster.env,
        "MODELDEPLOY_DEMO_NAMESPACE": namespace,
        "MODELDEPLOY_DEMO_RELEASE": RELEASE,
        "MODELDEPLOY_DEMO_RELEASE_NAMESPACE": release_namespace,
    }
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


def tear_down(cluster, namespace: str, release_namespace: str) -> None:
    """The ModelDeployment first (its operator still runs to finish it), then the release, its namespace."""
    cluster.kubectl("delete", "md", "--all", "-n", namespace, "--wait=true", "--timeout=60s", check=False)
    subprocess.run(
        ["helm", "uninstall", RELEASE, "-n", release_namespace, "--wait"], env=cluster.env, check=False
    )
    cluster.kubectl("delete", "namespace", release_namespace, "--wait=false", check=False)
    cluster.kubectl("delete", "all", "--all", "-n", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def demo(cluster, namespace) -> DemoRun:
    node = require_real_node()
    release_namespace = f"{namespace}-system"
    with without_our_crds(cluster):
        crds_before = [c for crd in OUR_CRDS for c in existing(cluster, "crd", crd)]
        started = time.monotonic()
        done = run_demo(cluster, namespace, release_namespace)
        seconds = time.monotonic() - started
        print(done.stdout[-6000:], done.stderr[-3000:], sep="\n")
        try:
            pods = [p for p in cluster.get_json("pods", "-A")["items"] if p["spec"].get("nodeName") == node]
            operators = cluster.get_json("pods", "-n", release_namespace)["items"]
            sa = operators[0]["spec"]["serviceAccountName"] if operators else ""
            run = DemoRun(
                namespace=namespace,
                release_namespace=release_namespace,
                crds_before=crds_before,
                returncode=done.returncode,
                out=done.stdout,
                err=done.stderr,
                seconds=seconds,
                crds_after=[c for crd in OUR_CRDS for c in existing(cluster, "crd", crd)],
                peerings=existing(cluster, "kopfpeerings.kopf.dev", "-n", namespace),
                md=(existing(cluster, "md", "iris", "-n", namespace) or [{}])[0],
                pods=pods,
                operator_pod=operators[0] if operators else {},
                store_files=store_files(cluster, namespace),
                store_log=cluster.kubectl("logs", "-n", namespace, "deploy/model-store", check=False).stdout,
                operator_api_calls=audit_events(
                    cluster.audit_log, f"system:serviceaccount:{release_namespace}:{sa}"
                ),
            )
        finally:
            tear_down(cluster, namespace, release_namespace)
    assert run.returncode == 0, run.out[-4000:] + run.err[-4000:]
    return run


def test_demo_installs_the_chart_with_its_crds_on_a_cluster_that_has_none_of_ours(demo):
    assert demo.crds_before == []
    assert {c["metadata"]["name"] for c in demo.crds_after} == set(OUR_CRDS)
    for crd in demo.crds_after:  # installed by the chart's release, not applied beside it
        assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE
    # The post-install hook created the peering object the operator coordinates through.
    assert [p["metadata"]["name"] for p in demo.peerings] == ["modeldeploy"]


def test_first_serving_pod_is_ready_and_the_demo_prints_its_figures(demo):
    first = demo.line("first Ready serving pod")
    seconds = float(re.search(r" ([0-9.]+)s after kubectl apply", first).group(1))
    assert 0 < seconds < 300, first
    figures = demo.line("figures:")
    assert re.search(
        r"apply -> first Ready serving pod [0-9.]+s; node memory \(working set\) \d+ MiB", figures
    )
    print(f"\n{first}\n{figures}\n(the whole demo run took {demo.seconds:.0f}s)")


def test_v2_is_promoted_after_its_quality_gate_and_a_traffic_step_judged_on_real_requests(demo):
    status = demo.md["status"]
    assert status["phase"] == "Healthy"
    assert status["modelVersion"] == "2"
    assert status["history"][-1]["outcome"] == "Promoted"
    assert status["traffic"] == [{"color": "green", "revision": status["activeRevision"], "weight": 100}]
    assert "rollout=QualityGate" in demo.out
    assert '"blue": 50, "green": 50' in demo.out  # the 50% step was applied to the stable Service
    gate = json.loads(demo.line("qualityGate:").split(":", 1)[1])
    assert gate["passed"] is True and gate["score"] >= 0.8
    analysis = json.loads(demo.line("step analysis:").split(":", 1)[1])
    assert analysis["passed"] is True, analysis
    assert analysis["requests"] >= demo.md["spec"]["rollout"]["analysis"]["minRequests"], analysis
    assert analysis["message"].endswith("(2 pods)"), analysis  # both candidate pods' /metrics, by pod IP


def test_predictions_through_the_cluster_ip_are_answered_by_real_pods_of_both_colours(demo, cluster):
    line = demo.line("predictions go to the stable Service")
    ip = ipaddress.ip_address(re.search(r"ClusterIP ([0-9.]+):80", line).group(1))
    assert ip in ipaddress.ip_network(os.environ["MODELDEPLOY_SERVICE_CIDR"])
    answered = ast.literal_eval(
        demo.line("answers by colour over the whole demo:").split(":", 1)[1].split(";")[0]
    )
    assert answered.get("blue", 0) > 0 and answered.get("green", 0) > 0, answered
    assert set(answered) <= {"blue", "green"}, answered  # every answer carried its colour, none failed
    after = ast.literal_eval(demo.line("after promotion,").split("answered by:", 1)[1].strip())
    assert after == {"green": 30}
    serving = [p for p in demo.pods if p["metadata"].get("labels", {}).get("modeldeploy.io/name") == "iris"]
    assert serving and all(p["status"]["podIP"] for p in serving)  # real pods with pod-network addresses


def test_init_container_fetched_the_model_from_the_store_and_checked_its_digest(demo):
    spec_model = demo.md["spec"]["model"]
    v2 = demo.store_files["iris-v2.joblib"]
    assert spec_model["sha256"] == hashlib.sha256(v2).hexdigest()
    assert spec_model["uri"] == f"http://model-store.{demo.namespace}.svc.cluster.local/iris-v2.joblib"
    green = [p for p in demo.pods if p["metadata"].get("labels", {}).get("modeldeploy.io/color") == "green"]
    assert green
    for pod in green:
        fetch = pod["spec"]["initContainers"][0]
        assert fetch["name"] == "fetch-model"
        assert fetch["command"][:3] == ["modelserve", "fetch", spec_model["uri"]]
        assert fetch["command"][-2:] == ["--sha256", spec_model["sha256"]]
        state = pod["status"]["initContainerStatuses"][0]["state"]["terminated"]
        assert (state["exitCode"], state["reason"]) == (0, "Completed")
        # The download went over the pod network: the store answered this pod's address.
        assert re.search(
            rf"\[(::ffff:)?{re.escape(pod['status']['podIP'])}\]:\d+: response:200", demo.store_log
        )


def test_operator_runs_as_a_pod_on_the_real_node_with_its_service_account_token(demo):
    pod = demo.operator_pod
    assert pod["spec"]["nodeName"] == require_real_node()
    container = pod["spec"]["containers"][0]
    assert container["imagePullPolicy"] == "Never"
    assert not any(e["name"] == "KUBECONFIG" for e in container.get("env", []))
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert env["MODELDEPLOY_NAMESPACES"] == demo.namespace
    assert "MODELDEPLOY_PROBE_ADDRESSES" not in env  # model servers by the pod IPs it reads from the API
    # The API server saw the operator's writes made with the token bound to this very pod.
    writes = [
        e
        for e in demo.operator_api_calls
        if e.get("verb") in ("patch", "update", "create")
        and e.get("objectRef", {}).get("namespace") == demo.namespace
    ]
    assert writes, "no writes by the operator's ServiceAccount in the audit log"
    pod_names = {
        tuple(e["user"].get("extra", {}).get("authentication.kubernetes.io/pod-name", [])) for e in writes
    }
    assert pod_names == {(pod["metadata"]["name"],)}, pod_names
    assert all(pod["status"]["podIP"] in e.get("sourceIPs", []) for e in writes)


def test_every_pod_on_the_real_node_requests_at_most_50m_cpu(demo):
    too_big = {
        f"{p['metadata']['namespace']}/{p['metadata']['name']}/{c['name']}": c["resources"]["requests"]["cpu"]
        for p in demo.pods
        for c in p["spec"].get("initContainers", []) + p["spec"]["containers"]
        if cpu_milli(c.get("resources", {}).get("requests", {}).get("cpu", "0")) > MAX_CPU_MILLI
    }
    assert too_big == {}
    assert len(demo.pods) >= 5  # CoreDNS, metrics-server, the operator, the model store, the serving pods
