"""The live rollout benchmark's figures from per-request records, its table, and the Argo Rollouts manifests
built from the operator's pod template."""

import pytest

from harness.realnode.argo_rollouts import blue_green_rollout, predict_check_template, services, with_analysis
from harness.release_figures import (
    CUTOVER_WINDOW,
    FailureFigures,
    ReleaseFigures,
    cutover_at,
    failure_figures,
    failure_table,
    old_revision,
    quantile,
    release_figures,
    table,
)


def answers(
    *runs: tuple[str, int], start: float = 0.0, step: float = 0.1, latency: float = 2.0
) -> list[dict]:
    """Consecutive answers, `count` from `revision` per run, `step` seconds apart."""
    out = []
    for revision, count in runs:
        for _ in range(count):
            out.append({"sent_at": start + len(out) * step, "latency_ms": latency, "status": 200,
                        "error": None, "color": "blue", "revision": revision})  # fmt: skip
    return out


@pytest.mark.parametrize(
    ("runs", "expected_index"),
    [
        ([("old", 50), ("new", 200)], 50),  # a clean switch: the first new answer
        ([("old", 50), ("new", 30), ("old", 1), ("new", 200)], 50),  # one straggler in 100 is allowed
        ([("old", 50), ("new", 30), ("old", 2), ("new", 200)], 82),  # two in a window are not
        ([("old", 50), ("new", 10), ("old", 1), ("new", 10), ("old", 1), ("new", 200)], 61),
        ([("old", 300)], None),
        ([("new", CUTOVER_WINDOW - 1)], None),  # too few answers to judge
    ],
)
def test_cutover_starts_where_every_later_window_of_answers_is_99_percent_candidate(runs, expected_index):
    got = answers(*runs)
    at = cutover_at(got, "old")
    assert at == (None if expected_index is None else got[expected_index]["sent_at"])


def test_old_revision_is_the_one_answering_most_before_the_apply():
    got = answers(("a", 5), ("b", 3), ("a", 2), ("c", 20))
    assert old_revision(got, applied_at=got[10]["sent_at"]) == "a"
    assert old_revision(got, applied_at=-1) is None


def test_quantile_matches_the_load_clients_nearest_rank_below():
    assert quantile([5, 1, 3, 2, 4], 0.5) == 3
    assert quantile(list(range(1, 101)), 0.99) == 100
    assert quantile([], 0.5) is None


def test_release_figures_time_the_cutover_from_the_first_ready_pod_and_split_latency_windows():
    before = answers(("old", 60), latency=2.0)  # sent 0.0 .. 5.9
    ready = 6.0
    switching = answers(("old", 20), latency=10.0, start=ready)  # 6.0 .. 7.9: still the old pods
    switched = answers(("new", 200), latency=3.0, start=8.0)  # 8.0 .. 27.9
    records = before + switching + switched + [dict(before[0], status=None, error="timeout", revision=None)]
    figures = release_figures(
        records, {"sent": 281, "failed": 1}, applied_at=2.0, first_ready=ready, old_gone=30.0
    )
    assert figures.cutover_s == pytest.approx(2.0)
    assert figures.failed == 1 and figures.sent == 281
    assert figures.total_s == pytest.approx(28.0)
    assert figures.p99_ms == (2.0, 10.0, 3.0)  # during = first Ready pod .. cutover + 5 s
    assert figures.p50_ms == (2.0, 3.0, 3.0)


def test_release_figures_without_a_cutover_or_the_old_pods_gone_leave_those_figures_out():
    figures = release_figures(
        answers(("old", 200)), {"sent": 200, "failed": 0}, applied_at=1.0, first_ready=None, old_gone=None
    )
    assert (figures.cutover_s, figures.total_s) == (None, None)
    assert figures.p99_ms[0] == 2.0


def test_table_has_a_row_per_release_kind_with_medians_maxima_and_ratios_to_the_baseline():
    def run(cutover: float, total: float, failed: int = 0) -> ReleaseFigures:
        return ReleaseFigures(1000, failed, cutover, (1.0, 2.0, 1.0), (4.0, 8.0, 4.0), total)

    text = table(
        {"ours": [run(1.0, 20.0), run(3.0, 24.0), run(2.0, 22.0)], "theirs": [run(4.0, 40.0, failed=2)]},
        baseline="theirs",
    )
    rows = [line for line in text.splitlines() if line.startswith("| ours") or line.startswith("| theirs")]
    assert rows[0] == (
        "| ours | 3 | 0 of 3,000 | 2.00 / 3.00 | 1.0 / 2.0 / 1.0 | 4.0 / 8.0 / 4.0 | 22.0 / 24.0 |"
    )
    assert rows[1].startswith("| theirs | 1 | 2 of 1,000 | 4.00 / 4.00 |")
    assert "ours / theirs (medians): cutover 0.50x, p99 during 1.00x, total 0.55x" in text


