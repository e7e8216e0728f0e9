"""The main job on one machine: the chart, the operator, a model and a blue/green rollout, all as real pods.

Everything runs on the real node `real-0` of the default local cluster: the operator pod from the chart
(in-cluster config, watching only the demo namespace), a model store (busybox httpd) that the init
containers fetch the model from with its sha256 pinned, and the modelserve pods of each colour. Predictions
go through the stable Service's ClusterIP (kube-proxy), each answer printed with the colour that gave it.
Run through `bash scripts/demo.sh`, which sets the machine up, starts the cluster and builds the images first.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from harness import poll
from harness.demo_plan import (
    HELM_RELEASE_ANNOTATION,
    NAME,
    OUR_CRDS,
    STORE,
    adoption_patch,
    chart_values,
    crd_plan,
    model_store_manifests,
    spec_for,
)
from harness.models import IRIS_ROWS, demo_files

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = os.environ.get("MODELDEPLOY_DEMO_NAMESPACE", "demo")
RELEASE = os.environ.get("MODELDEPLOY_DEMO_RELEASE", "modeldeploy")
RELEASE_NAMESPACE = os.environ.get("MODELDEPLOY_DEMO_RELEASE_NAMESPACE", "modeldeploy-system")
TOOLS_IMAGE = "localhost/modeldeploy-tools:local"
STARTED = time.monotonic()


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m  (+{time.monotonic() - STARTED:.0f}s)", flush=True)


def kubectl(*args: str, input: str | None = None, check: bool = True) -> str:
    done = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        sys.exit(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def get_json(*args: str) -> dict:
    out = kubectl("get", *args, "-o", "json", check=False)
    return json.loads(out) if out else {}


def wait_for(what: str, probe, timeout: float):
    try:
        return poll.wait_for(probe, timeout=timeout, what=what)
    except poll.WaitTimeout as timed_out:
        sys.exit(str(timed_out))


def real_node() -> tuple[str, str]:
    node, taint = os.environ.get("MODELDEPLOY_REAL_NODE_NAME"), os.environ.get("MODELDEPLOY_REAL_NODE_TAINT")
    if not node or not taint:
        sys.exit(
            "the demo needs the real node: run `bash tests/cluster/cluster.sh up` as root (default cluster),"
            ' then eval "$(bash tests/cluster/cluster.sh env)"'
        )
    return node, taint


def images() -> tuple[str, str]:
    """(operator, modelserve) refs in real-0's containerd; builds and imports them when the caller did not."""
    env = {k: os.environ.get(k) for k in ("MODELDEPLOY_OPERATOR_IMAGE", "MODELDEPLOY_SERVING_IMAGE")}
    if not all(env.values()):
        script = REPO / "tests" / "image" / "node-app-images.sh"  # its progress goes to our stderr
        out = subprocess.run(["bash", str(script)], check=True, stdout=subprocess.PIPE, text=True).stdout
        env = dict(line.split("=", 1) for line in out.split())
    return env["MODELDEPLOY_OPERATOR_IMAGE"], env["MODELDEPLOY_SERVING_IMAGE"]


def install_chart(operator_image: str, serving_image: str, node: str, taint: str) -> None:
    owners = {}
    for crd in OUR_CRDS:
        found = get_json("crd", crd)
        if found:
            owners[crd] = (found["metadata"].get("annotations") or {}).get(HELM_RELEASE_ANNOTATION)
    adopt, install_crds = crd_plan(owners, RELEASE)
    for crd in adopt:  # applied outside Helm (e.g. by `kubectl apply -f crds/`): the release takes them over
        kubectl(
            "patch", "crd", crd, "--type=merge", "-p", json.dumps(adoption_patch(RELEASE, RELEASE_NAMESPACE))
        )
    values = chart_values(operator_image=operator_image, serving_image=serving_image, namespace=NAMESPACE,
                          node=node, taint=taint, install_crds=install_crds)  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(values, f)
        f.flush()
        subprocess.run(["helm", "upgrade", "--install", RELEASE, str(REPO / "charts" / "modeldeploy"),
                        "-n", RELEASE_NAMESPACE, "--create-namespace", "-f", f.name, "--wait",
                        "--timeout", "5m"],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    pods = get_json("pods", "-n", RELEASE_NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}")["items"]
    for pod in pods:
        print(f"   operator pod {pod['metadata']['name']} on {pod['spec'].get('nodeName')} "
              f"({pod['status'].get('podIP')}), image {pod['spec']['containers'][0]['image']}")  # fmt: skip


def start_model_store(files: dict[str, bytes], node: str, taint: str) -> None:
    manifests = model_store_manifests(
        namespace=NAMESPACE, files=files, image=TOOLS_IMAGE, node=node, taint=taint
    )
    kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        input="\n---\n".join(map(json.dumps, manifests)),
    )
    kubectl("rollout", "status", f"deploy/{STORE}", "-n", NAMESPACE, "--timeout=120s")
    for name, data in files.items():
        print(
            f"   http://{STORE}.{NAMESPACE}.svc/{name}  {len(data)} bytes"
            f"  sha256 {hashlib.sha256(data).hexdigest()}"
        )


