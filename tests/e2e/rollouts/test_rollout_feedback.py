"""The live model judged on late labels (spec.monitoring.evaluation.source: feedback), end to end.

kwok makes pods Ready; real modelserve processes on loopback are the colours' pods, both mounting the same
signing key (as both colours mount the marked Secret security.signingKeySecretRef names). Each scenario
promotes v2 while v1 stays warm, sends predictions to the live colour, sends labels back for their ids, and
reads what the operator made of the figures: status.evaluation, Events, conditions, its /metrics, and --
when the labels say the model is wrong half the time -- the rollback to the warm colour.
"""

from __future__ import annotations

import httpx
import pytest
from sklearn.datasets import load_iris

from harness.operator import (
    condition,
    kubectl_apply,
)
from harness.rollout import (
    body,
    event_reasons,
    events,
    in_phase,
    revision,
    rollout_operator,
    rollout_spec,
    serving,
    serving_pairs,
    start_pair,
    train_models,
    v2_body,
    wait_rollout,
)

pytestmark = pytest.mark.e2e

THRESHOLD, MIN_LABELS, LABELS_SENT = 0.8, 20, 30
SECRET = "iris-signing"
# name -> share of labels that disagree with the prediction; v2 is the good model everywhere.
SCENARIOS = {"agree": 0.0, "wrong": 0.5}


def _spec(version: str) -> dict:
    spec = rollout_spec(version, {"scaleDownDelaySeconds": 300, "progressDeadlineSeconds": 120})
    spec["security"] = {"signingKeySecretRef": {"name": SECRET}}
    spec["monitoring"] = {
        "evaluation": {
            "source": "feedback",
            "metric": "accuracy",
            "threshold": THRESHOLD,
            "minLabels": MIN_LABELS,
            "intervalSeconds": 10,
            "rollbackOnFailure": True,
        }
    }
    return spec


def _signing_secret(cluster, namespace: str, key: bytes) -> None:
    cluster.kubectl(
        "create", "secret", "generic", SECRET, "-n", namespace, f"--from-literal=signing-key={key.decode()}"
    )
    cluster.kubectl("label", "secret", SECRET, "-n", namespace, "modeldeploy.io/usage=prediction-signing")


@pytest.fixture(scope="module")
def env(cluster, namespace, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("feedback")
    models = train_models(workdir / "models")
    key = b"e2e-signing-key-0123456789abcdef"
    (workdir / "signing-key").write_bytes(key)
    shared = {"MODELSERVE_FEEDBACK_KEY_FILE": str(workdir / "signing-key")}
    pairs = {
        name: start_pair(workdir, name, _spec("1"), _spec("2"), models.good, models.good, models, shared)
        for name in SCENARIOS
    }
    with serving_pairs(pairs):
        _signing_secret(cluster, namespace, key)
        with rollout_operator(cluster, namespace, workdir, pairs) as operator:
            for name, pair in pairs.items():
                kubectl_apply(cluster, body(name, namespace, pair.v1))
            for name, pair in pairs.items():
                wait_rollout(cluster, namespace, name, serving(revision(pair.v1)), what=f"{name} v1")
            for name, pair in pairs.items():
                kubectl_apply(cluster, body(name, namespace, pair.v2))
            for name in pairs:
                wait_rollout(cluster, namespace, name, in_phase("PostPromotion"), what=f"{name} promoted")
            yield cluster, namespace, pairs, operator


def _predict_and_label(url: str, name: str, wrong_share: float) -> int:
    """Predictions from the live colour, then one label per id (every other one wrong at 0.5); labels sent."""
    rows = load_iris().data[:: 150 // LABELS_SENT][:LABELS_SENT]
    labels = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i, row in enumerate(rows):
            answer = client.post(f"/v2/models/{name}/infer", json=v2_body(row))
            assert answer.status_code == 200, answer.text
            predicted = int(answer.json()["outputs"][0]["data"][0])
            wrong = wrong_share and i % round(1 / wrong_share) == 0
            labels.append(
                {
                    "id": answer.headers["x-prediction-id"],
                    "label": (predicted + 1) % 3 if wrong else predicted,
                }
            )
        taken = client.post("/feedback", json={"feedback": labels})
        assert taken.status_code == 200 and taken.json() == {"scored": LABELS_SENT}, taken.text
    return len(labels)


def _judged(revision_: str):
    def check(md: dict) -> bool:
        found = (md.get("status") or {}).get("evaluation") or {}
        return found.get("revision") == revision_ and (found.get("result") or {}).get("passed") is not None

    return check


def test_labels_that_agree_keep_the_promoted_model_healthy(env):
    cluster, namespace, pairs, _ = env
    pair = pairs["agree"]
    v2 = revision(pair.v2)
    _predict_and_label(pair.green.url, "agree", 0.0)
    md = wait_rollout(cluster, namespace, "agree", _judged(v2), timeout=90, what="feedback verdict")
    status = md["status"]
    result = status["evaluation"]["result"]
    assert result["passed"] is True and result["score"] == pytest.approx(1.0), result
    assert f"on {LABELS_SENT} rows labelled by clients" in result["message"], result
    assert (status["activeColor"], status["activeRevision"]) == ("green", v2)
    assert condition(md, "Degraded")["status"] == "False"
    reasons = event_reasons(cluster, namespace, "agree")
    assert "EvaluationPassed" in reasons and "EvaluationRollback" not in reasons, reasons


def test_labels_wrong_half_the_time_fail_the_threshold_and_roll_back_to_the_warm_colour(env):
    cluster, namespace, pairs, operator = env
    pair = pairs["wrong"]
    v1, v2 = revision(pair.v1), revision(pair.v2)
    _predict_and_label(pair.green.url, "wrong", 0.5)
    md = wait_rollout(cluster, namespace, "wrong", in_phase("Aborted"), timeout=90, what="rolled back")
    status = md["status"]
    assert (status["activeColor"], status["activeRevision"]) == ("blue", v1)
    assert (status["history"][0]["revision"], status["history"][0]["outcome"]) == (v2, "RolledBack")
    failed = [e["message"] for e in events(cluster, namespace, "wrong") if e["reason"] == "EvaluationFailed"]
    assert any(f"live model {v2}: accuracy 0.5000 < threshold 0.8" in m for m in failed), failed
    assert "EvaluationRollback" in event_reasons(cluster, namespace, "wrong")
    assert condition(md, "Ready")["status"] == "True"  # v1 serves again
    scores = [
        line for line in operator.metrics().splitlines()
        if line.startswith("modeldeploy_check_score{") and 'name="wrong"' in line and f'"{v2}"' in line
    ]  # fmt: skip
    assert any('check="evaluation"' in s and 'metric="score"' in s and s.endswith(" 0.5") for s in scores), (
        scores
    )
    # The labels reached the pods as figures too: what modelserve itself exports for v2.
    text = httpx.get(f"{pair.green.url}/metrics").text
    accuracy = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
        if line.startswith("modelserve_feedback_accuracy{") and f'prediction_revision="{v2}"' in line
    ]  # fmt: skip
    assert accuracy == [pytest.approx(0.5)], accuracy
