"""Session-wide fixtures: the local control plane (started once per run) and a namespace per test module.

Set MODELDEPLOY_EXTERNAL_CLUSTER=1 with KUBECONFIG pointing at a real cluster (kind, k3d, EKS…) to run the
e2e tests there instead of the local one.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CLUSTER_SH = REPO / "tests" / "cluster" / "cluster.sh"


@dataclass(frozen=True)
class Cluster:
    kubeconfig: str
    env: dict[str, str]

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess:
        """Runs kubectl against this cluster; the result's stdout/stderr are text."""
        return subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *args],
            input=input,
            capture_output=True,
            text=True,
            check=check,
            env=self.env,
            timeout=120,
        )

    def get_json(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def wait_established(self, crd: str, timeout: float = 60) -> None:
        """Waits for a CRD's Established condition (kubectl wait trips over a CRD without conditions yet)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.kubectl("get", "crd", crd, "-o", "json", check=False)
            if found.returncode == 0:
                conditions = json.loads(found.stdout).get("status", {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    return
            time.sleep(0.2)
        raise TimeoutError(f"CRD {crd} not Established within {timeout}s")

    @property
    def audit_log(self) -> Path | None:
        path = self.env.get("MODELDEPLOY_AUDIT_LOG")
        return Path(path) if path else None


def _parse_exports(text: str, base: dict[str, str]) -> dict[str, str]:
    """Turns `export K="V"` lines from cluster.sh env into a dict, expanding $PATH."""
    env = dict(base)
    for line in text.splitlines():
        if not line.startswith("export "):
            continue
        key, _, raw = line[len("export ") :].partition("=")
        value = shlex.split(raw)[0] if raw else ""
        env[key] = value.replace("$PATH", base.get("PATH", ""))
    return env


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    """The control plane, started (or reused) once for the whole run; exports KUBECONFIG for the tests."""
    if os.environ.get("MODELDEPLOY_EXTERNAL_CLUSTER") == "1":
        return Cluster(kubeconfig=os.environ["KUBECONFIG"], env=dict(os.environ))
    subprocess.run(["bash", str(CLUSTER_SH), "up"], check=True, timeout=5400)
    exports = subprocess.run(
        ["bash", str(CLUSTER_SH), "env"], check=True, capture_output=True, text=True
    ).stdout
    env = _parse_exports(exports, dict(os.environ))
    os.environ.update({k: v for k, v in env.items() if k.startswith(("KUBECONFIG", "MODELDEPLOY_", "PATH"))})
    return Cluster(kubeconfig=env["KUBECONFIG"], env=env)


@pytest.fixture(scope="module")
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> str:
    """A fresh namespace for one test module, deleted (without waiting) when the module ends."""
    stem = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")[:40].strip("-")
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
