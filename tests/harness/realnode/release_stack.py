"""The stack releases are measured on, on the real node: the chart's operator pods watching one namespace and
the demo's model store serving models trained here. Used by the release lane and benchmarks/rollout_live.py.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.demo_plan import NAME, chart_values, model_store_manifests, spec_for
from harness.operator import install_crds
from harness.realnode.pods import require_real_node

REPO = Path(__file__).resolve().parents[3]
TOOLS_IMAGE = "localhost/modeldeploy-tools:local"


@dataclass
class Stack:
    namespace: str
    url: str  # the stable Service's inference URL of `iris` (set once iris exists)
    node: str
    taint: str
    digests: dict[str, str]  # model version -> sha256 of iris-v<version>.joblib in the store

    def spec(self, version: str, **rollout: object) -> dict:
        """iris `version` from the store (demo_plan.spec_for), its rollout fields overridden by `rollout`."""
        spec = spec_for(
            version=version,
            namespace=self.namespace,
            sha256=self.digests[version],
            node=self.node,
            taint=self.taint,
        )
        spec["rollout"] |= rollout
        return spec


def apply_md(cluster, namespace: str, spec: dict, name: str = NAME) -> float:
    """Applies a ModelDeployment; returns the wall-clock time just after kubectl returned."""
    body = {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    return time.time()


def md_status(cluster, namespace: str, name: str = NAME) -> dict:
    return cluster.get_json("md", name, "-n", namespace).get("status", {})


def aborted_and_back(status: dict) -> bool:
    """The rollout aborted and the stable Service again selects one colour only, the active one (the pass that
    decides an abort writes the traffic it saw before moving the Service; the next one shows the move)."""
    traffic = status.get("traffic", [])
    return (
        status.get("rollout", {}).get("phase") == "Aborted"
        and len(traffic) == 1
        and traffic[0].get("color") == status.get("activeColor")
    )


def helm(cluster, *args: str) -> None:
    subprocess.run(["helm", *args], env=cluster.env, check=True, stdout=subprocess.DEVNULL, timeout=360)


@contextmanager
def operator_stack(
    cluster, namespace: str, release: str, files: Mapping[str, bytes], *, operators: int = 2
) -> Iterator[Stack]:
    """The chart's operator pods (an active one and standbys) in `<namespace>-system` watching `namespace`,
    which enforces the `restricted` Pod Security Standard, and the model store serving `files`. Every
    ModelDeployment of the namespace and the release are removed at the end."""
    node = require_real_node()
    taint = cluster.env["MODELDEPLOY_REAL_NODE_TAINT"]
    release_namespace = f"{namespace}-system"
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    install_crds(cluster)  # applied beside the chart: the release leaves them alone (crds.install false)
    values = chart_values(
        operator_image=cluster.env["MODELDEPLOY_OPERATOR_IMAGE"],
        serving_image=cluster.env["MODELDEPLOY_SERVING_IMAGE"],
        namespace=namespace,
        node=node,
        taint=taint,
        install_crds=False,
    )
    values["replicas"] = operators
    values_file = Path(cluster.kubeconfig).parent / f"{release}-values.json"
    values_file.write_text(json.dumps(values))
    try:
        # The model store comes up while helm waits for the operator pods.
        manifests = model_store_manifests(
            namespace=namespace, files=files, image=TOOLS_IMAGE, node=node, taint=taint
        )
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input="\n---\n".join(map(json.dumps, manifests)))
        helm(
            cluster,
            "upgrade",
            "--install",
            release,
            str(REPO / "charts" / "modeldeploy"),
            "-n",
            release_namespace,
            "--create-namespace",
            "-f",
            str(values_file),
            "--wait",
            "--timeout",
            "5m",
        )
        cluster.kubectl("rollout", "status", "deploy/model-store", "-n", namespace, "--timeout=120s")
        digests = {
            name.removeprefix("iris-v").removesuffix(".joblib"): hashlib.sha256(data).hexdigest()
            for name, data in files.items()
            if name.startswith("iris-v") and name.endswith(".joblib")
        }
        yield Stack(namespace, "", node, taint, digests)
    finally:
        cluster.kubectl("delete", "md", "--all", "-n", namespace, "--wait=true", "--timeout=60s", check=False)
        subprocess.run(
            ["helm", "uninstall", release, "-n", release_namespace, "--wait"],
            env=cluster.env,
            check=False,
            timeout=120,
        )
        cluster.kubectl("delete", "namespace", release_namespace, "--wait=false", check=False)


def stable_url(cluster, namespace: str, name: str = NAME) -> str:
    """A ModelDeployment's inference URL by its stable Service's ClusterIP (the host has no cluster DNS)."""
    ip = cluster.get_json("service", name, "-n", namespace)["spec"]["clusterIP"]
    return f"http://{ip}/v2/models/{name}/infer"
