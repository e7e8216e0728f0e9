"""The local control plane (tests/cluster/cluster.sh) as the tests and benchmarks see it, and private clusters
of the same binaries for the benchmarks that must not share it.

Set MODELDEPLOY_EXTERNAL_CLUSTER=1 with KUBECONFIG pointing at a real cluster (kind, k3d, EKS…) to run the
e2e tests there instead of the local one.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
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


def parse_exports(text: str, base: dict[str, str]) -> dict[str, str]:
    """Turns `export K="V"` lines from cluster.sh env into a dict, expanding $PATH."""
    env = dict(base)
    for line in text.splitlines():
        if not line.startswith("export "):
            continue
        key, _, raw = line[len("export ") :].partition("=")
        value = shlex.split(raw)[0] if raw else ""
        env[key] = value.replace("$PATH", base.get("PATH", ""))
    return env


def start_cluster(*, quiet: bool = False) -> Cluster:
    """The shared local cluster, started (or reused) by cluster.sh, or the external one the environment
    names."""
    if os.environ.get("MODELDEPLOY_EXTERNAL_CLUSTER") == "1":
        return Cluster(kubeconfig=os.environ["KUBECONFIG"], env=dict(os.environ))
    output = subprocess.DEVNULL if quiet else None
    subprocess.run(["bash", str(CLUSTER_SH), "up"], check=True, timeout=5400, stdout=output)
    exports = subprocess.run(
        ["bash", str(CLUSTER_SH), "env"], check=True, capture_output=True, text=True
    ).stdout
    env = parse_exports(exports, dict(os.environ))
    # Exported here too: the kubectl, helm and kubernetes clients of this process find the cluster.
    os.environ.update({k: v for k, v in env.items() if k.startswith(("KUBECONFIG", "MODELDEPLOY_", "PATH"))})
    return Cluster(kubeconfig=env["KUBECONFIG"], env=env)


def prometheus_binary() -> Path:
    """The binary tests/cluster/build.sh builds (cached); `cluster.sh env` says where."""
    bin_dir = os.environ.get("MODELDEPLOY_BIN_DIR")
    if not bin_dir:
        out = subprocess.run(
            ["bash", str(CLUSTER_SH), "env"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for line in out.splitlines():
            if "MODELDEPLOY_BIN_DIR=" in line:
                bin_dir = line.split("MODELDEPLOY_BIN_DIR=", 1)[1].strip().strip("'\"")
    binary = Path(bin_dir or "") / "prometheus"
    if not binary.is_file():  # a missing binary is a setup failure, never a skip
        raise AssertionError(f"{binary} not found: run `bash tests/cluster/build.sh` first")
    return binary


def start_private_cluster(name: str, workdir: Path) -> tuple[Cluster, Callable[[], None]]:
    """A cluster of its own (same binaries and kwok Stages as tests/cluster/cluster.sh) with room for
    thousands of Services, so the benchmark neither hits the shared cluster's /24 nor starves other tests."""
    subprocess.run(
        ["bash", str(REPO / "tests" / "cluster" / "build.sh")], check=True, stdout=subprocess.DEVNULL
    )
    exports = subprocess.run(
        ["bash", str(CLUSTER_SH), "env"], check=True, capture_output=True, text=True
    ).stdout
    shared = parse_exports(exports, dict(os.environ))
    bins = Path(shared["MODELDEPLOY_BIN_DIR"])
    kubeconfig = workdir / "kubeconfig.yaml"
    env = {**os.environ, "KWOK_WORKDIR": str(workdir / "kwok"), "KWOK_KUBECTL_BINARY": str(bins / "kubectl"),
           "PATH": f"{bins}:{os.environ['PATH']}", "KUBECONFIG": str(kubeconfig)}  # fmt: skip
    wide = "service-cluster-ip-range=10.0.0.0/16"
    subprocess.run(
        [str(bins / "kwokctl"), "create", "cluster", "--name", name, "--runtime", "binary",
         *(f"--{c}-binary={bins / c}" for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                                 "etcd")),
         f"--kwok-controller-binary={bins / 'kwok'}", "--kube-authorization",
         f"--kube-audit-policy={REPO / 'tests' / 'cluster' / 'audit-policy.yaml'}", "--enable-crds=Stage",
         "--disable-qps-limits", f"--extra-args=kube-apiserver={wide}",
         f"--extra-args=kube-controller-manager={wide}", f"--kubeconfig={kubeconfig}", "--wait=120s"],
        check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    env["MODELDEPLOY_AUDIT_LOG"] = str(workdir / "kwok" / "clusters" / name / "logs" / "audit.log")
    cluster = Cluster(kubeconfig=str(kubeconfig), env=env)

    def delete() -> None:
        subprocess.run([str(bins / "kwokctl"), "delete", "cluster", "--name", name], env=env, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    try:
        cluster.kubectl("apply", "-f", shared["MODELDEPLOY_KWOK_STAGES"])
        for i in range(2):
            cluster.kubectl("apply", "-f", "-", input=json.dumps(NODE).replace("NAME", f"kwok-node-{i}"))
        cluster.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
    except BaseException:
        delete()  # a half-started cluster must not outlive the run
        raise
    return cluster, delete


NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "name": "NAME",
        "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        "labels": {"type": "kwok", "kubernetes.io/hostname": "NAME", "kubernetes.io/os": "linux"},
    },
    "status": {
        "allocatable": {"cpu": "1000", "memory": "4Ti", "pods": "2000"},
        "capacity": {"cpu": "1000", "memory": "4Ti", "pods": "2000"},
    },
}


NODE = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {
        "name": "NAME",
        "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        "labels": {"type": "kwok", "kubernetes.io/hostname": "NAME", "kubernetes.io/os": "linux"},
    },
    "status": {
        "allocatable": {"cpu": "1000", "memory": "4Ti", "pods": "2000"},
        "capacity": {"cpu": "1000", "memory": "4Ti", "pods": "2000"},
    },
}
