"""Harness for the rollout e2e tests: iris models trained here, real modelserve processes on loopback as each
colour's pods (the operator reaches them through MODELDEPLOY_PROBE_ADDRESSES), client traffic, and a
sampler of the stable Service's EndpointSlices.

kwok makes the pods Ready; the model servers that answer the operator's smoke requests, quality gate and
/metrics scrapes are the local processes, started with the revision the operator computes for each spec
(the analysis selects series by revision and colour, exactly as in a cluster).
"""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

from harness.models import IRIS_COLUMNS, train_iris, user_package
from harness.operator import (
    FAULT_STAGES,
    REPO,
    OperatorIdentity,
    OperatorProcess,
    create_operator_identity,
    create_peering,
    get_md,
    install_crds,
    kubectl_apply,
)
from harness.poll import WaitTimeout, wait_for
from harness.probes import MARKER, PROBE_MODELS, clean_rows, marker_rows, write_csv
from harness.serving import Server, iris_env, start_server
from modeldeploy.api import parse_spec
from modeldeploy.desired.params import BuildParams
from modeldeploy.desired.revision import revision_of

# A deleted pod keeps answering through its preStop sleep while endpoints drain; kwok deletes pods at once,
# so an endpoint that outlives its pod by less than that sleep is what a real kubelet would still serve.
DELETED_POD_SERVES_SECONDS = BuildParams().pre_stop_seconds

# Colour sets the EndpointSlice samplers' expectations are written in.
BLUE, GREEN, BOTH = frozenset({"blue"}), frozenset({"green"}), frozenset({"blue", "green"})

PLUGIN = REPO / "plugin" / "kubectl-modeldeploy"
TRAFFIC_PHASES = ("Stepping", "Paused", "Promoting")
__all__ = ["MARKER", "clean_rows", "marker_rows"]


# -- models and data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Models:
    """good: ~0.95 accuracy on the holdout; bad: trained on shuffled labels (about chance); failing: the
    good model, but HTTP 500 for rows whose first feature is MARKER (needs `package` on PYTHONPATH).
    holdout_dir: holdout.csv, and holdout-wrong.csv (the same rows, each label moved to the next class)."""

    good: Path
    bad: Path
    failing: Path
    package: Path
    holdout_dir: Path


def train_models(root: Path) -> Models:
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, random_state=7, stratify=y)

    def fit(labels: np.ndarray):
        return train_iris(X_train, labels)

    package = root / "userpkg"
    (package / "probe_models").mkdir(parents=True)
    (package / "probe_models" / "__init__.py").write_text(PROBE_MODELS)
    good = fit(y_train)
    with user_package(package, "probe_models") as probe_models:
        failing = probe_models.FailOnMarker(good)
        paths = {}
        for name, model in {
            "good": good,
            "bad": fit(np.random.default_rng(0).permutation(y_train)),
            "failing": failing,
        }.items():
            paths[name] = root / f"{name}.joblib"
            joblib.dump(model, paths[name])
    holdout = root / "datasets"
    holdout.mkdir()
    rows = [[*map(float, x), int(label)] for x, label in zip(X_test, y_test, strict=True)]
    write_csv(holdout / "holdout.csv", [*IRIS_COLUMNS, "species"], rows)
    # Every label moved to the next class: no model passes an evaluation on it.
    wrong = [[*row[:-1], (row[-1] + 1) % 3] for row in rows]
    write_csv(holdout / "holdout-wrong.csv", [*IRIS_COLUMNS, "species"], wrong)
    return Models(paths["good"], paths["bad"], paths["failing"], package, holdout)


# The names modelserve gives the columns of a model trained on a bare array (the iris models here).
MODEL_FEATURES = [f"feature_{i}" for i in range(4)]


def write_drift_reference(path: Path) -> str:
    """All of iris under the models' feature names, as the CSV a drift reference is; returns its SHA-256."""
    X, _ = load_iris(return_X_y=True)
    write_csv(path, MODEL_FEATURES, X.tolist())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def drifted_rows(count: int, feature: int, seed: int = 0) -> list[list[float]]:
    """Rows drawn from iris with one feature shifted by two standard deviations (count=0 shift: none)."""
    X, _ = load_iris(return_X_y=True)
    rows = X[np.random.default_rng(seed).integers(0, len(X), count)].copy()
    if feature >= 0:
        rows[:, feature] += 2 * X[:, feature].std()
    return rows.tolist()


# -- ModelDeployments and the local model servers behind their colours ----------------------------------


