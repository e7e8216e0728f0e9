"""The shadow phase end to end on the real control plane: the operator switches the active colour's copy
on through the ModelDeployment's shadow ConfigMap, reads the agreement counts from the active pods'
/metrics, and stops a disagreeing candidate before any user sees it, or lets an agreeing one go on.

kwok pods have no kubelet: a projector thread plays its part for the shadow ConfigMap (it writes the
ConfigMap's file where the stand-in modelserve processes read it, as kubelet refreshes a mounted ConfigMap)
and resolves the candidate colour's Service address to that colour's stand-in (as DNS and kube-proxy would).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from harness.operator import (
    get_obj,
    kubectl_apply,
)
from harness.probes import clean_rows
from harness.rollout import (
    BLUE,
    EndpointWatcher,
    Pair,
    body,
    event_reasons,
    in_phase,
    revision,
    rollout_of,
    rollout_operator,
    rollout_spec,
    serving,
    serving_pairs,
    train_models,
    v2_body,
    wait_rollout,
)
from harness.serving import Server, iris_env, start_server

pytestmark = pytest.mark.e2e

SHADOW = {"percent": 100, "minRequests": 60, "minAgreement": 0.97, "maxSeconds": 300}
ROLLOUT = {
    "steps": [{"weight": 50, "pauseSeconds": 3}],
    "shadow": SHADOW,
    "scaleDownDelaySeconds": 5,
    "progressDeadlineSeconds": 120,
}


class Projector:
    """Kubelet's part for the shadow ConfigMap of one ModelDeployment (see the module docstring)."""

    def __init__(self, cluster, namespace: str, name: str, path: Path, services: dict[str, str]) -> None:
        self.cluster, self.namespace, self.name, self.path = cluster, namespace, name, path
        self.services = services  # in-cluster Service URL -> the stand-in behind it
        self.seen: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Projector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        last = None
        while not self._stop.wait(0.5):
            config = get_obj(self.cluster, "configmap", self.namespace, f"{self.name}-shadow")
            text = ((config or {}).get("data") or {}).get("shadow.json")
            if text is None or text == last:
                continue
            last = text
            doc = json.loads(text)
            self.seen.append(doc)
            if doc.get("enabled"):
                doc["url"] = self.services[doc["url"]]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc))
            tmp.replace(self.path)


class Clients:
    """Clients of the stable Service (its only endpoints are the active colour's: asserted separately)."""

    def __init__(self, name: str, url: str, rate: float = 40.0) -> None:
        self.name, self.url, self.rate = name, url, rate
        self.colors: list[str | None] = []
        self.codes: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Clients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        rows = clean_rows(50)
        with httpx.Client(timeout=5.0) as client:
            i = 0
            while not self._stop.is_set():
                response = client.post(f"{self.url}/v2/models/{self.name}/infer", json=v2_body(rows[i % 50]))
                self.codes.append(response.status_code)
                self.colors.append(response.headers.get("x-model-color"))
                i += 1
                self._stop.wait(1.0 / self.rate)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("shadow-models")
    trained = train_models(root)
    X, y = load_iris(return_X_y=True)
    retrained = root / "retrained.joblib"
    joblib.dump(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=0.8)).fit(X, y), retrained)
    return trained, retrained


def _stand_ins(workdir: Path, name: str, blue_model: Path, green_model: Path, package: Path) -> Pair:
    v1, v2 = rollout_spec("1", ROLLOUT), rollout_spec("2", ROLLOUT)
    config = workdir / f"{name}-shadow.json"

    def serve(color: str, model: Path, spec: dict) -> Server:
        env = iris_env(
            model,
            MODELSERVE_MODEL_NAME=name,
            MODELSERVE_MODEL_VERSION=spec["model"]["version"],
            MODELSERVE_MODEL_REVISION=revision(spec),
            MODELSERVE_MODEL_COLOR=color,
            MODELSERVE_MODEL_SHA256="",
            MODELSERVE_ALLOW_UNVERIFIED_PICKLE="true",
            MODELSERVE_SHADOW_CONFIG_FILE=str(config),  # both colours mount the same ConfigMap
            PYTHONPATH=str(package),
        )
        return start_server(workdir / f"{name}-{color}", env, wait=False)

    return Pair(name, v1, v2, serve("blue", blue_model, v1), serve("green", green_model, v2))


@pytest.fixture(scope="module")
def env(cluster, namespace, tmp_path_factory, models):
    trained, retrained = models
    workdir = tmp_path_factory.mktemp("shadow")
    pairs = {
        "shuffled": _stand_ins(workdir, "shuffled", trained.good, trained.bad, trained.package),
        "retrained": _stand_ins(workdir, "retrained", trained.good, retrained, trained.package),
    }
    with serving_pairs(pairs), rollout_operator(cluster, namespace, workdir, pairs):
        yield cluster, namespace, workdir, pairs


def _run_shadow(env, name: str, until, what: str):
    cluster, namespace, workdir, pairs = env
    pair = pairs[name]
    kubectl_apply(cluster, body(name, namespace, pair.v1))
    wait_rollout(cluster, namespace, name, serving(revision(pair.v1)), what=f"{name} v1 serving")
    services = {
        f"http://{name}-green.{namespace}.svc:80": pair.green.url,
        f"http://{name}-blue.{namespace}.svc:80": pair.blue.url,
    }
    projector = Projector(cluster, namespace, name, workdir / f"{name}-shadow.json", services)
    with (
        projector,
        EndpointWatcher(cluster, namespace, name) as watcher,
        Clients(name, pair.blue.url) as clients,
    ):
        kubectl_apply(cluster, body(name, namespace, pair.v2))
        md = wait_rollout(cluster, namespace, name, until, timeout=180, what=what)
        time.sleep(1.5)  # the ConfigMap switched off reaches the projector
    return md, projector, watcher, clients


def test_a_candidate_trained_on_shuffled_labels_is_stopped_in_the_shadow_phase(env):
    md, projector, watcher, clients = _run_shadow(env, "shuffled", in_phase("Aborted"), "shadow abort")
    state = rollout_of(md)
    assert "shadow disagreement" in state["abortReason"], state
    assert state["shadow"]["compared"] >= SHADOW["minRequests"]
    assert state["shadow"]["agreement"] < SHADOW["minAgreement"]
    assert "ShadowDisagreement" in event_reasons(env[0], env[1], "shuffled")
    # Every client answer came from the live colour; the stable Service never selected the candidate.
    assert clients.codes and set(clients.codes) == {200}
    assert set(clients.colors) == {"blue"}
    assert watcher.colors_in("Shadowing") <= {BLUE}
    assert [doc["enabled"] for doc in projector.seen][-2:] == [True, False]


def test_a_retrained_candidate_that_agrees_goes_on_to_its_steps(env):
    v2 = revision(env[3]["retrained"].v2)

    def past_shadow(md: dict) -> bool:  # of v2's rollout: v1's own is Completed before v2 is seen
        state = rollout_of(md)
        return state.get("revision") == v2 and state.get("phase") in (
            "Stepping",
            "Promoting",
            "PostPromotion",
            "Completed",
        )

    md, projector, _, clients = _run_shadow(env, "retrained", past_shadow, "shadow passed")
    state = rollout_of(md)
    assert state["shadow"]["agreement"] >= 0.97, state["shadow"]
    assert state["shadow"]["compared"] >= SHADOW["minRequests"]
    assert "CheckPassed" in event_reasons(env[0], env[1], "retrained")
    assert set(clients.codes) == {200}
    assert projector.seen[-1]["enabled"] is False
