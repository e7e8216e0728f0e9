"""Late labels: signed prediction ids, the feedback endpoint's rules, live figures across pods and workers."""

from __future__ import annotations

import base64
import time

import httpx
import numpy as np
import orjson
import pytest

from harness.serving import iris_env, start_server
from modelserve.feedback import PredictionSigner

from .test_observability import LABELS, samples, value

V1 = "/v1/models/iris:predict"
FEEDBACK = "/v2/models/iris/feedback"
SIGNING_KEY = b"test-signing-key-of-this-deployment"
KEYS = {"alice": "alice-key-0123456789", "bob": "bob-key-0123456789"}
ROW = [5.1, 3.5, 1.4, 0.2]  # iris class 0


def alice(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"X-API-Key": KEYS["alice"], **(extra or {})}


@pytest.fixture(scope="module")
def deployment_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("feedback-files")
    (root / "signing-key").write_bytes(SIGNING_KEY)
    (root / "api-keys").write_text("\n".join(KEYS.values()) + "\n")
    return root


def pod_env(iris_joblib, files, **extra: str) -> dict[str, str]:
    return iris_env(
        iris_joblib,
        MODELSERVE_FEEDBACK_KEY_FILE=str(files / "signing-key"),
        MODELSERVE_API_KEYS_FILE=str(files / "api-keys"),
        **extra,
    )


@pytest.fixture(scope="module")
def pods(tmp_path_factory, iris_joblib, deployment_files):
    """Two pods of one deployment (one signing key), two workers each."""
    started = [
        start_server(
            tmp_path_factory.mktemp(f"pod-{i}"),
            pod_env(iris_joblib, deployment_files, MODELSERVE_WORKERS="2"),
        )
        for i in range(2)
    ]
    yield started
    for server in started:
        server.stop()


def predict(server, rows, headers=None) -> httpx.Response:
    resp = server.client.post(V1, json={"instances": rows}, headers=alice(headers))
    assert resp.status_code == 200, resp.text
    return resp


def test_every_answer_carries_a_server_signed_id_a_client_cannot_set_or_guess(pods):
    sent = {"X-Prediction-ID": "mp1.chosen.byclient", "X-Request-ID": "client-req-1"}
    ids = [predict(pods[0], [ROW], sent).headers["x-prediction-id"] for _ in range(3)]
    assert all(i.startswith("mp1.") and i != sent["X-Prediction-ID"] for i in ids)
    assert len(set(ids)) == 3, "identical requests get distinct ids"
    # What an id says can be read but not changed: a forged prediction no longer matches its signature.
    prefix, payload, mac = ids[0].split(".")
    decoded = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert decoded[0] == "7c9f1e2" and decoded[-1] == [0]
    decoded[-1] = [2]
    forged = f"{prefix}.{base64.urlsafe_b64encode(orjson.dumps(decoded)).rstrip(b'=').decode()}.{mac}"
    resp = pods[0].client.post(FEEDBACK, json={"id": forged, "label": 2}, headers=alice())
    assert resp.status_code == 400 and "unknown prediction id" in resp.json()["error"]
    # Signed by another key (another deployment): refused the same way.
    other = PredictionSigner(b"another-deployment", "7c9f1e2", 60, 256).mint(np.array([0]), "key-x")
    resp = pods[0].client.post(FEEDBACK, json={"id": other, "label": 0}, headers=alice())
    assert resp.status_code == 400 and "unknown prediction id" in resp.json()["error"]


def test_an_id_of_a_wide_output_carries_each_rows_first_value():
    signer = PredictionSigner(SIGNING_KEY, "7c9f1e2", 60, 256)
    scores = np.array([[0.1, 0.9], [0.7, 0.3], [0.5, 0.5]], dtype=np.float32)  # a strided first column
    token = signer.mint(scores, None)
    assert signer.verify(token, "labels[0]").predicted == pytest.approx([0.1, 0.7, 0.5])


def expired_id(key_id: str) -> str:
    signer = PredictionSigner(SIGNING_KEY, "7c9f1e2", 60, 256)
    return signer.mint(np.array([0]), key_id, now=time.time() - 3600)


def alice_key_id() -> str:
    import hashlib

    return "key-" + hashlib.sha256(KEYS["alice"].encode()).hexdigest()[:8]


