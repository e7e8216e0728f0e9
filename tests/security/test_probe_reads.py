"""The operator's reads on a ModelDeployment's behalf: data sets only over http(s), hosts checked after DNS
resolution and the connection pinned to the checked address, no redirects, every answer within a cap and a
deadline, and nothing fetched echoed into a check message. Real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import socket

import pytest

from modeldeploy.api import QualityGate, Smoke
from modeldeploy.probes import ProbeClient, StaticResolver, Target
from modeldeploy.probes.dataset import DatasetError, load_dataset
from modeldeploy.probes.guard import (
    PLATFORM_RULE,
    DestinationGuard,
    hosts_of,
    parse_networks,
    refusal,
)
from modeldeploy.probes.inference import InferenceError, ModelInfo, feature_order

from .hostile import GOOD_CSV, SECRET, hostile_origin

CAP = 1024 * 1024
TARGET = Target("ml", "iris-preview", "green")


def _gate(uri: str, label: str = "y") -> QualityGate:
    return QualityGate.model_validate(
        {"datasetUri": uri, "labelColumn": label, "metric": "accuracy", "threshold": 0.5}
    )


def _trusting(origin_url: str) -> DestinationGuard:
    """The test origin on loopback is trusted, as the platform's static address map would make it."""
    return DestinationGuard(exempt_hosts=hosts_of([origin_url]))


def _load(uri: str, guard: DestinationGuard, **options) -> object:
    async def main():
        import httpx

        async with httpx.AsyncClient(timeout=5.0) as http:
            return await load_dataset(http, uri, "y", 100, None, guard, **options)

    return asyncio.run(main())


