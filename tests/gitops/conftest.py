"""The GitOps lane: one real Argo CD (and its git server) per session, and the operator per module.

The operator's start helpers are the e2e harness's (tests/e2e/operator_fixtures.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))

from argocd_harness import build_argocd, running_argocd
from operator_fixtures import (
    create_operator_identity,
    create_peering,
    install_crds,
    running_operator,
)


@pytest.fixture(scope="session")
def argocd_bin():
    """The folder of the pinned Argo CD binary (built on first use: tests/cluster/build-argocd.sh)."""
    return build_argocd()


@pytest.fixture(scope="session")
def argocd_and_repo(cluster, argocd_bin, tmp_path_factory):
    """Argo CD's processes and the git daemon, started once; prints how long Argo CD took to start."""
    with running_argocd(cluster, argocd_bin, tmp_path_factory.mktemp("gitops")) as (argocd, repo):
        print(f"\nArgo CD started in {argocd.started_seconds:.1f}s (logs: {argocd.workdir})")
        yield argocd, repo


@pytest.fixture(scope="session")
def argocd(argocd_and_repo):
    return argocd_and_repo[0]


@pytest.fixture(scope="session")
def git_repo(argocd_and_repo):
    return argocd_and_repo[1]


@pytest.fixture(scope="module")
def operator(cluster, namespace, tmp_path_factory):
    """The operator as a subprocess under its own ServiceAccount, watching this module's namespace."""
    install_crds(cluster)
    create_peering(cluster, namespace)
    workdir = tmp_path_factory.mktemp("operator")
    identity = create_operator_identity(cluster, namespace, workdir)
    with running_operator(identity, namespace, workdir / "operator.log") as process:
        yield process