def test_feedback_refusals_name_the_item_and_the_rule(pods):
    server = pods[0]
    one = predict(server, [ROW]).headers["x-prediction-id"]
    two = predict(server, [ROW, ROW]).headers["x-prediction-id"]
    seen = predict(server, [ROW]).headers["x-prediction-id"]
    assert server.client.post(FEEDBACK, json={"id": seen, "label": 0}, headers=alice()).status_code == 200
    table = [
        # (body, headers, status, fragment of the error)
        ({"id": one, "label": 7}, alice(), 400, "feedback[0].label[0]: unknown class '7'"),
        ({"id": one, "label": "setosa"}, alice(), 400, "unknown class 'setosa'"),
        ({"id": one, "label": [0]}, alice(), 400, "must be a class name or number, not list"),
        ({"id": one, "label": None}, alice(), 400, "not NoneType"),
        ({"id": one, "label": True}, alice(), 400, "not bool"),
        (
            [{"id": one, "label": 0}, {"id": seen, "label": 0}],
            alice(),
            400,
            "feedback[1]: row 0 of this prediction id already has a label",
        ),
        (
            [{"id": two, "row": 1, "label": 0}, {"id": two, "row": 1, "label": 1}],
            alice(),
            400,
            "feedback[1]: row 1",
        ),
        ({"id": two, "row": 2, "label": 0}, alice(), 400, "feedback[0].row: must be an integer from 0 to 1"),
        ({"id": two, "labels": [0]}, alice(), 400, "expected a list of 2 labels"),
        ({"id": one}, alice(), 400, "expected 'label' (one row) or 'labels' (one per row)"),
        ({"id": "mp1.x.y", "label": 0}, alice(), 400, "feedback[0].id: unknown prediction id"),
        ({"id": 12345, "label": 0}, alice(), 400, "feedback[0].id: must be a prediction id"),
        ({"id": expired_id(alice_key_id()), "label": 0}, alice(), 400, "the prediction id has expired"),
        ({"id": one, "label": 0}, {"X-API-Key": KEYS["bob"]}, 403, "made with another API key"),
        ({"id": one, "label": 0}, {}, 401, "missing API key"),
        ([], alice(), 400, "non-empty list"),
    ]
    for body, headers, status, fragment in table:
        resp = server.client.post(FEEDBACK, json=body, headers=headers)
        assert (resp.status_code, fragment in resp.text) == (status, True), (body, resp.text)
    # Nothing of a refused request was taken: `one` and both rows of `two` still take their labels.
    resp = server.client.post(
        "/feedback",
        json={"feedback": [{"id": one, "label": 0}, {"id": two, "labels": [0, "1"]}]},
        headers=alice(),
    )
    assert resp.status_code == 200 and resp.json() == {"scored": 3}


def test_labels_for_ids_made_by_another_pod_are_scored_and_summed_over_workers(pods):
    made, scorer = pods
    ids = [predict(made, [ROW]).headers["x-prediction-id"] for _ in range(20)]

    async def send_all() -> list[int]:
        import asyncio

        limits = httpx.Limits(max_keepalive_connections=0)  # a new connection each time: both workers score
        async with httpx.AsyncClient(base_url=scorer.url, limits=limits, timeout=30) as client:
            answers = await asyncio.gather(
                *(
                    client.post(FEEDBACK, json={"id": i, "label": n % 2}, headers=alice())
                    for n, i in enumerate(ids)
                )
            )
        return [a.status_code for a in answers]

    import asyncio

    assert asyncio.run(send_all()) == [200] * 20
    found = samples(scorer)
    mine = {**LABELS, "prediction_revision": "7c9f1e2"}
    # Half the labels say class 1, the model said 0 every time (plus the table test's labels, all class 0).
    rows = value(found, "modelserve_feedback_window_rows", **mine)
    correct = value(found, "modelserve_feedback_window_correct", **mine)
    assert rows >= 20 and value(found, "modelserve_feedback_accuracy", **mine) == pytest.approx(
        correct / rows
    )
    assert value(found, "modelserve_feedback_accuracy", **mine) < 0.75
    assert 0 < value(found, "modelserve_feedback_f1", **mine) < 1
    assert value(found, "modelserve_feedback_labels_total", result="scored") >= 20


def test_regression_labels_give_rmse_and_mae(tmp_path, regression_joblib):
    server = start_server(tmp_path, iris_env(regression_joblib))
    try:
        resp = server.client.post(V1, json={"instances": [[5.1, 3.5, 1.4], [6.7, 3.0, 5.2]]})
        predicted = resp.json()["predictions"]
        token = resp.headers["x-prediction-id"]
        labels = [predicted[0] + 0.3, predicted[1] - 0.1]
        assert server.client.post(FEEDBACK, json={"id": token, "labels": labels}).status_code == 200
        bad = server.client.post(FEEDBACK, json={"id": token, "labels": ["a", 1.0]})
        assert bad.status_code == 400 and "a regression label must be a finite number" in bad.text
        found = samples(server)
        assert value(found, "modelserve_feedback_rmse") == pytest.approx(np.sqrt((0.09 + 0.01) / 2))
        assert value(found, "modelserve_feedback_mae") == pytest.approx(0.2)
    finally:
        server.stop()


def test_feedback_shares_the_callers_rate_limit(tmp_path, iris_joblib, deployment_files):
    env = pod_env(
        iris_joblib, deployment_files, MODELSERVE_RATE_LIMIT_RPS="0.5", MODELSERVE_RATE_LIMIT_BURST="2"
    )
    server = start_server(tmp_path, env)
    try:
        token = predict(server, [ROW]).headers["x-prediction-id"]
        assert (
            server.client.post(FEEDBACK, json={"id": token, "label": 0}, headers=alice()).status_code == 200
        )
        resp = server.client.post(FEEDBACK, json={"id": token, "label": 0}, headers=alice())
        assert resp.status_code == 429 and resp.headers["retry-after"]
    finally:
        server.stop()
