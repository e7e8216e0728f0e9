"""HA: two operator replicas with distinct peering priorities; the standby takes over when the active dies,
and a SIGTERM is a clean shutdown."""

from __future__ import annotations

import pytest

from harness.operator import (
    OperatorProcess,
    create_operator_identity,
    create_peering,
    get_obj,
    install_crds,
    kubectl_apply,
    model_deployment,
    wait_ready,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def identity(cluster, namespace, tmp_path_factory):
    install_crds(cluster)
    create_peering(cluster, namespace)
    return create_operator_identity(cluster, namespace, tmp_path_factory.mktemp("operator"))


def test_standby_takes_over_when_the_active_operator_is_killed(cluster, namespace, identity, tmp_path):
    active = OperatorProcess(identity, namespace, tmp_path / "active.log", priority=200).start()
    standby = OperatorProcess(identity, namespace, tmp_path / "standby.log", priority=100).start()
    try:
        kubectl_apply(cluster, model_deployment("first", namespace, replicas=1))
        wait_ready(cluster, namespace, "first")
        # kopf starts paused and resumes only when no live peer has a higher priority.
        assert "Resuming operations" in active.log_path.read_text()
        assert "Resuming operations" not in standby.log_path.read_text()
        assert "first-blue" in active.log_path.read_text()
        assert "first-blue" not in standby.log_path.read_text()

        active.kill()
        kubectl_apply(cluster, model_deployment("second", namespace, replicas=1))
        # Peering lifetime is 5 s in the tests: the standby resumes and handles the new object.
        wait_ready(cluster, namespace, "second", timeout=60)
        assert "Resuming operations" in standby.log_path.read_text()
        assert get_obj(cluster, "deployment", namespace, "second-blue") is not None
        assert "second-blue" in standby.log_path.read_text()
    finally:
        active.kill()
        standby.stop()


def test_sigterm_is_a_clean_shutdown(namespace, identity, tmp_path):
    operator = OperatorProcess(identity, namespace, tmp_path / "op.log", priority=300).start()
    assert operator.stop() == 0, operator.log_tail()
