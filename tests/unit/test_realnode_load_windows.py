"""The release lane's decisions on what the load pod and the status said: step windows, the switch, the log,
and the start-up verdict."""

import json

import pytest

from harness.realnode.load_pods import all_answers_from, load_pod_manifests, parse_load_log, step_windows
from harness.realnode.startup_probe import Attempt, last_not_ready, outcomes_while_not_ready

SPLIT = {"blue": 50, "green": 50}


@pytest.mark.parametrize(
    ("timeline", "expected"),
    [
        ([(0, {"blue": 100}), (5, {"blue": 100})], []),
        ([(0, {"blue": 100}), (1, SPLIT), (2, SPLIT), (11, {"green": 100})], [(3, 10, SPLIT)]),
        ([(0, SPLIT), (3, {"blue": 100})], []),  # not longer than the settling time and the tail
        ([(0, {"blue": 100, "green": 0}), (9, {"blue": 100})], []),  # a colour at weight 0 takes no share
        (
            [(0, SPLIT), (4, {"blue": 100}), (5, {"blue": 80, "green": 20}), (10, {"green": 100})],
            [(2, 3, SPLIT), (7, 9, {"blue": 80, "green": 20})],
        ),
    ],
)
def test_step_windows_are_the_settled_spans_of_split_traffic(timeline, expected):
    assert step_windows(timeline) == expected


@pytest.mark.parametrize(
    ("colors", "expected"),
    [
        ([{"blue": 3}, {"blue": 1, "green": 2}, {"green": 3}, {}, {"green": 3}], 2),
        ([{"blue": 3}, {"green": 3}, {"blue": 1}], None),  # the old colour answered again at the end
        ([{"green": 3}], 0),
        ([{"blue": 3}], None),
    ],
)
def test_all_answers_from_is_where_the_colour_last_took_every_answer(colors, expected):
    buckets = [{"start": i, "colors": c} for i, c in enumerate(colors)]
    assert all_answers_from(buckets, "green") == expected


def test_load_log_gives_buckets_and_summary_and_a_missing_summary_is_an_error():
    log = "\n".join(
        [
            "starting",
            json.dumps({"bucket": {"start": 1.0, "ok": 2, "colors": {"blue": 2}}}),
            json.dumps({"bucket": {"start": 2.0, "ok": 1, "colors": {"green": 1}}}),
            json.dumps({"summary": {"sent": 3, "failed": 0}}),
        ]
    )
    run = parse_load_log(log)
    assert run.summary == {"sent": 3, "failed": 0}
    assert run.colors_between(1.0, 3.0) == {"blue": 2, "green": 1}
    assert run.colors_between(1.0, 2.5) == {"blue": 2}  # only buckets wholly inside the window
    with pytest.raises(AssertionError, match="no summary line"):
        parse_load_log(log.rsplit("\n", 1)[0])


def test_load_pod_is_small_runs_once_and_carries_the_script_and_body():
    config, pod = load_pod_manifests(
        "load", url="http://10.96.0.9/x", body={"a": 1}, rate=30, duration=20, image="img:1", node="real-0"
    )
    assert json.loads(config["data"]["body.json"]) == {"a": 1}
    assert "def send_one" in config["data"]["loadclient.py"]
    container = pod["spec"]["containers"][0]
    assert container["resources"]["requests"]["cpu"] == "30m"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert container["command"][container["command"].index("--rate") + 1] == "30"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def _attempts(*rows):
    return [Attempt(at, at + 0.01, path, outcome) for at, path, outcome in rows]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (
            [(0, "infer", "refused"), (0.1, "ready", "refused"), (1, "infer", "503"), (1.1, "ready", "503"),
             (2, "infer", "200"), (2.1, "ready", "200")],
            {"refused", "503"},
        ),
        # A prediction answered while the server still said it was not ready.
        ([(0, "infer", "200"), (0.1, "ready", "503"), (1, "ready", "200")], {"200"}),
    ],
)  # fmt: skip
def test_startup_verdict_names_what_requests_got_while_not_ready(rows, expected):
    assert outcomes_while_not_ready(_attempts(*rows)) == expected


def test_last_not_ready_is_when_the_last_unready_answer_was_asked():
    assert last_not_ready(_attempts((0, "ready", "503"), (1, "ready", "refused"), (2, "ready", "200"))) == 1
