"""Session-wide fixtures: the local control plane (started once per run), a namespace per test module, the
harness's fixtures (tests/harness/fixtures.py) and the time per lane at the end (tests/harness/lanes.py)."""

from __future__ import annotations

import uuid

import pytest

from harness.cluster import Cluster, start_cluster

pytest_plugins = ["harness.fixtures", "harness.lanes"]


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    """The control plane, started (or reused) once for the whole run; exports KUBECONFIG for the tests."""
    return start_cluster()


@pytest.fixture(scope="module")
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> str:
    """A fresh namespace for one test module, deleted (without waiting) when the module ends."""
    stem = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")[:40].strip("-")
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
