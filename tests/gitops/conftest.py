"""The GitOps lane: one real Argo CD (and its git server) per session; the operator per module is the
harness's `operator` fixture."""

from __future__ import annotations

import pytest

from harness.argocd import build_argocd, running_argocd


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
