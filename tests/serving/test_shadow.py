"""Shadow copies between two real modelserve processes: the live colour answers, copies a share of what it
answered to the candidate afterwards, and counts agreement; the live answer never waits for the copy."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from harness.poll import wait_for
from harness.serving import Server, iris_env, start_server

FEATURES = ["feature_0", "feature_1", "feature_2", "feature_3"]
TOKEN = "test-shadow-token-0123456789"


def counts(server: Server, name: str, shadow: str | None = None) -> dict[str, float]:
    """outcome -> value of a modelserve_shadow_* counter (summed over series), or route/status -> value."""
    found: dict[str, float] = {}
    text = server.client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            if shadow is not None and sample.labels.get("shadow") != shadow:
                continue
            if sample.labels.get("route", "/predict") != "/predict":
                continue
            key = sample.labels.get("outcome") or sample.labels.get("status_code") or "all"
            found[key] = found.get(key, 0.0) + sample.value
    return found


def settled(read, interval: float = 1.0, timeout: float = 30.0):
    """The value of `read()` once two reads `interval` apart agree."""
    deadline = time.monotonic() + timeout
    last = read()
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = read()
        if now == last:
            return now
        last = now
    raise AssertionError("the counts kept changing")


def write_config(path: Path, url: str, percent: float = 100, shadow_id: str = "green-abc", **extra) -> None:
    doc = {"enabled": True, "id": shadow_id, "url": url, "percent": percent, "token": TOKEN, **extra}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)  # one rename, as kubelet swaps the ConfigMap's ..data link


@pytest.fixture(scope="module")
def iris_xy(iris_data) -> tuple[np.ndarray, np.ndarray]:
    return iris_data


@pytest.fixture(scope="module")
def shuffled_joblib(models_dir: Path, iris_xy) -> Path:
    X, y = iris_xy
    labels = np.random.default_rng(7).permutation(y)
    path = models_dir / "iris-shuffled.joblib"
    joblib.dump(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, labels), path)
    return path


@pytest.fixture(scope="module")
def retrained_joblib(models_dir: Path, iris_xy) -> Path:
    X, y = iris_xy
    path = models_dir / "iris-retrained.joblib"
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=0.8)).fit(X, y)
    joblib.dump(model, path)
    return path


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "api-keys"
    path.write_text("client-key-1\n")
    return path


@pytest.fixture(scope="module")
def shadow_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shadow") / "shadow.json"


def _candidate(tmp: Path, model: Path, shadow_file: Path, keys_file: Path) -> Iterator[Server]:
    env = iris_env(
        model,
        MODELSERVE_MODEL_COLOR="green",
        MODELSERVE_MODEL_REVISION="cand0001",
        MODELSERVE_SHADOW_CONFIG_FILE=str(shadow_file),
        MODELSERVE_API_KEYS_FILE=str(keys_file),
        # One request a second: the copies must not be refused by it (the client was charged on blue).
        MODELSERVE_RATE_LIMIT_RPS="1",
        MODELSERVE_RATE_LIMIT_BURST="1",
    )
    server = start_server(tmp, env)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shuffled_candidate(tmp_path_factory, shuffled_joblib, shadow_file, keys_file) -> Iterator[Server]:
    yield from _candidate(tmp_path_factory.mktemp("green-shuffled"), shuffled_joblib, shadow_file, keys_file)


@pytest.fixture(scope="module")
def retrained_candidate(tmp_path_factory, retrained_joblib, shadow_file, keys_file) -> Iterator[Server]:
    yield from _candidate(
        tmp_path_factory.mktemp("green-retrained"), retrained_joblib, shadow_file, keys_file
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory, iris_joblib, shadow_file, keys_file) -> Iterator[Server]:
    env = iris_env(
        iris_joblib,
        MODELSERVE_SHADOW_CONFIG_FILE=str(shadow_file),
        MODELSERVE_API_KEYS_FILE=str(keys_file),
    )
    server = start_server(tmp_path_factory.mktemp("blue"), env)
    yield server
    server.stop()


class BlackHole:
    """A TCP listener that accepts connections and never answers: a candidate that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.accepted: list[socket.socket] = []
        self.received = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def send_rows(live: Server, X: np.ndarray, headers: dict[str, str]) -> list[str]:
    """Each row as its own /predict request; the X-Model-Color of every answer."""
    colors = []
    for row in X:
        resp = live.client.post(
            "/predict", json={"records": [dict(zip(FEATURES, row.tolist(), strict=True))]}, headers=headers
        )
        assert resp.status_code == 200, resp.text
        colors.append(resp.headers["x-model-color"])
    return colors


AUTH = {"Authorization": "Bearer client-key-1"}


def agreement(live: Server, shadow_id: str, expected_rows: int) -> tuple[float, dict[str, float]]:
    wait_for(
        lambda: sum(counts(live, "modelserve_shadow_rows", shadow_id).values()) >= expected_rows,
        interval=0.1,
        what=f"{expected_rows} rows compared",
    )
    rows = counts(live, "modelserve_shadow_rows", shadow_id)
    return rows.get("agreed", 0.0) / sum(rows.values()), rows


