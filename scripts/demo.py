"""The main job on one machine: control plane, chart, operator, a model and a blue/green rollout, all real.

kwok makes the pods Ready (there is no container runtime here), so two real modelserve processes on loopback
play the pods of each colour: the operator sends its smoke requests, quality gate and /metrics analysis to
them (MODELDEPLOY_PROBE_ADDRESSES), and this script sends client predictions to them. The operator runs as a
local process under the Helm chart's ServiceAccount, so what it does is what the chart's RBAC allows.
Run through `bash scripts/demo.sh`, which sets the machine up first.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import joblib
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modeldeploy.api import parse_spec
from modeldeploy.desired.revision import revision_of

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = os.environ.get("MODELDEPLOY_DEMO_NAMESPACE", "demo")
NAME = "iris"
RELEASE = os.environ.get("MODELDEPLOY_DEMO_RELEASE", "modeldeploy")
RELEASE_NAMESPACE = os.environ.get("MODELDEPLOY_DEMO_RELEASE_NAMESPACE", "modeldeploy-system")
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def kubectl(*args: str, input: str | None = None, check: bool = True) -> str:
    done = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        sys.exit(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train(workdir: Path) -> tuple[Path, Path, Path]:
    """v1 and v2 of the iris pipeline (preprocessing travels with the model) and a labelled holdout CSV."""
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, random_state=3, stratify=y)
    paths = []
    for version, c in (("1", 0.05), ("2", 10.0)):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500)).fit(X_train, y_train)
        path = workdir / f"v{version}" / "model.joblib"
        path.parent.mkdir(parents=True)
        joblib.dump(model, path)
        paths.append(path)
    holdout = workdir / "holdout.csv"
    rows = [",".join([*COLUMNS, "species"])] + [
        ",".join([*(f"{v:.3f}" for v in row), str(label)]) for row, label in zip(X_test, y_test, strict=True)
    ]
    holdout.write_text("\n".join(rows) + "\n")
    return paths[0], paths[1], holdout


def spec_for(version: str, holdout_url: str) -> dict:
    return {
        "model": {
            "uri": f"https://models.example.internal/iris/v{version}/model.joblib",
            "format": "sklearn",
            "allowUnverifiedPickle": True,  # demo only: production manifests pin model.sha256
            "version": version,
        },
        "replicas": 2,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "rollout": {
            "strategy": "BlueGreen",
            "autoPromote": True,
            "steps": [{"weight": 50, "pauseSeconds": 10}],
            "analysis": {"maxErrorRate": 0.05, "maxLatencyP99Ms": 500, "minRequests": 5,
                         "intervalSeconds": 2},
            "qualityGate": {"datasetUri": holdout_url, "labelColumn": "species", "metric": "accuracy",
                            "threshold": 0.8},
            "scaleDownDelaySeconds": 10,
        },
    }  # fmt: skip


def start_modelserve(workdir: Path, model: Path, spec: dict, color: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "MODELSERVE_PORT": str(port),
        "MODELSERVE_HOST": "127.0.0.1",
        "MODELSERVE_MODEL_PATH": str(model),
        "MODELSERVE_MODEL_NAME": NAME,
        "MODELSERVE_MODEL_VERSION": spec["model"]["version"],
        "MODELSERVE_MODEL_REVISION": revision_of(parse_spec(spec)),
        "MODELSERVE_MODEL_COLOR": color,
        "MODELSERVE_ALLOW_UNVERIFIED_PICKLE": "true",
        "MODELSERVE_MAX_BATCH_SIZE": "1",
        "MODELSERVE_TERMINATION_MESSAGE_PATH": str(workdir / f"{color}.termination"),
        "MODELSERVE_METRICS_DIR": str(workdir / f"{color}-metrics"),
        "MODELSERVE_LOG_SAMPLE_RATE": "0.01",
    }
    log = (workdir / f"modelserve-{color}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "modelserve", "serve"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            sys.exit(f"modelserve ({color}) exited: see {workdir}/modelserve-{color}.log")
        time.sleep(0.3)
    sys.exit(f"modelserve ({color}) not ready after 300 s")


def chart_kubeconfig(workdir: Path) -> Path:
    """A kubeconfig carrying the chart ServiceAccount's token: the operator gets exactly the chart's RBAC."""
    sa = json.loads(kubectl("get", "serviceaccounts", "-n", RELEASE_NAMESPACE, "-o", "json"))["items"]
    name = next(s["metadata"]["name"] for s in sa if s["metadata"]["name"].startswith(RELEASE))
    token = kubectl("create", "token", name, "-n", RELEASE_NAMESPACE, "--duration=2h").strip()
    admin = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cluster = next(c for c in admin["clusters"] if c["name"] == context["cluster"])["cluster"]
    base = Path(os.environ["KUBECONFIG"]).parent
    for key in ("certificate-authority",):
        if key in cluster and not os.path.isabs(cluster[key]):
            cluster[key] = str(base / cluster[key])
    path = workdir / "operator.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": cluster}],
                "users": [{"name": name, "user": {"token": token}}],
                "contexts": [{"name": "operator", "context": {"cluster": "local", "user": name}}],
                "current-context": "operator",
            }
        )
    )
    return path


def apply(spec: dict) -> None:
    body = {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": NAME, "namespace": NAMESPACE}, "spec": spec}  # fmt: skip
    kubectl("apply", "-f", "-", input=json.dumps(body))


def status() -> dict:
    out = kubectl("get", "md", NAME, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(out).get("status", {}) if out else {}


def follow(until, timeout: float, clients: dict[str, str]) -> dict:
    """Prints every phase/traffic change while sending client predictions to the colours taking traffic."""
    deadline, last, sent = time.monotonic() + timeout, None, 0
    # Twelve predictions per colour and pass: analysis never starves for requests on a busy machine.
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]] * 4
    while time.monotonic() < deadline:
        st = status()
        traffic = {t["color"]: t.get("weight", 0) for t in st.get("traffic", [])}
        for color, weight in traffic.items():
            if weight and color in clients:
                for row in rows:
                    httpx.post(f"{clients[color]}/v2/models/{NAME}/infer", timeout=5,
                               json={"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64",
                                                 "data": row}]})  # fmt: skip
                    sent += 1
        seen = (st.get("phase"), st.get("rollout", {}).get("phase"), json.dumps(traffic, sort_keys=True))
        if seen != last:
            print(f"  phase={seen[0]!s:<11} rollout={seen[1]!s:<12} traffic={seen[2]}  ({sent} predictions)")
            last = seen
        if until(st):
            return st
        time.sleep(0.5)
    sys.exit(f"timed out; last status: {json.dumps(st, indent=1)[:2000]}")


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="modeldeploy-demo-"))
    children: list[subprocess.Popen] = []
    try:
        say("Helm: installing charts/modeldeploy (RBAC, settings; the operator runs locally below)")
        # The CRDs may exist already, outside any release: apply the chart's copies (ModelDeployment, kopf's
        # peering kinds that the chart's post-install hook needs) directly; Helm does the rest.
        kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            str(REPO / "charts" / "modeldeploy" / "files" / "crds"),
        )
        subprocess.run(["helm", "upgrade", "--install", RELEASE, str(REPO / "charts" / "modeldeploy"),
                        "-n", RELEASE_NAMESPACE, "--create-namespace", "--set", "replicas=0",
                        "--set", "crds.install=false", "--wait"], check=True)  # fmt: skip
        kubectl("create", "namespace", NAMESPACE, check=False)
        kubectl(
            "delete", "md", NAME, "-n", NAMESPACE, "--ignore-not-found", "--wait=true"
        )  # a rerun starts clean

        say("Training iris v1 and v2 (StandardScaler + LogisticRegression, joblib) and a labelled holdout")
        v1_model, v2_model, holdout = train(workdir)
        data_port = free_port()
        children.append(subprocess.Popen([sys.executable, "-m", "http.server", str(data_port), "--bind",
                                          "127.0.0.1", "-d", str(workdir)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL))  # fmt: skip
        holdout_url = f"http://127.0.0.1:{data_port}/{holdout.name}"
        v1, v2 = spec_for("1", holdout_url), spec_for("2", holdout_url)

        say("Starting two real modelserve processes: blue serves v1, green serves v2 (the candidate)")
        blue, blue_url = start_modelserve(workdir, v1_model, v1, "blue")
        green, green_url = start_modelserve(workdir, v2_model, v2, "green")
        children += [blue, green]
        clients = {"blue": blue_url, "green": green_url}

        say("Starting the operator (python -m modeldeploy) as the chart's ServiceAccount")
        health = free_port()
        op_env = {
            **os.environ,
            "KUBECONFIG": str(chart_kubeconfig(workdir)),
            "MODELDEPLOY_NAMESPACES": NAMESPACE,
            "MODELDEPLOY_STANDALONE": "true",
            "MODELDEPLOY_HEALTH_PORT": str(health),
            "MODELDEPLOY_HEALTH_HOST": "127.0.0.1",
            "MODELDEPLOY_METRICS_PORT": str(free_port()),
            "MODELDEPLOY_ROLLOUT_TICK_SECONDS": "1",
            "MODELDEPLOY_PROBE_ADDRESSES": json.dumps({f"{NAMESPACE}/{NAME}": {"blue": [blue_url],
                                                                               "green": [green_url]}}),
        }  # fmt: skip
        op_log = workdir / "operator.log"
        operator = subprocess.Popen([sys.executable, "-m", "modeldeploy"], env=op_env,
                                    stdout=op_log.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
        children.append(operator)

        say(f"kubectl apply: ModelDeployment {NAMESPACE}/{NAME}, model v1")
        apply(v1)
        follow(lambda st: st.get("phase") == "Healthy", 180, clients)
        print(kubectl("get", "md,deploy,svc", "-n", NAMESPACE))

        say("kubectl apply: model v2 -> blue/green rollout (quality gate, 50% step with analysis, promotion)")
        apply(v2)
        final = follow(
            lambda st: (
                st.get("phase") == "Healthy" and st.get("activeRevision") == revision_of(parse_spec(v2))
            ),
            300,
            clients,
        )
        print(kubectl("get", "md", NAME, "-n", NAMESPACE))
        print("checks of the last rollout:")
        for check in ("smoke", "qualityGate", "analysis"):
            if result := final.get("rollout", {}).get(check):
                print(f"   {check}: {json.dumps(result)}")
        print("rollout history:")
        for entry in final.get("history", [])[-3:]:
            print("  ", json.dumps(entry))
        print(f"\nThe cluster is still up: eval \"$(bash tests/cluster/cluster.sh env)\"; kubectl get md -A\n"
              f"Logs of this run: {workdir}")  # fmt: skip
    finally:
        for proc in reversed(children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in children:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if os.environ.get("MODELDEPLOY_DEMO_CLEANUP") == "1":
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