def v2_body(row: Sequence[float]) -> dict:
    return {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": list(row)}]}


def rollout_spec(version: str, rollout: dict[str, Any], replicas: int = 2) -> dict[str, Any]:
    """A spec whose revision changes with `version` (the model URI is part of the pods)."""
    return {
        "model": {
            "uri": f"https://models.example.internal/iris/v{version}/model.joblib",
            "format": "sklearn",
            "allowUnverifiedPickle": True,
            "version": version,
        },
        "replicas": replicas,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "rollout": rollout,
    }


def revision(spec: dict[str, Any]) -> str:
    return revision_of(parse_spec(spec))


@dataclass
class Pair:
    """One ModelDeployment: v1 on blue (the first colour), v2 the candidate on green."""

    name: str
    v1: dict[str, Any]
    v2: dict[str, Any]
    blue: Server
    green: Server

    @property
    def addresses(self) -> dict[str, list[str]]:
        return {"blue": [self.blue.url], "green": [self.green.url]}

    def stop(self) -> None:
        for server in (self.blue, self.green):
            server.stop()


def start_pair(
    workdir: Path,
    name: str,
    v1: dict,
    v2: dict,
    blue_model: Path,
    green_model: Path,
    models: Models,
    extra_env: dict[str, str] | None = None,
) -> Pair:
    """Starts both servers without waiting (callers start every pair, then wait for all); `extra_env`
    stands for what both colours' pods mount alike (e.g. the prediction-id signing key)."""

    def serve(color: str, model: Path, spec: dict) -> Server:
        env = iris_env(
            model,
            MODELSERVE_MODEL_NAME=name,
            MODELSERVE_MODEL_VERSION=spec["model"]["version"],
            MODELSERVE_MODEL_REVISION=revision(spec),
            MODELSERVE_MODEL_COLOR=color,
            MODELSERVE_MAX_BATCH_SIZE="1",  # one count per request: analysis sees exactly what was sent
            MODELSERVE_MODEL_SHA256="",
            MODELSERVE_ALLOW_UNVERIFIED_PICKLE="true",
            PYTHONPATH=str(models.package),
            **(extra_env or {}),
        )
        return start_server(workdir / f"{name}-{color}", env, wait=False)

    return Pair(name, v1, v2, serve("blue", blue_model, v1), serve("green", green_model, v2))


def wait_all_ready(pairs: Sequence[Pair]) -> None:
    try:
        for pair in pairs:
            pair.blue.wait_ready()
            pair.green.wait_ready()
    except BaseException:
        for pair in pairs:
            pair.stop()
        raise


def probe_addresses(namespace: str, pairs: Sequence[Pair]) -> str:
    return json.dumps({f"{namespace}/{p.name}": p.addresses for p in pairs})


def body(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


# -- client traffic ------------------------------------------------------------------------------------


class Traffic:
    """Clients of both colours: `rate` requests a second to each URL, rows from `rows_for(url)`."""

    def __init__(self, name: str, urls: Sequence[str], rate: float = 20.0) -> None:
        self.name, self.urls, self.rate = name, list(urls), rate
        self.rows_for: Callable[[str], list[float]] = lambda url: clean_rows(1)[0]
        self.codes: dict[str, list[int]] = {url: [] for url in self.urls}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                for url in self.urls:
                    try:
                        response = client.post(
                            f"{url}/v2/models/{self.name}/infer", json=v2_body(self.rows_for(url))
                        )
                        self.codes[url].append(response.status_code)
                    except httpx.HTTPError:
                        self.codes[url].append(0)
                self._stop.wait(max(0.0, 1.0 / self.rate - (time.monotonic() - started)))


# -- what the stable Service routes to -------------------------------------------------------------------


@dataclass
class Sample:
    at: float
    phase: str | None
    colors: frozenset[str]
    problems: list[str] = field(default_factory=list)
    active_revision: str | None = None  # status.activeRevision when sampled


class EndpointWatcher:
    """Samples the stable Service's EndpointSlices and the pods behind them, in a thread.

    Each sample records the colours of the endpoints and any problem: no ready endpoint at all, an endpoint
    not marked ready, or an endpoint whose pod is not Ready (or not found)."""

    def __init__(self, cluster, namespace: str, name: str, interval: float = 0.3) -> None:
        self.cluster, self.namespace, self.name, self.interval = cluster, namespace, name, interval
        self.samples: list[Sample] = []
        self._gone_since: dict[str, float] = {}  # pod name -> when a ready endpoint was first seen without it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> EndpointWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _get(self, *args: str) -> dict:
        done = self.cluster.kubectl("get", *args, "-n", self.namespace, "-o", "json", check=False)
        return json.loads(done.stdout) if done.returncode == 0 else {"items": []}

    def sample(self) -> Sample:
        slices = self._get("endpointslices", "-l", f"kubernetes.io/service-name={self.name}")["items"]
        pods = {
            p["metadata"]["name"]: p
            for p in self._get("pods", "-l", f"modeldeploy.io/name={self.name}")["items"]
        }
        md = get_md(self.cluster, self.namespace, self.name) or {}
        return self.sample_from(slices, pods, md)

    def sample_from(self, slices: list[dict], pods: dict[str, dict], md: dict) -> Sample:
        """A sample from this Service's EndpointSlices, its pods by name and its ModelDeployment."""
        phase = ((md.get("status") or {}).get("rollout") or {}).get("phase")
        active = (md.get("status") or {}).get("activeRevision")
        colors: set[str] = set()
        problems: list[str] = []
        for endpoint in (e for s in slices for e in s.get("endpoints") or []):
            pod_name = (endpoint.get("targetRef") or {}).get("name", "?")
            pod = pods.get(pod_name)
            if not (endpoint.get("conditions") or {}).get("ready"):
                continue  # published but not routed to (ready=false): kube-proxy sends nothing there
            if pod is None:
                gone_for = time.monotonic() - self._gone_since.setdefault(pod_name, time.monotonic())
                if gone_for > DELETED_POD_SERVES_SECONDS:
                    problems.append(f"ready endpoint for a pod gone {gone_for:.1f} s: {pod_name}")
                continue
            ready = any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (pod.get("status") or {}).get("conditions") or []
            )
            color = pod["metadata"]["labels"].get("modeldeploy.io/color", "?")
            if not ready:
                problems.append(f"ready endpoint for unready {color} pod {pod_name}")
            colors.add(color)
        if not colors:
            problems.append("no ready endpoint")
        return Sample(time.monotonic(), phase, frozenset(colors), problems, active)

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = self.sample()
            if sample.problems:  # two reads (slices, then pods) race with pod churn: confirm once
                time.sleep(0.2)
                sample = self.sample()
            self.samples.append(sample)
            self._stop.wait(self.interval)

    def problems(self) -> list[tuple[str | None, list[str]]]:
        return [(s.phase, s.problems) for s in self.samples if s.problems]

    def color_sequence(self) -> list[frozenset[str]]:
        """Distinct consecutive colour sets, in order (e.g. [{blue}, {blue, green}, {green}])."""
        seq: list[frozenset[str]] = []
        for sample in self.samples:
            if sample.colors and (not seq or seq[-1] != sample.colors):
                seq.append(sample.colors)
        return seq

    def colors_in(self, phase: str) -> set[frozenset[str]]:
        return {s.colors for s in self.samples if s.phase == phase and s.colors}

    def active_revisions(self) -> list[str | None]:
        """Distinct consecutive status.activeRevision values, in order (None: status had none)."""
        seq: list[str | None] = []
        for sample in self.samples:
            if not seq or seq[-1] != sample.active_revision:
                seq.append(sample.active_revision)
        return seq


def _label(obj: dict, key: str) -> str | None:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(key)


class NamespaceWatcher:
    """EndpointWatchers for many ModelDeployments of one namespace, fed by one read of the whole namespace
    per tick (three kubectl calls in all instead of three per name): for a suite watching many rollouts."""

    def __init__(self, cluster, namespace: str, names: Sequence[str], interval: float = 0.5) -> None:
        self.cluster, self.namespace, self.interval = cluster, namespace, interval
        self.watchers = {name: EndpointWatcher(cluster, namespace, name) for name in names}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> NamespaceWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _items(self, kind: str) -> list[dict]:
        done = self.cluster.kubectl("get", kind, "-n", self.namespace, "-o", "json", check=False)
        return json.loads(done.stdout)["items"] if done.returncode == 0 else []

    def sample(self) -> dict[str, Sample]:
        slices, pods, mds = (self._items(k) for k in ("endpointslices", "pods", "modeldeployments"))
        out = {}
        for name, watcher in self.watchers.items():
            own_slices = [s for s in slices if _label(s, "kubernetes.io/service-name") == name]
            own_pods = {p["metadata"]["name"]: p for p in pods if _label(p, "modeldeploy.io/name") == name}
            md = next((m for m in mds if m["metadata"]["name"] == name), {})
            out[name] = watcher.sample_from(own_slices, own_pods, md)
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            samples = self.sample()
            if any(s.problems for s in samples.values()):  # reads race with pod churn: confirm once
                time.sleep(0.2)
                again = self.sample()
                samples = {n: again[n] if s.problems else s for n, s in samples.items()}
            for name, sample in samples.items():
                self.watchers[name].samples.append(sample)
            self._stop.wait(self.interval)


# -- reading and driving a rollout --------------------------------------------------------------------


def rollout_of(md: dict | None) -> dict:
    return ((md or {}).get("status") or {}).get("rollout") or {}


def wait_rollout(
    cluster, namespace: str, name: str, predicate: Callable[[dict], bool], timeout: float = 90, what: str = ""
) -> dict:
    """Waits until predicate(ModelDeployment) holds; returns the ModelDeployment."""

    last: dict = {}

    def check() -> dict | None:
        md = last["md"] = get_md(cluster, namespace, name)
        return md if md and predicate(md) else None

    try:
        return wait_for(check, timeout=timeout, interval=0.3, what=what or f"{namespace}/{name}")
    except WaitTimeout:
        pytest.fail(f"{what or name} not met within {timeout}s; last status: {status_digest(last.get('md'))}")


def status_digest(md: dict | None) -> str:
    """The phase, rollout step and conditions of a ModelDeployment, short enough for a failure message."""
    status = (md or {}).get("status") or {}
    rollout = status.get("rollout") or {}
    conditions = [
        f"{c.get('type')}={c.get('status')}/{c.get('reason')}: {(c.get('message') or '')[:120]}"
        for c in status.get("conditions") or []
    ]
    return (
        f"phase={status.get('phase')} rollout={rollout.get('phase')} step={rollout.get('step')} "
        f"traffic={status.get('traffic')} conditions={conditions}"
    )


def stable_color(cluster, namespace: str, name: str) -> str | None:
    """The colour the stable Service selects (None: both colours, or no Service)."""
    done = cluster.kubectl("get", "service", name, "-n", namespace, "-o", "json", check=False)
    spec = json.loads(done.stdout).get("spec") or {} if done.returncode == 0 else {}
    return (spec.get("selector") or {}).get("modeldeploy.io/color")


def wait_traffic_back(watcher: EndpointWatcher, cluster, namespace: str, name: str, color: str) -> None:
    """After an abort: a pass writes status and ends, the Services move in the next pass. Waits until the
    stable Service selects `color` again and two EndpointSlice samples taken after that show `color` alone."""
    wait_for(
        lambda: stable_color(cluster, namespace, name) == color, timeout=20, what=f"stable Service on {color}"
    )
    moved = time.monotonic()
    wait_for(
        lambda: sum(s.at > moved for s in watcher.samples) >= 2 and watcher.samples[-1].colors == {color},
        timeout=20,
        what=f"traffic back on {color}",
    )


def in_phase(*phases: str) -> Callable[[dict], bool]:
    return lambda md: rollout_of(md).get("phase") in phases


def serving(revision_: str) -> Callable[[dict], bool]:
    """Steady on `revision_`: active, rollout Completed."""
    return lambda md: (
        (md.get("status") or {}).get("activeRevision") == revision_
        and rollout_of(md).get("phase") in ("Completed", "PostPromotion")
    )


def plugin(cluster, verb: str, namespace: str, name: str, *extra: str) -> str:
    """`kubectl modeldeploy VERB NAME -n NS` through the shipped plugin."""
    done = subprocess.run(
        ["bash", str(PLUGIN), verb, name, "-n", namespace, *extra],
        capture_output=True,
        text=True,
        env={**cluster.env, "KUBECONFIG": cluster.kubeconfig},
        timeout=60,
    )
    assert done.returncode == 0, f"kubectl modeldeploy {verb} failed: {done.stderr}"
    return done.stdout


def events(cluster, namespace: str, name: str) -> list[dict]:
    found = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}", "-o", "json"
    )
    return json.loads(found.stdout)["items"]


