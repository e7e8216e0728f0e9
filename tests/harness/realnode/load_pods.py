"""The load client (`tests/loadclient/loadclient.py`) as a pod on the real node, and its results.

The script runs inside the modelserve image (it has Python; no image of its own) from a ConfigMap mount; its
per-second buckets and JSON summary are read back from the pod's log. The pod asks for 30m CPU: the node has
two cores for everything, so the rate stays modest (tens of requests per second) and the run bounded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from harness.operator import wait_for
from harness.realnode.pods import pod_manifest, require_real_node

LOADCLIENT = Path(__file__).resolve().parents[2] / "loadclient" / "loadclient.py"
PYTHON = "/opt/modelserve/bin/python"  # the modelserve image's venv
LOAD_CPU = "30m"
SERVER_UID = 10001


@dataclass(frozen=True)
class LoadRun:
    summary: dict
    buckets: list[dict]  # one per second of send time: start (wall clock), ok, failed, colors, revisions

    def colors_between(self, start: float, end: float) -> dict[str, int]:
        """Answers per colour from the buckets sent wholly inside [start, end) (wall clock)."""
        counts: dict[str, int] = {}
        for b in self.buckets:
            if start <= b["start"] and b["start"] + 1 <= end:
                for color, n in b["colors"].items():
                    counts[color] = counts.get(color, 0) + n
        return counts


def parse_load_log(text: str) -> LoadRun:
    """The client's stdout: `{"bucket": …}` lines, then one `{"summary": …}` line."""
    buckets, summary = [], None
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        doc = json.loads(line)
        if "bucket" in doc:
            buckets.append(doc["bucket"])
        elif "summary" in doc:
            summary = doc["summary"]
    if summary is None:
        raise AssertionError(f"no summary line in the load client's log:\n{text[-3000:]}")
    return LoadRun(summary, buckets)


def load_pod_manifests(
    name: str, *, url: str, body: dict, rate: float, duration: float, image: str, node: str
) -> list[dict]:
    """A ConfigMap with the script and the request body, and a pod running it once (PSS restricted)."""
    pod = pod_manifest(
        name,
        node,
        [
            PYTHON,
            "/load/loadclient.py",
            "--url",
            url,
            "--body-file",
            "/load/body.json",
            "--rate",
            str(rate),
            "--duration",
            str(duration),
            "--timeout",
            "2",
        ],
        image=image,
        restartPolicy="Never",
        securityContext={
            "runAsNonRoot": True,
            "runAsUser": SERVER_UID,
            "runAsGroup": SERVER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        volumes=[{"name": "load", "configMap": {"name": name}}],
    )
    container = pod["spec"]["containers"][0]
    container["imagePullPolicy"] = "Never"
    container["resources"] = {"requests": {"cpu": LOAD_CPU, "memory": "48Mi"}, "limits": {"memory": "256Mi"}}
    container["securityContext"] |= {"readOnlyRootFilesystem": True, "runAsNonRoot": True}
    container["volumeMounts"] = [{"name": "load", "mountPath": "/load", "readOnly": True}]
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"loadclient.py": LOADCLIENT.read_text(), "body.json": json.dumps(body)},
    }
    return [config, pod]


def pod_phase(cluster, namespace: str, name: str) -> str:
    found = cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "json", check=False)
    return json.loads(found.stdout).get("status", {}).get("phase", "") if found.returncode == 0 else ""


def start_load(
    cluster, namespace: str, name: str, *, url: str, body: dict, rate: float, duration: float
) -> None:
    """Starts the load pod; returns once its container runs (its first request is under a second away)."""
    image = os.environ["MODELDEPLOY_SERVING_IMAGE"]
    manifests = load_pod_manifests(
        name, url=url, body=body, rate=rate, duration=duration, image=image, node=require_real_node()
    )
    cluster.kubectl("delete", "pod,configmap", name, "-n", namespace, "--ignore-not-found", "--wait=true")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input="\n---\n".join(map(json.dumps, manifests)))
    wait_for(
        lambda: pod_phase(cluster, namespace, name) in ("Running", "Succeeded", "Failed"),
        timeout=90,
        what=f"load pod {name} running",
    )


def finish_load(cluster, namespace: str, name: str, timeout: float = 240) -> LoadRun:
    """Waits for the load pod to exit and parses its log."""
    phase = wait_for(
        lambda: (p := pod_phase(cluster, namespace, name)) in ("Succeeded", "Failed") and p,
        timeout=timeout,
        what=f"load pod {name} to finish",
    )
    log = cluster.kubectl("logs", name, "-n", namespace).stdout
    assert phase == "Succeeded", f"load pod {name} ended {phase}:\n{log[-3000:]}"
    return parse_load_log(log)


def stop_load(cluster, namespace: str, name: str) -> None:
    """Ends the run early (SIGTERM to the client, PID 1 of its container); it still prints its summary."""
    cluster.kubectl(
        "exec", name, "-n", namespace, "--", PYTHON, "-c", "import os, signal; os.kill(1, signal.SIGTERM)"
    )


def run_load(
    cluster, namespace: str, name: str, *, url: str, body: dict, rate: float, duration: float
) -> LoadRun:
    """A bounded constant-rate run from a pod on the real node; returns its summary and buckets."""
    start_load(cluster, namespace, name, url=url, body=body, rate=rate, duration=duration)
    return finish_load(cluster, namespace, name, timeout=duration + 90)


def step_windows(
    timeline: list[tuple[float, dict[str, int]]], settle: float = 2.0, tail: float = 1.0
) -> list[tuple[float, float, dict]]:
    """(start, end, weights) of each span where the traffic was split between colours, from a timeline of
    (wall clock, {colour: weight}) observations. The first `settle` seconds are left out (endpoints and
    kube-proxy's rules follow the Service a moment later), and the last `tail` (the Service may move on a
    poll before the status says so)."""
    windows: list[tuple[float, float, dict]] = []
    ends = [t for t, _ in timeline[1:]] + [timeline[-1][0]]
    for (t, weights), t_next in zip(timeline, ends, strict=True):
        split = {c: w for c, w in weights.items() if w}
        split = split if len(split) > 1 else {}
        if windows and split and windows[-1][2] == split and windows[-1][1] == t:
            windows[-1] = (windows[-1][0], t_next, split)
        elif split:
            windows.append((t, t_next, split))
    return [(start + settle, end - tail, w) for start, end, w in windows if end - start > settle + tail]


def all_answers_from(buckets: list[dict], color: str) -> float | None:
    """Start of the first bucket after which every answer came from `color` (None if the last did not)."""
    at = None
    for b in buckets:
        if set(b["colors"]) - {color}:
            at = None
        elif b["colors"] and at is None:
            at = b["start"]
    return at