def _probe(call, resolver=None, **options):
    async def main():
        client = ProbeClient(resolver or StaticResolver({"green": ["http://127.0.0.1:9"]}), **options)
        try:
            return await call(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


# ---------------------------------------------------------------- which destinations


@pytest.mark.parametrize(
    ("address", "rule"),
    [
        ("127.0.0.1", "loopback"),
        ("127.3.2.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("10.96.0.1", None),
        ("2001:db8::1", None),
    ],
)
def test_builtin_rules_refuse_loopback_link_local_and_unspecified(address, rule):
    assert refusal(address) == rule


def test_platform_ranges_are_refused_with_their_rule():
    blocked = parse_networks(["10.96.0.0/12", " fd00::/8 ", ""])
    assert refusal("10.96.0.1", blocked) == PLATFORM_RULE
    assert refusal("fd00::5", blocked) == PLATFORM_RULE
    assert refusal("10.0.0.1", blocked) is None


def test_a_name_is_checked_after_resolution_and_nothing_is_sent():
    # "localhost" is not an address: only resolving it shows that it is loopback.
    with hostile_origin({"/good.csv": GOOD_CSV}) as origin:
        port = origin.url.rsplit(":", 1)[1]
        with pytest.raises(DatasetError, match=r"host localhost \((127\.0\.0\.1|::1)\) is refused: loopback"):
            _load(f"http://localhost:{port}/good.csv", DestinationGuard())
        assert origin.requests == []


def test_metadata_address_and_platform_range_are_refused_before_connecting():
    with pytest.raises(DatasetError, match=r"host 169\.254\.169\.254 is refused: link-local"):
        _load("http://169.254.169.254/latest/meta-data/", DestinationGuard())
    guard = DestinationGuard(parse_networks(["192.0.2.0/24"]))
    with pytest.raises(DatasetError, match="is refused: blocked by the platform"):
        _load("http://192.0.2.10/data.csv", guard)


def test_the_connection_goes_to_the_checked_address_with_the_name_as_host():
    first = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)[0][4][0]
    with hostile_origin({"/good.csv": GOOD_CSV}, host=first) as origin:
        port = origin.url.rsplit(":", 1)[1]
        pinned = asyncio.run(DestinationGuard(rules=()).pin(f"http://localhost:{port}/good.csv"))
        assert first in pinned.url and "localhost" not in pinned.url
        assert pinned.headers == {"Host": f"localhost:{port}"}
        data = _load(f"http://localhost:{port}/good.csv", DestinationGuard(rules=()))
        assert len(data) == 3
        assert origin.hosts == [f"localhost:{port}"]
    tls = asyncio.run(DestinationGuard(rules=()).pin("https://localhost:8443/d.csv"))
    assert tls.extensions == {"sni_hostname": "localhost"} and tls.headers == {"Host": "localhost:8443"}


def test_hosts_the_platform_configured_are_exempt():
    with hostile_origin({"/good.csv": GOOD_CSV}) as origin:
        data = _load(f"{origin.url}/good.csv", _trusting(origin.url))
        assert data.labels == [0.0, 1.0, 0.0]


def test_the_probe_client_refuses_loopback_data_sets_unless_the_platform_named_the_host():
    with hostile_origin({"/good.csv": GOOD_CSV}) as origin:
        refused = _probe(
            lambda c: c.quality_gate(TARGET, _gate(f"{origin.url}/good.csv"), "iris"),
            StaticResolver({"green": ["http://model.invalid:8080"]}),
        )
        assert refused.passed is None and "is refused: loopback" in refused.message
        assert origin.requests == []


# ---------------------------------------------------------------- redirects


def test_a_data_set_redirect_is_not_followed():
    with hostile_origin({"/good.csv": GOOD_CSV}) as origin:
        with pytest.raises(DatasetError, match="HTTP 302 \\(a redirect\\); redirects are not followed"):
            _load(f"{origin.url}/redirect?to=/good.csv", _trusting(origin.url))
        assert origin.requests == ["/redirect?to=/good.csv"]


def test_a_smoke_redirect_is_not_followed_and_the_target_never_asked():
    smoke = Smoke.model_validate({"requests": [{"path": "/redirect?to=/internal-admin", "body": {}}]})
    with hostile_origin() as origin:
        result = _probe(lambda c: c.smoke(TARGET, smoke), StaticResolver({"green": [origin.url]}))
        assert result.passed is False and "HTTP 302, expected 200" in result.message
        assert origin.requests == ["/redirect?to=/internal-admin"]


# ---------------------------------------------------------------- caps and deadlines


def test_an_endless_chunked_data_set_costs_at_most_the_cap():
    with hostile_origin() as origin:
        with pytest.raises(DatasetError, match=f"larger than {CAP} bytes"):
            _load(f"{origin.url}/endless.csv", _trusting(origin.url), max_bytes=CAP)
        # Socket buffers hold a few MiB more; without the cap the origin would have sent gigabytes.
        assert origin.sent["/endless.csv"] < CAP + 32 * 1024 * 1024


def test_a_declared_oversize_data_set_is_refused_before_reading():
    with hostile_origin() as origin, pytest.raises(DatasetError, match=f"larger than {CAP} bytes"):
        _load(f"{origin.url}/huge.csv", _trusting(origin.url), max_bytes=CAP)


def test_a_trickling_data_set_stops_at_the_deadline():
    with hostile_origin() as origin:
        with pytest.raises(DatasetError, match=r"no complete answer within 1s|not read within 1s"):
            _load(f"{origin.url}/trickle.csv", _trusting(origin.url), deadline_seconds=1.0)
        assert origin.sent["/trickle.csv"] < 1000


def test_endless_answers_from_a_model_server_give_a_clear_reason():
    smoke = Smoke.model_validate({"requests": [{"path": "/endless", "body": {}}]})
    with hostile_origin() as origin:
        resolver = StaticResolver({"green": [origin.url]})
        result = _probe(lambda c: c.smoke(TARGET, smoke), resolver)
        assert result.passed is None
        assert "ReadLimitExceeded: the answer is larger than 1048576 bytes" in result.message
        assert origin.sent["/endless"] < 64 * 1024 * 1024
        snapshot = _probe(
            lambda c: c.snapshot(TARGET, _selector()), StaticResolver({"green": [f"{origin.url}/endless"]})
        )
        assert snapshot.pods == {} and len(snapshot.unreachable) == 1


def test_a_trickling_model_server_answer_stops_at_the_deadline():
    smoke = Smoke.model_validate({"requests": [{"path": "/trickle", "body": {}}]})
    with hostile_origin() as origin:
        result = _probe(
            lambda c: c.smoke(TARGET, smoke), StaticResolver({"green": [origin.url]}), timeout_seconds=1.0
        )
        assert result.passed is None and "no complete answer within 1s" in result.message


def _selector():
    from modeldeploy.probes import SeriesSelector

    return SeriesSelector(model="iris", color="green", revision="r1")


# ---------------------------------------------------------------- no echo of fetched content


@pytest.mark.parametrize(
    ("body", "label"),
    [
        (f"{SECRET}\n1\n".encode(), "y"),  # a token file: one "column" named by the secret
        (f"a,{SECRET},c\n1,2,3\n".encode(), "y"),
        (f"{SECRET},y\n1\n".encode(), "y"),  # wrong field count on line 2
        (f"y\n{SECRET}\n".encode(), "y"),  # label present: the row count is the only thing said
    ],
)
def test_a_secret_in_the_data_set_never_appears_in_the_check_message(body, label):
    with hostile_origin({"/token": body}) as origin:
        result = _probe(
            lambda c: c.quality_gate(TARGET, _gate(f"{origin.url}/token", label), "iris"),
            StaticResolver({"green": ["http://127.0.0.1:9"]}),
            dataset_guard=_trusting(origin.url),
        )
    assert result.passed is not True
    assert SECRET not in result.message
    assert SECRET[:16] not in result.message and SECRET[-16:] not in result.message


def test_feature_mismatch_names_counts_not_columns():
    info = ModelInfo(feature_names=["f1", "f2", "f3"], classes=None)
    with pytest.raises(InferenceError) as err:
        feature_order(info, [SECRET, "b"])
    assert SECRET not in str(err.value) and "2 feature columns" in str(err.value)


def test_the_platform_ranges_come_from_the_operator_settings(monkeypatch):
    from modeldeploy.settings import OperatorSettings

    monkeypatch.setenv("MODELDEPLOY_DATASET_BLOCKED_NETWORKS", "10.0.0.0/8, fd00::/8")
    assert OperatorSettings().dataset_blocked_networks == ["10.0.0.0/8", "fd00::/8"]
    monkeypatch.setenv("MODELDEPLOY_DATASET_BLOCKED_NETWORKS", "10.0.0.0/8,not-a-range")
    with pytest.raises(ValueError, match="not-a-range"):
        OperatorSettings()