def event_reasons(cluster, namespace: str, name: str) -> list[str]:
    return [e.get("reason") for e in events(cluster, namespace, name)]


def start_operator_env(namespace: str, pairs: Sequence[Pair]) -> dict[str, str]:
    return {"MODELDEPLOY_PROBE_ADDRESSES": probe_addresses(namespace, pairs)}


@contextmanager
def serving_pairs(pairs: dict[str, Pair]) -> Iterator[dict[str, Pair]]:
    """Every pair's servers Ready for the block, all stopped after it (started pairs, not yet waited for)."""
    try:
        wait_all_ready(list(pairs.values()))
        yield pairs
    finally:
        for pair in pairs.values():
            pair.stop()


def operator_identity(cluster, namespace: str, workdir: Path) -> OperatorIdentity:
    """What any operator start in `namespace` needs: the CRDs, its peering, its own ServiceAccount."""
    install_crds(cluster)
    create_peering(cluster, namespace)
    return create_operator_identity(cluster, namespace, workdir)


@contextmanager
def rollout_operator(
    cluster, namespace: str, workdir: Path, pairs: dict[str, Pair], extra_env: dict[str, str] | None = None
) -> Iterator[OperatorProcess]:
    """The operator for the block, probing the pairs' servers where it would probe the colours' pods."""
    identity = operator_identity(cluster, namespace, workdir)
    env = {**start_operator_env(namespace, list(pairs.values())), **(extra_env or {})}
    operator = OperatorProcess(identity, namespace, workdir / "operator.log", extra_env=env).start()
    try:
        yield operator
    finally:
        operator.stop()


