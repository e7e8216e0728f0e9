"""The chart in tests: real helm and kubectl from the local control plane's toolchain."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "modeldeploy"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
KUBE_VERSION = "1.34.4"  # helm built from Go modules reports v1.20 without a cluster; render for ours


def helm(cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["helm", "--kubeconfig", cluster.kubeconfig, *args],
        capture_output=True,
        text=True,
        check=check,
        env=cluster.env,
        timeout=300,
    )


def render(cluster, *args: str, chart: Path = CHART, namespace: str = "modeldeploy-system") -> list[dict]:
    """`helm template` with extra args; the documents, parsed."""
    out = helm(cluster, "template", "md", str(chart), "-n", namespace, "--kube-version", KUBE_VERSION, *args)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def find(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