def test_argo_rollout_runs_the_operators_pod_template_with_only_its_labels_changed():
    template = {
        "metadata": {"labels": {"modeldeploy.io/name": "iris"}, "annotations": {"a": "1"}},
        "spec": {
            "terminationGracePeriodSeconds": 45,
            "containers": [{"name": "server", "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}],
            "topologySpreadConstraints": [
                {"labelSelector": {"matchLabels": {"modeldeploy.io/name": "iris"}}}
            ],
        },
    }
    labels = {"app.kubernetes.io/name": "iris-argo"}
    rollout = blue_green_rollout("iris-argo", template, replicas=2, scale_down_delay_seconds=5, labels=labels)
    copied = rollout["spec"]["template"]
    assert copied["metadata"] == {"labels": labels, "annotations": {"a": "1"}}
    assert copied["spec"]["containers"] == template["spec"]["containers"]
    assert copied["spec"]["terminationGracePeriodSeconds"] == 45
    assert copied["spec"]["topologySpreadConstraints"][0]["labelSelector"] == {"matchLabels": labels}
    assert template["metadata"]["labels"] == {"modeldeploy.io/name": "iris"}  # the source is left alone
    assert rollout["spec"]["strategy"]["blueGreen"] == {
        "activeService": "iris-argo-active",
        "previewService": "iris-argo-preview",
        "autoPromotionEnabled": True,
        "scaleDownDelaySeconds": 5,
    }
    assert [s["metadata"]["name"] for s in services("iris-argo", labels, [])] == [
        "iris-argo-active",
        "iris-argo-preview",
    ]


def with_status(records: list[dict], status_of: dict[str, int | None]) -> list[dict]:
    """The records with each revision's answers given that status (None: no answer, no revision)."""
    out = []
    for r in records:
        status = status_of.get(r["revision"], 200)
        out.append(r | {"status": status} | ({"revision": None} if status is None else {}))
    return out


@pytest.mark.parametrize(
    ("runs", "status_of", "failed", "bad_answers", "recovery"),
    [
        ([("v1", 100)], {}, 0, 0, 0.0),  # clients never saw the bad version (judged before the switch)
        ([("v1", 50), ("bad", 20), ("v1", 30)], {"bad": 500}, 20, 20, 1.95),  # every bad answer a 500
        ([("v1", 50), ("bad", 10), ("v1", 5), ("bad", 5), ("v1", 30)], {"bad": 500}, 15, 15, 1.95),
        (
            [("v1", 50), ("lost", 3), ("v1", 47)],
            {"lost": None},
            0,
            0,
            0.0,
        ),  # v1's own failures: not the bad's
    ],
)
def test_failure_figures_count_failures_while_the_bad_version_answered_and_time_back_to_v1(
    runs, status_of, failed, bad_answers, recovery
):
    records = with_status(answers(*runs), status_of)
    figures = failure_figures(records, applied_at=4.95, rejected_at=8.0)
    assert (figures.failed_while_bad, figures.bad_answers) == (failed, bad_answers)
    assert figures.recovery_s == pytest.approx(recovery)
    assert figures.rejected_s == pytest.approx(3.05) and figures.sent == len(records)


def test_failure_figures_count_timeouts_between_the_bad_versions_answers():
    records = with_status(
        answers(("v1", 50), ("bad", 5), ("lost", 2), ("bad", 5), ("v1", 10)), {"lost": None}
    )
    figures = failure_figures(records, applied_at=4.95, rejected_at=None)
    assert (figures.failed_while_bad, figures.bad_answers) == (2, 10)
    assert (figures.rejected_s, figures.recovery_s) == (None, None)  # released, not aborted: never back


def test_failure_table_gives_medians_and_ratios_of_ours_to_each_other_configuration():
    ours = [FailureFigures(100, 40, 4, 2.0, 1.5), FailureFigures(100, 60, 6, 3.0, 2.5)]
    pre = [FailureFigures(100, 0, 0, 0.0, 9.0)]
    post = [FailureFigures(100, 200, 20, 10.0, 9.5)]
    text = failure_table({"ours": ours, "pre": pre, "post": post}, ours="ours")
    assert "| ours | 2 | 5.0 / 6 (10 of 200 sent) | 100 | 2.50 / 3.00 | 2 of 2 | 2.00 |" in text
    assert "ours / pre (medians): failed -, recovery -" in text  # nothing to divide by
    assert "ours / post (medians): failed 0.25x, recovery 0.25x" in text


@pytest.mark.parametrize("when", ["pre", "post"])
def test_argo_analysis_judges_the_given_url_with_a_job_confined_like_the_serving_pods(when):
    template = {
        "metadata": {"labels": {"x": "y"}},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "tolerations": [{"key": "modeldeploy.io/real-node", "operator": "Exists"}],
            "nodeSelector": {"kubernetes.io/hostname": "real-0"},
            "containers": [{"name": "server", "image": "localhost/modelserve:x", "imagePullPolicy": "Never",
                            "securityContext": {"allowPrivilegeEscalation": False,
                                                "capabilities": {"drop": ["ALL"]}}}],
        },
    }  # fmt: skip
    check = predict_check_template("check", template, count=200, max_share=0.05)
    pod = check["spec"]["metrics"][0]["provider"]["job"]["spec"]["template"]["spec"]
    assert pod["securityContext"] == template["spec"]["securityContext"]
    assert pod["tolerations"] == template["spec"]["tolerations"]
    assert pod["nodeSelector"] == template["spec"]["nodeSelector"] and pod["restartPolicy"] == "Never"
    (job,) = pod["containers"]
    assert job["image"] == "localhost/modelserve:x" and job["imagePullPolicy"] == "Never"
    assert job["securityContext"] == template["spec"]["containers"][0]["securityContext"]
    assert job["resources"]["requests"]["cpu"] == "50m"
    assert job["command"][-3:] == ["{{args.url}}", "200", "0.05"]
    rollout = blue_green_rollout("r", template, replicas=2, scale_down_delay_seconds=5, labels={"a": "b"})
    blue_green = with_analysis(rollout, when, "check", "http://10.0.0.1/infer", abort_scale_down_delay=5)[
        "spec"]["strategy"]["blueGreen"]  # fmt: skip
    assert blue_green[f"{when}PromotionAnalysis"] == {
        "templates": [{"templateName": "check"}],
        "args": [{"name": "url", "value": "http://10.0.0.1/infer"}],
    }
    assert blue_green["abortScaleDownDelaySeconds"] == 5
    assert ("postPromotionAnalysis" if when == "pre" else "prePromotionAnalysis") not in blue_green