def iter_pairs(pairs: dict[str, Pair]) -> Iterator[Pair]:
    return iter(pairs.values())


@dataclass
class RouteSample:
    phase: str | None
    weights: dict[str, int]  # colour -> weight of the default rule
    header_to: str | None  # colour the header-match rule sends to, if any


class RouteWatcher:
    """Samples the ModelDeployment's HTTPRoute (Gateway API mode) in a thread."""

    def __init__(self, cluster, namespace: str, name: str, interval: float = 0.3) -> None:
        self.cluster, self.namespace, self.name, self.interval = cluster, namespace, name, interval
        self.samples: list[RouteSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RouteWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def sample(self) -> RouteSample | None:
        got = self.cluster.kubectl(
            "get", "httproute", self.name, "-n", self.namespace, "-o", "json", check=False
        )
        if got.returncode != 0:
            return None
        rules = json.loads(got.stdout)["spec"]["rules"]
        phase = rollout_of(get_md(self.cluster, self.namespace, self.name)).get("phase")
        color_of = {f"{self.name}-blue": "blue", f"{self.name}-green": "green"}

        # The API server defaults a rule without matches to a PathPrefix "/" match: tell them by headers.
        def by_header(rule: dict) -> bool:
            return any(m.get("headers") for m in rule.get("matches") or [])

        default = next(r for r in rules if not by_header(r))
        weights = {color_of[b["name"]]: b.get("weight", 1) for b in default["backendRefs"]}
        header = next((r for r in rules if by_header(r)), None)
        header_to = color_of[header["backendRefs"][0]["name"]] if header else None
        return RouteSample(phase, weights, header_to)

    def _run(self) -> None:
        while not self._stop.is_set():
            found = self.sample()
            if found is not None:
                self.samples.append(found)
            self._stop.wait(self.interval)

    def weight_sequence(self) -> list[tuple[int, int]]:
        """Distinct consecutive (blue, green) weights, in order."""
        seq: list[tuple[int, int]] = []
        for s in self.samples:
            pair = (s.weights.get("blue", 0), s.weights.get("green", 0))
            if not seq or seq[-1] != pair:
                seq.append(pair)
        return seq


# -- candidate-only pod faults ---------------------------------------------------------------------------

# Pods of these images never become Ready, not even for a moment: faults that reach only the candidate.
BROKEN_IMAGES = {
    fault: f"registry.example.internal/modelserve:e2e-{fault}" for fault in ("crashloop", "imagepull")
}
_IMAGE_KEY = '.spec.containers.[] | select( .name == "modelserve" ) | .image'


def image_fault_stage(fault: str) -> dict:
    """harness.operator's kwok Stage for `fault` (crashloop, imagepull), for pods of BROKEN_IMAGES[fault],
    taken from the pod's first status: such a pod is never Ready, not even for a moment."""
    stage = copy.deepcopy(
        next(s for s in FAULT_STAGES if s["metadata"]["name"] == f"modeldeploy-e2e-{fault}")
    )
    stage["metadata"]["name"] += "-by-image"
    stage["spec"]["selector"]["matchExpressions"] = [
        {"key": _IMAGE_KEY, "operator": "In", "values": [BROKEN_IMAGES[fault]]},
        {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
        {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
    ]
    return stage


def install_image_fault_stages(cluster) -> None:
    kubectl_apply(cluster, [image_fault_stage(fault) for fault in BROKEN_IMAGES])
