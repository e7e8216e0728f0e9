"""At steady state the operator writes nothing: the API server's audit log shows no write by the
operator's user to ModelDeployments or their children over a quiet window. The operator resyncs every
few seconds here, so each window holds at least one whole resync pass over every object (checked on
its metrics), not just the seconds between passes."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.operator import (
    OperatorProcess,
    audit_timestamp,
    audit_writes,
    create_operator_identity,
    create_peering,
    install_crds,
    is_ready,
    kubectl_apply,
    model_deployment,
    running_operator,
    wait_for,
)

pytestmark = pytest.mark.e2e
COUNT = int(os.environ.get("MODELDEPLOY_E2E_STEADY_COUNT", "50"))
QUIET_SECONDS = float(os.environ.get("MODELDEPLOY_E2E_QUIET_SECONDS", "20"))  # the least a window lasts
RESYNC_SECONDS = 5  # the default 300 s would put no resync in a window at all


@pytest.fixture(scope="module")
def operator_setup(cluster, namespace, tmp_path_factory):
    if not cluster.audit_log:
        pytest.fail("the cluster has no audit log (MODELDEPLOY_AUDIT_LOG); the steady-state test needs it")
    install_crds(cluster)
    create_peering(cluster, namespace)
    workdir = tmp_path_factory.mktemp("operator")
    yield create_operator_identity(cluster, namespace, workdir), workdir
    # 50 ModelDeployments hold 200 Service IPs of the shared cluster: give them back before the next module.
    cluster.kubectl("delete", "modeldeployments", "--all", "-n", namespace, "--wait=true", "--timeout=120s")
    wait_for(
        lambda: not cluster.get_json("services", "-n", namespace)["items"], 120, what="Services collected"
    )


def _all_ready(cluster, namespace: str) -> bool:
    items = cluster.get_json("modeldeployments", "-n", namespace)["items"]
    return len(items) == COUNT and all(is_ready(item) for item in items)


def resyncs_done(operator: OperatorProcess) -> float:
    """Reconciles the resync loop has finished so far, whatever their result."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(operator.metrics())
        for sample in family.samples
        if sample.name == "modeldeploy_reconciles_total" and sample.labels.get("trigger") == "resync"
    )


def quiet_window(operator: OperatorProcess) -> tuple[dt.datetime, dt.datetime]:
    """[since, until] lasting QUIET_SECONDS and until 2 x COUNT resyncs have finished in it: the pass under
    way at the start may be partial, so at least one whole pass over every object falls inside."""
    since, started, before = audit_timestamp(), time.monotonic(), resyncs_done(operator)
    wait_for(
        lambda: time.monotonic() - started >= QUIET_SECONDS and resyncs_done(operator) >= before + 2 * COUNT,
        timeout=QUIET_SECONDS + 20 * RESYNC_SECONDS,
        interval=1,
        what=f"{2 * COUNT} resyncs in a quiet window",
    )
    until = audit_timestamp()
    time.sleep(2)  # the audit backend flushes in batches
    return since, until


def test_no_writes_while_nothing_changes_even_across_a_restart(cluster, namespace, operator_setup):
    identity, workdir = operator_setup
    resync = {"MODELDEPLOY_RESYNC_SECONDS": str(RESYNC_SECONDS)}
    with running_operator(identity, namespace, workdir / "operator.log", extra_env=resync) as operator:
        kubectl_apply(cluster, [model_deployment(f"quiet-{i}", namespace, replicas=1) for i in range(COUNT)])
        wait_for(lambda: _all_ready(cluster, namespace), timeout=300, what=f"{COUNT} ModelDeployments Ready")
        time.sleep(5)  # the last status patches and their watch events settle
        since, until = quiet_window(operator)
        writes = audit_writes(cluster.audit_log, identity.username, namespace, since, until)
        assert writes == [], f"{len(writes)} writes at steady state, e.g. {writes[:5]}"

    # A restarted operator resumes every object and still finds nothing to write.
    with running_operator(identity, namespace, workdir / "operator-2.log", extra_env=resync) as operator:
        since, until = quiet_window(operator)
        writes = audit_writes(cluster.audit_log, identity.username, namespace, since, until)
        assert writes == [], f"{len(writes)} writes after a restart, e.g. {writes[:5]}"