def apply(spec: dict) -> float:
    body = {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": NAME, "namespace": NAMESPACE}, "spec": spec}  # fmt: skip
    kubectl("apply", "-f", "-", input=json.dumps(body))
    return time.monotonic()


def status() -> dict:
    return get_json("md", NAME, "-n", NAMESPACE).get("status", {})


def first_ready_serving_pod() -> dict | None:
    for pod in serving_pods():
        if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or []):
            return pod
    return None


def cluster_ip() -> str | None:
    ip = get_json("service", NAME, "-n", NAMESPACE).get("spec", {}).get("clusterIP")
    return ip if ip and ip != "None" else None


def predict(client: httpx.Client, url: str, row: list[float]) -> tuple[str, str, str]:
    """(colour, revision, predicted class) of one request through the stable Service's ClusterIP."""
    body = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": row}]}
    try:
        reply = client.post(f"{url}/v2/models/{NAME}/infer", json=body)
    except httpx.HTTPError as error:
        return "-", "-", type(error).__name__
    outputs = reply.json().get("outputs") if reply.status_code == 200 else None
    answer = str(outputs[0]["data"][0]) if outputs else f"HTTP {reply.status_code}"
    return reply.headers.get("x-model-color", "?"), reply.headers.get("x-model-revision", "?"), answer


def follow(until, timeout: float, client: httpx.Client, url: str, answered: Counter, steps: list) -> dict:
    """Prints every phase/traffic change while sending predictions through the ClusterIP; collects the
    analysis verdicts of the traffic steps in `steps`."""
    deadline, last, st = time.monotonic() + timeout, None, {}
    while time.monotonic() < deadline:
        st = status()
        traffic = {t["color"]: t.get("weight", 0) for t in st.get("traffic", [])}
        rollout = st.get("rollout", {})
        if (
            rollout.get("phase") == "Stepping"
            and (verdict := rollout.get("analysis"))
            and verdict not in steps
        ):
            steps.append(verdict)
            print(f"   step analysis: {json.dumps(verdict)}")
        # Twelve predictions a pass once the Service has a colour: the step's analysis never starves.
        for row in IRIS_ROWS * 4 if traffic else []:
            color, revision, answer = predict(client, url, row)
            answered[color] += 1
            if color == "-":
                print(
                    f"   request failed ({answer}) at phase={st.get('phase')} rollout={rollout.get('phase')}"
                )
            elif answered[color] == 1:
                print(f"   first answer from {color}: class {answer} (revision {revision})")
        seen = (st.get("phase"), rollout.get("phase"), json.dumps(traffic, sort_keys=True))
        if seen != last:
            by = ", ".join(f"{c}={n}" for c, n in sorted(answered.items()))
            print(f"  phase={seen[0]!s:<11} rollout={seen[1]!s:<12} traffic={seen[2]}  (answered by {by})")
            last = seen
        if until(st):
            return st
        time.sleep(0.5)
    sys.exit(f"timed out; last status: {json.dumps(st, indent=1)[:3000]}")


def serving_pods() -> list[dict]:
    return get_json("pods", "-n", NAMESPACE, "-l", f"modeldeploy.io/name={NAME}").get("items", [])


