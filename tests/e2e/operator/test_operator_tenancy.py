"""One tenant cannot stop the operator serving the others, nor leave it retrying blind: a write the API
server refuses is reported (ApplyRejected, with its message and a Warning Event) and retried with backoff; a
hand-edited object no longer fails the passes, while a healthy neighbour keeps being repaired; routes and
ServiceMonitors the spec drops are deleted when ours and left alone when not; and replicas briefly active at
once never write an older phase back."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from harness.operator import (
    REPO,
    OperatorProcess,
    audit_timestamp,
    audit_writes,
    condition,
    create_operator_identity,
    create_peering,
    get_md,
    get_obj,
    install_crds,
    kubectl_apply,
    model_deployment,
    running_operator,
    wait_for,
    wait_ready,
)

pytestmark = pytest.mark.e2e

# Accepted by the CRD (affinity is passed through as a Pod's), refused by the API server on the Deployment.
BAD_AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "Near"}]}]
        }
    }
}
TEMPLATE_ANNOTATION = "modeldeploy.io/template-spec"


def _install_optional_crds(cluster) -> None:
    for crds, established in (
        ("gateway-api", "httproutes.gateway.networking.k8s.io"),
        ("prometheus-operator", "servicemonitors.monitoring.coreos.com"),
    ):
        subprocess.run(
            ["bash", str(REPO / "tests" / "cluster" / "cluster.sh"), "install-crds", crds],
            check=True,
            capture_output=True,
            env=cluster.env,
        )
        cluster.wait_established(established)


@pytest.fixture(scope="module")
def identity(cluster, namespace, tmp_path_factory):
    _install_optional_crds(cluster)
    install_crds(cluster)
    create_peering(cluster, namespace)
    return create_operator_identity(cluster, namespace, tmp_path_factory.mktemp("tenancy"))


@pytest.fixture(scope="module")
def operator(identity, namespace, tmp_path_factory):
    log = tmp_path_factory.mktemp("tenancy-operator") / "operator.log"
    with running_operator(identity, namespace, log) as process:
        yield process


def _reason(cluster, namespace: str, name: str, reason: str) -> dict | None:
    md = get_md(cluster, namespace, name)
    return md if condition(md, "Ready").get("reason") == reason else None


def _events(cluster, namespace: str, name: str, reason: str) -> list[dict]:
    listed = cluster.get_json("events", "-n", namespace, "--field-selector", f"reason={reason}")
    return [e for e in listed["items"] if e["involvedObject"]["name"] == name]


def test_a_write_the_api_server_refuses_is_reported_retried_with_backoff_and_taken_up_once_fixed(
    cluster, namespace, identity, operator
):
    kubectl_apply(cluster, model_deployment("neighbour", namespace, replicas=1))
    refused = model_deployment("refused", namespace, replicas=1, server={"affinity": BAD_AFFINITY})
    kubectl_apply(cluster, refused)  # the CRD takes it: affinity is validated by the Deployment
    since = audit_timestamp()
    md = wait_for(lambda: _reason(cluster, namespace, "refused", "ApplyRejected"), what="ApplyRejected")

    ready = condition(md, "Ready")
    assert ready["status"] == "False"
    assert "Deployment refused-blue" in ready["message"] and "Near" in ready["message"], ready
    assert md["status"]["phase"] == "Failed"  # nothing of it was ever served
    events = _events(cluster, namespace, "refused", "ApplyRejected")
    assert events and all(e["type"] == "Warning" for e in events), events
    wait_ready(cluster, namespace, "neighbour")  # the neighbour is served meanwhile

    time.sleep(25)  # refused at 0 s, retried after 5 s and 10 s more: three tries, not one every 5 s
    tries = [
        w
        for w in audit_writes(cluster.audit_log, identity.username, namespace, since, audit_timestamp())
        if w["resource"] == "deployments" and w["name"] == "refused-blue"
    ]
    assert 2 <= len(tries) <= 4, tries
    assert get_obj(cluster, "deployment", namespace, "refused-blue") is None

    kubectl_apply(cluster, model_deployment("refused", namespace, replicas=1))  # fixed: tried at once
    wait_ready(cluster, namespace, "refused", timeout=30)


def test_a_hand_edited_deployment_does_not_stop_its_rollout_and_a_neighbour_keeps_being_repaired(
    cluster, namespace, operator
):
    kubectl_apply(cluster, model_deployment("edited", namespace, replicas=1))
    kubectl_apply(cluster, model_deployment("healthy", namespace, replicas=1))
    wait_ready(cluster, namespace, "edited")
    wait_ready(cluster, namespace, "healthy")
    # Someone with Deployment rights breaks the saved template the operator rebuilds the old colour from.
    cluster.kubectl(
        "annotate",
        "deployment",
        "edited-blue",
        "-n",
        namespace,
        f"{TEMPLATE_ANNOTATION}={{not json",
        "--overwrite",
    )
    new_version = model_deployment("edited", namespace, replicas=1)
    new_version["spec"]["model"]["version"] = "4"
    kubectl_apply(cluster, new_version)

    for _ in range(3):  # the neighbour's drift is repaired, again and again
        cluster.kubectl("delete", "service", "healthy", "-n", namespace)
        wait_for(lambda: get_obj(cluster, "service", namespace, "healthy"), what="Service healthy repaired")
    done = wait_for(
        lambda: (lambda md: md if (md["status"].get("rollout") or {}).get("phase") == "Completed" else None)(
            wait_ready(cluster, namespace, "edited")
        ),
        timeout=90,
        what="the edited ModelDeployment's rollout completed",
    )
    assert done["status"]["activeColor"] == "green"
    assert "Traceback" not in operator.log_path.read_text()


def test_a_route_and_service_monitor_the_spec_drops_are_deleted_and_someone_elses_are_left_alone(
    cluster, namespace, operator
):
    routed = {"gatewayAPI": {"parentRefs": [{"name": "public-gateway"}]}}
    kubectl_apply(
        cluster,
        model_deployment(
            "routed",
            namespace,
            replicas=1,
            rollout={"trafficRouting": routed},
            monitoring={"serviceMonitor": {"enabled": True}},
        ),
    )
    foreign_route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "plain", "namespace": namespace},
        "spec": {
            "parentRefs": [{"name": "public-gateway"}],
            "rules": [{"backendRefs": [{"name": "x", "port": 80}]}],
        },
    }
    kubectl_apply(cluster, [foreign_route, model_deployment("plain", namespace, replicas=1)])
    wait_for(lambda: get_obj(cluster, "httproute", namespace, "routed"), what="HTTPRoute routed")
    wait_for(lambda: get_obj(cluster, "servicemonitor", namespace, "routed"), what="ServiceMonitor routed")
    wait_ready(cluster, namespace, "plain")
    before = get_obj(cluster, "httproute", namespace, "plain")

    kubectl_apply(cluster, model_deployment("routed", namespace, replicas=1))  # neither asked for any more
    kubectl_apply(cluster, model_deployment("plain", namespace, replicas=2))  # a spec change of its own
    wait_for(lambda: get_obj(cluster, "httproute", namespace, "routed") is None, what="HTTPRoute deleted")
    wait_for(
        lambda: get_obj(cluster, "servicemonitor", namespace, "routed") is None, what="ServiceMonitor deleted"
    )
    wait_ready(cluster, namespace, "plain")
    after = get_obj(cluster, "httproute", namespace, "plain")
    assert after is not None and before is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


class PhaseRecorder:
    """Every phase the API server reports for the ModelDeployments of a namespace, in order (a watch)."""

    def __init__(self, cluster, namespace: str) -> None:
        self.phases: dict[str, list[str]] = {}
        args = ["get", "modeldeployments", "-n", namespace, "--watch", "-o", "json"]
        self._process = subprocess.Popen(
            ["kubectl", "--kubeconfig", cluster.kubeconfig, *args],
            stdout=subprocess.PIPE,
            text=True,
            env=cluster.env,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        decoder, buffer = json.JSONDecoder(), ""
        assert self._process.stdout is not None
        for line in self._process.stdout:
            buffer += line
            try:
                body, end = decoder.raw_decode(buffer.lstrip())
            except ValueError:
                continue
            buffer = buffer.lstrip()[end:]
            phase = (body.get("status") or {}).get("phase")
            seen = self.phases.setdefault(body["metadata"]["name"], [])
            if phase and (not seen or seen[-1] != phase):
                seen.append(phase)

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


def test_two_operators_briefly_active_at_once_never_write_an_older_phase_back(
    cluster, namespace, identity, operator, tmp_path
):
    names = [f"race-{i}" for i in range(6)]
    # No peering: with the module's operator, three replicas act at once, as during a lease hand-over.
    standalone = {"MODELDEPLOY_STANDALONE": "true"}
    first = OperatorProcess(identity, namespace, tmp_path / "first.log", extra_env=standalone).start()
    second = OperatorProcess(identity, namespace, tmp_path / "second.log", extra_env=standalone).start()
    try:
        kubectl_apply(cluster, [model_deployment(name, namespace, replicas=1) for name in names])
        for name in names:
            wait_ready(cluster, namespace, name)
        replanned = sum(
            process.log_path.read_text().count("changed since it was read: planning again")
            for process in (operator, first, second)
        )
        # Each status write names the version it was planned from; the replicas' races end in re-reads.
        assert replanned > 0
        second.stop()
        first.stop()
        recorder = PhaseRecorder(cluster, namespace)
        time.sleep(5)  # a write planned from an older body before they stopped would land now
        recorder.stop()
    finally:
        second.kill()
        first.kill()
    for name in names:
        assert set(recorder.phases.get(name, [])) == {"Healthy"}, (name, recorder.phases.get(name))
        assert get_md(cluster, namespace, name)["status"]["rollout"]["phase"] == "Completed", name
    logs = "".join(p.log_path.read_text() for p in (operator, first, second))
    assert "Traceback" not in logs