def test_a_candidate_trained_on_shuffled_labels_disagrees_while_every_answer_comes_from_live(
    live, shuffled_candidate, shadow_file, iris_xy
):
    X, _ = iris_xy
    write_config(shadow_file, shuffled_candidate.url, shadow_id="green-shuffled")
    wait_for(lambda: _copied_once(live, X[:1], "green-shuffled"), what="the new shadow config in use")
    colors = send_rows(live, X, AUTH)
    share, rows = agreement(live, "green-shuffled", len(X))
    assert set(colors) == {"blue"}
    assert share < 0.6, rows
    copies = counts(live, "modelserve_shadow_copies", "green-shuffled")
    assert copies.get("error", 0) == 0 and copies.get("dropped", 0) == 0, copies


def test_a_retrained_candidate_agrees_on_at_least_97_percent(live, retrained_candidate, shadow_file, iris_xy):
    X, _ = iris_xy
    write_config(shadow_file, retrained_candidate.url, shadow_id="green-retrained")
    wait_for(lambda: _copied_once(live, X[:1], "green-retrained"), what="the new shadow config in use")
    send_rows(live, X, AUTH)
    share, rows = agreement(live, "green-retrained", len(X))
    assert share >= 0.97, rows


def test_copies_are_left_out_of_the_candidates_request_metrics_and_rate_limit(
    live, retrained_candidate, shadow_file, iris_xy
):
    X, _ = iris_xy
    write_config(shadow_file, retrained_candidate.url, shadow_id="green-marked")
    wait_for(lambda: _copied_once(live, X[:1], "green-marked"), what="the new shadow config in use")
    before = counts(retrained_candidate, "modelserve_requests")
    served_before = counts(retrained_candidate, "modelserve_shadow_served").get("all", 0)
    send_rows(live, X[:40], AUTH)
    wait_for(
        lambda: counts(live, "modelserve_shadow_copies", "green-marked").get("sent", 0) >= 41,
        interval=0.1,
        what="41 copies sent",
    )
    assert counts(retrained_candidate, "modelserve_requests") == before  # no 200s, and no 429s
    assert counts(retrained_candidate, "modelserve_shadow_served").get("all", 0) - served_before >= 40
    assert counts(live, "modelserve_shadow_copies", "green-marked").get("error", 0) == 0


def test_a_request_with_a_wrong_shadow_token_is_an_ordinary_request(retrained_candidate, iris_xy):
    X, _ = iris_xy
    before = counts(retrained_candidate, "modelserve_requests").get("200", 0)
    body = {"records": [dict(zip(FEATURES, X[0].tolist(), strict=True))]}
    resp = retrained_candidate.client.post(
        "/predict", json=body, headers={**AUTH, "X-Modelserve-Shadow": "guessed"}
    )
    assert resp.status_code == 200
    assert counts(retrained_candidate, "modelserve_requests").get("200", 0) == before + 1


def test_a_hanging_candidate_never_delays_the_live_answer_and_overflow_is_dropped(live, shadow_file, iris_xy):
    X, _ = iris_xy
    hole = BlackHole()
    try:
        write_config(shadow_file, hole.url, shadow_id="green-hanging", timeoutSeconds=60)
        wait_for(
            lambda: _copied_once(live, X[:1], "green-hanging", via_hole=hole),
            what="the new shadow config in use",
        )
        colors = send_rows(live, np.tile(X, (1, 1))[:120], AUTH)
        # Every answer came back while no copy had been answered: the answers never waited for one.
        copies = counts(live, "modelserve_shadow_copies", "green-hanging")
        assert set(colors) == {"blue"}
        assert copies.get("sent", 0) == 0 and copies.get("error", 0) == 0, copies
        assert copies.get("dropped", 0) >= 120 - 64 - 4, copies  # queue of 64, 4 senders stuck
    finally:
        hole.close()


def test_removing_the_config_stops_the_copies_without_a_restart(live, shadow_file, iris_xy):
    X, _ = iris_xy
    pid = live.process.pid
    shadow_file.write_text(json.dumps({"enabled": False}))
    time.sleep(1.5)  # one re-read interval of the live server
    before = settled(lambda: counts(live, "modelserve_shadow_copies"))  # copies still queued are finished
    send_rows(live, X[:20], AUTH)
    time.sleep(0.5)
    assert counts(live, "modelserve_shadow_copies") == before
    assert live.process.pid == pid and live.process.poll() is None


def _copied_once(live: Server, X: np.ndarray, shadow_id: str, via_hole: BlackHole | None = None) -> bool:
    """One request answered, and the new config is in use (a copy with its id was counted or accepted)."""
    send_rows(live, X, AUTH)
    if via_hole is not None:
        time.sleep(0.2)
        return bool(via_hole.accepted)
    time.sleep(0.2)
    return sum(counts(live, "modelserve_shadow_copies", shadow_id).values()) > 0


def test_copies_of_a_phase_just_ended_are_still_recognised_for_a_while(tmp_path):
    """kubelet updates each pod's copy of the ConfigMap at its own time: the candidate may see the phase end
    before the active colour stops copying."""
    from prometheus_client import CollectorRegistry

    from modelserve.shadow import ShadowCopier

    path = tmp_path / "shadow.json"
    write_config(path, "http://127.0.0.1:9", shadow_id="p1")
    copier = ShadowCopier(str(path), True, {"model": "iris"}, CollectorRegistry())
    marked = {b"x-modelserve-shadow": TOKEN.encode()}
    assert copier.is_copy(marked) and not copier.is_copy({b"x-modelserve-shadow": b"other"})
    path.write_text(json.dumps({"enabled": False}))
    copier.reload(force=True)
    assert copier.config is None
    assert copier.is_copy(marked)
    assert not copier.is_copy({})