def node_memory(node: str) -> str:
    """The node's working set and its pods' share, from the kubelet's summary (through the API server)."""
    summary = json.loads(kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/stats/summary"))
    mib = 1024 * 1024
    node_ws = summary["node"]["memory"]["workingSetBytes"] / mib
    pods = {f"{p['podRef']['namespace']}/{p['podRef']['name']}": p.get("memory", {}).get("workingSetBytes", 0)
            for p in summary.get("pods", [])}  # fmt: skip
    ours = [v for k, v in pods.items() if k.startswith((f"{NAMESPACE}/", f"{RELEASE_NAMESPACE}/"))]
    # real-0 is this machine: its working set includes everything else running here.
    return (
        f"node memory (working set) {node_ws:.0f} MiB, the demo's {len(ours)} pods {sum(ours) / mib:.0f} MiB"
    )


def deploy_v1(v1: dict) -> tuple[float, str]:
    """Applies v1; returns seconds from `kubectl apply` to the first Ready serving pod, and the ClusterIP."""
    applied = apply(v1)
    pod = wait_for("the first Ready serving pod", first_ready_serving_pod, 300)
    first_ready = time.monotonic() - applied
    where = f"{pod['spec']['nodeName']} ({pod['status']['podIP']})"
    print(
        f"   first Ready serving pod {pod['metadata']['name']} on {where}"
        f" {first_ready:.1f}s after kubectl apply"
    )
    ip = wait_for(f"Service {NAME}'s ClusterIP", cluster_ip, 60)
    # kube-proxy programs the Service's endpoints a moment after the pod turns Ready.
    with httpx.Client(timeout=2) as client:
        wait_for(
            f"an answer through {ip}", lambda: predict(client, f"http://{ip}", IRIS_ROWS[0])[0] != "-", 60
        )
    print(f"   predictions go to the stable Service {NAME} at ClusterIP {ip}:80 (kube-proxy picks the pod)")
    return first_ready, ip


def report(final: dict, steps: list[dict]) -> None:
    print(kubectl("get", "md", NAME, "-n", NAMESPACE))
    checks = {
        "qualityGate": final.get("rollout", {}).get("qualityGate"),
        "step analysis": (steps or [None])[-1],
    }
    for check, result in checks.items():
        print(f"   {check}: {json.dumps(result)}")
    print("rollout history:")
    for entry in final.get("history", [])[-3:]:
        print("  ", json.dumps(entry))


def main() -> None:
    node, taint = real_node()
    operator_image, serving_image = images()
    kubectl("create", "namespace", NAMESPACE, check=False)
    # A rerun starts clean: the first Ready pod measured must be one of this run.
    kubectl("delete", "md", NAME, "-n", NAMESPACE, "--ignore-not-found", "--wait=true", check=False)
    wait_for("the serving pods of an earlier run to go", lambda: not serving_pods(), 120)

    say(f"Helm: charts/modeldeploy with its CRDs; one operator pod on {node} ({operator_image})")
    install_chart(operator_image, serving_image, node, taint)

    say("Training iris v1 and v2 (StandardScaler + LogisticRegression) and a labelled holdout")
    files = demo_files()
    say(f"Model store: busybox httpd on {node} serving the files from a ConfigMap, Service {STORE}")
    start_model_store(files, node, taint)
    digests = {v: hashlib.sha256(files[f"iris-v{v}.joblib"]).hexdigest() for v in ("1", "2")}
    v1, v2 = (
        spec_for(version=v, namespace=NAMESPACE, sha256=digests[v], node=node, taint=taint) for v in "12"
    )

    say(
        f"kubectl apply: ModelDeployment {NAMESPACE}/{NAME} v1 (the init container fetches it, sha256 pinned)"
    )
    first_ready, ip = deploy_v1(v1)
    url = f"http://{ip}"
    answered: Counter = Counter()
    steps: list[dict] = []
    # A new connection per request: kube-proxy picks a pod per connection, and a kept-alive one sticks to it.
    with httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        follow(lambda st: st.get("phase") == "Healthy", 300, client, url, answered, steps)
        print(kubectl("get", "md,deploy,pods,svc", "-n", NAMESPACE, "-o", "wide"))

        say(
            "kubectl apply: v2 -> blue/green rollout (quality gate, 50% step judged on real requests,"
            " promotion)"
        )
        v1_revision = status().get("activeRevision")
        apply(v2)
        final = follow(
            lambda st: st.get("phase") == "Healthy" and st.get("activeRevision") not in (None, v1_revision),
            600, client, url, answered, steps,
        )  # fmt: skip
        after = Counter(predict(client, url, IRIS_ROWS[i % 3])[0] for i in range(30))
    report(final, steps)
    print(f"after promotion, 30 predictions through ClusterIP {ip} answered by: {dict(after)}")
    print(
        f"answers by colour over the whole demo: {dict(answered)};"
        f" active revision {final.get('activeRevision')}"
    )
    print(f"figures: apply -> first Ready serving pod {first_ready:.1f}s; {node_memory(node)}; "
          f"demo {time.monotonic() - STARTED:.0f}s")  # fmt: skip
    print(
        '\nThe cluster is still up: eval "$(bash tests/cluster/cluster.sh env)";'
        " kubectl get md,pods -A -o wide"
    )


if __name__ == "__main__":
    main()
