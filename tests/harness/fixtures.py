"""The pytest fixtures built from the harness, for every test folder (loaded by tests/conftest.py)."""

from __future__ import annotations

import pytest

from harness.operator import create_operator_identity, create_peering, install_crds, running_operator


@pytest.fixture(scope="module")
def operator(cluster, namespace, tmp_path_factory):
    """The operator as a subprocess under its own ServiceAccount, watching this module's namespace."""
    install_crds(cluster)
    create_peering(cluster, namespace)
    workdir = tmp_path_factory.mktemp("operator")
    identity = create_operator_identity(cluster, namespace, workdir)
    with running_operator(identity, namespace, workdir / "operator.log") as process:
        yield process
