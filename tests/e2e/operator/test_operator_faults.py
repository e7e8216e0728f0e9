"""Degraded tells the truth: pods that crash-loop (failed load or warm-up), get OOM-killed or cannot pull
their image (made so by kwok Stages) turn the ModelDeployment Degraded/Failed with the cause in the
message."""

from __future__ import annotations

import pytest

from harness.operator import (
    FAULT_IMAGE,
    MODEL_LOAD_MESSAGE,
    WARMUP_MESSAGE,
    condition,
    get_md,
    kubectl_apply,
    model_deployment,
    wait_for,
)

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("fault", "reason", "words"),
    [
        ("crashloop", "ModelLoadFailed", [MODEL_LOAD_MESSAGE, "exited with code 1", "CrashLoopBackOff"]),
        ("warmup", "WarmupFailed", [WARMUP_MESSAGE, "exited with code 5", "CrashLoopBackOff"]),
        ("oom", "OOMKilled", ["OOM-killed", "resources.limits.memory"]),
        ("imagepull", "ImagePullBackOff", [FAULT_IMAGE.format(fault="imagepull")]),
    ],
    ids=[
        "crash-loop-quotes-termination-message",
        "warm-up-failed",
        "oom-killed",
        "image-pull-names-the-image",
    ],
)
def test_failing_pods_make_the_modeldeployment_degraded_with_the_cause(
    cluster, namespace, operator, fault, reason, words
):
    name = f"fault-{fault}"
    kubectl_apply(
        cluster,
        model_deployment(name, namespace, replicas=1, server={"image": FAULT_IMAGE.format(fault=fault)}),
    )

    def degraded():
        body = get_md(cluster, namespace, name)
        cond = condition(body, "Degraded")
        return (body, cond) if cond.get("status") == "True" else None

    body, cond = wait_for(degraded, timeout=90, what=f"Degraded=True for {fault}")
    assert cond["reason"] == reason
    for word in words:
        assert word in cond["message"], cond
    assert body["status"]["phase"] in ("Degraded", "Failed")
    assert condition(body, "Ready")["status"] == "False"
    events = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}", "-o", "json"
    ).stdout
    assert reason in events
