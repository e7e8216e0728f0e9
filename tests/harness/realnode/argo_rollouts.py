"""Argo Rollouts beside the operator, for the live rollout benchmark: its controller (built and cached by
benchmarks/argo_rollouts/build.sh) as a local process watching one namespace, its CRDs, and a blue/green
Rollout whose pod template is copied from a Deployment the operator generated: both run the same pods.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.net import free_port

REPO = Path(__file__).resolve().parents[3]
BUILD = REPO / "benchmarks" / "argo_rollouts" / "build.sh"
VERSION_FILE = BUILD.parent / "version.env"
CRDS = ("rollouts", "analysisruns", "analysistemplates", "clusteranalysistemplates", "experiments")


def version() -> str:
    for line in VERSION_FILE.read_text().splitlines():
        if line.startswith("ARGO_ROLLOUTS_VERSION="):
            return line.split("=", 1)[1].strip()
    raise AssertionError(f"no ARGO_ROLLOUTS_VERSION in {VERSION_FILE}")


def build() -> Path:
    """The cache directory with `rollouts-controller` and `crds/` (built on first use: about 20 minutes)."""
    done = subprocess.run(["bash", str(BUILD)], check=True, stdout=subprocess.PIPE, text=True, timeout=7200)
    return Path(done.stdout.strip().splitlines()[-1])


def install_crds(cluster, cache: Path) -> None:
    """The release's CRDs, server-side (the Rollout CRD is too large for the last-applied annotation)."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(cache / "crds"))
    for crd in CRDS:
        cluster.wait_established(f"{crd}.argoproj.io")


@contextmanager
def controller(cluster, cache: Path, namespace: str, log: Path) -> Iterator[subprocess.Popen]:
    """`rollouts-controller` watching only `namespace` (no cluster RBAC, no leader election)."""
    command = [str(cache / "rollouts-controller"), "--kubeconfig", cluster.kubeconfig, "--namespaced",
               "--namespace", namespace, "--leader-elect=false", f"--healthzPort={free_port()}",
               f"--metricsPort={free_port()}", "--loglevel", "info"]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=cluster.env)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def pod_template(deployment_template: dict, labels: dict[str, str]) -> dict:
    """The operator's pod template with only its labels changed (probes, preStop, grace period, resources,
    environment kept); the spread constraint's selector follows the labels."""
    template = copy.deepcopy(deployment_template)
    template["metadata"]["labels"] = dict(labels)
    for constraint in template["spec"].get("topologySpreadConstraints", []):
        constraint["labelSelector"] = {"matchLabels": dict(labels)}
    return template


def services(name: str, labels: dict[str, str], ports: list[dict]) -> list[dict]:
    """The active and preview Services; the controller adds its pod-template-hash to their selectors."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"{name}-{role}", "labels": dict(labels)},
            "spec": {"type": "ClusterIP", "selector": dict(labels), "ports": ports},
        }
        for role in ("active", "preview")
    ]


def blue_green_rollout(
    name: str, template: dict, *, replicas: int, scale_down_delay_seconds: int, labels: dict[str, str]
) -> dict:
    """`strategy.blueGreen`, an active and a preview Service, promoted as soon as the new pods are ready."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": dict(labels)},
            "template": pod_template(template, labels),
            "strategy": {
                "blueGreen": {
                    "activeService": f"{name}-active",
                    "previewService": f"{name}-preview",
                    "autoPromotionEnabled": True,
                    "scaleDownDelaySeconds": scale_down_delay_seconds,
                }
            },
        },
    }


def apply(cluster, namespace: str, objects: list[dict]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input="\n---\n".join(map(json.dumps, objects)))


# Sends `count` predictions to a URL, a new connection each, and fails (exit 1) if more than `max_share` fail.
PREDICT_CHECK = """
import json, sys, urllib.request
url, count, max_share = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
body = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64",
                               "data": [5.1, 3.5, 1.4, 0.2]}]}).encode()
failed = 0
for _ in range(count):
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=2) as answer:
            answer.read()
    except Exception:
        failed += 1
print(f"{failed} of {count} predictions failed at {url}")
sys.exit(1 if failed > max_share * count else 0)
"""


def predict_check_template(name: str, pod_template: dict, *, count: int, max_share: float) -> dict:
    """An AnalysisTemplate whose one metric is a Job (Argo's Job provider: passed if it completes, failed if
    it fails) running PREDICT_CHECK against `{{args.url}}` in the serving image, placed and confined like the
    serving pods (their node selector, tolerations and security contexts), with 50m CPU."""
    spec = pod_template["spec"]
    server = spec["containers"][0]
    pod = {
        "restartPolicy": "Never",
        "securityContext": spec.get("securityContext", {}),
        "tolerations": spec.get("tolerations", []),
        "containers": [
            {
                "name": "predict-check",
                "image": server["image"],
                "imagePullPolicy": server.get("imagePullPolicy", "IfNotPresent"),
                "command": ["python3", "-c", PREDICT_CHECK, "{{args.url}}", str(count), str(max_share)],
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                "securityContext": server.get("securityContext", {}),
            }
        ],
    }
    for key in ("nodeSelector", "affinity"):
        if key in spec:
            pod[key] = spec[key]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name},
        "spec": {
            "args": [{"name": "url"}],
            "metrics": [
                {
                    "name": "predict-errors",
                    "provider": {
                        "job": {
                            "spec": {
                                "backoffLimit": 0,
                                "activeDeadlineSeconds": 120,
                                "template": {"spec": pod},
                            }
                        }
                    },
                }
            ],
        },
    }


def with_analysis(rollout: dict, when: str, template: str, url: str, *, abort_scale_down_delay: int) -> dict:
    """The Rollout judged by `template` against `url`: `when` is "pre" (prePromotionAnalysis, before the
    switch) or "post" (postPromotionAnalysis, after it)."""
    blue_green = rollout["spec"]["strategy"]["blueGreen"]
    blue_green[f"{when}PromotionAnalysis"] = {
        "templates": [{"templateName": template}],
        "args": [{"name": "url", "value": url}],
    }
    blue_green["abortScaleDownDelaySeconds"] = abort_scale_down_delay
    return rollout
