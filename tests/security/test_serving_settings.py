"""The spec's defences for modelserve (limits, deadlines, failed-key limiting, payload logging) reach the
serving container as the MODELSERVE_* variables modelserve reads; unset fields leave modelserve's defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modeldeploy.api import ModelDeploymentSpec
from modeldeploy.crdgen import build_crd
from modeldeploy.desired.deployment import model_location, server_env
from modelserve.settings import Settings

ONNX = {"uri": "https://models.example/m.onnx"}
MD = {"metadata": {"name": "iris", "namespace": "ml"}}
NEW_VARIABLES = {
    "MODELSERVE_MAX_ROWS",
    "MODELSERVE_MAX_CONNECTIONS",
    "MODELSERVE_HEADER_TIMEOUT_SECONDS",
    "MODELSERVE_BODY_TIMEOUT_SECONDS",
    "MODELSERVE_AUTH_FAILURE_RPS",
    "MODELSERVE_AUTH_FAILURE_BURST",
    "MODELSERVE_LOG_PAYLOADS",
}


def spec(**fields) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"model": ONNX, **fields})


def env_of(parsed: ModelDeploymentSpec) -> dict[str, str]:
    entries = server_env(MD, parsed, "blue", "abc123", model_location(parsed), 8080)
    return {e["name"]: e["value"] for e in entries}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"server": {"maxRowsPerRequest": 500}}, {"MODELSERVE_MAX_ROWS": "500"}),
        ({"server": {"maxConnections": 200}}, {"MODELSERVE_MAX_CONNECTIONS": "200"}),
        ({"server": {"requestHeaderTimeoutSeconds": 5}}, {"MODELSERVE_HEADER_TIMEOUT_SECONDS": "5"}),
        ({"server": {"requestBodyTimeoutSeconds": 2.5}}, {"MODELSERVE_BODY_TIMEOUT_SECONDS": "2.5"}),
        (
            {"security": {"authFailureLimit": {"requestsPerSecond": 0.5, "burst": 4}}},
            {"MODELSERVE_AUTH_FAILURE_RPS": "0.5", "MODELSERVE_AUTH_FAILURE_BURST": "4"},
        ),
        ({"security": {"authFailureLimit": {"requestsPerSecond": 2}}}, {"MODELSERVE_AUTH_FAILURE_RPS": "2"}),
        ({"logging": {"payloads": True}}, {"MODELSERVE_LOG_PAYLOADS": "true"}),
        ({"server": {"maxBodyBytes": 64 * 1024 * 1024}}, {"MODELSERVE_MAX_BODY_BYTES": "67108864"}),
    ],
    ids=[
        "rows cap",
        "connection cap",
        "header deadline",
        "body deadline",
        "failed-key limit",
        "failed-key rate alone",
        "payload logging on",
        "largest body allowed",
    ],
)
def test_spec_field_sets_its_variable_and_no_other(fields, expected):
    env = env_of(spec(**fields))
    assert {k: env[k] for k in expected} == expected
    assert not (NEW_VARIABLES - set(expected)) & set(env)


def test_an_unset_spec_leaves_modelserve_defaults_and_payloads_unlogged():
    env = env_of(spec())
    assert not NEW_VARIABLES & set(env)
    defaults = Settings(api_keys_file="")
    assert defaults.log_payloads is False
    assert (defaults.max_connections, defaults.header_timeout_seconds, defaults.body_timeout_seconds) == (
        1024,
        10.0,
        30.0,
    )


def test_every_variable_the_operator_sets_is_a_modelserve_setting():
    everything = spec(
        server={
            "maxBodyBytes": 4096,
            "maxQueue": 10,
            "maxRowsPerRequest": 256,
            "maxConnections": 1,
            "requestHeaderTimeoutSeconds": 1,
            "requestBodyTimeoutSeconds": 1,
            "batching": {"maxBatchSize": 2},
        },
        security={
            "apiKeySecretRef": {"name": "keys"},
            "rateLimit": {"requestsPerSecond": 1},
            "authFailureLimit": {"requestsPerSecond": 1, "burst": 2},
        },
        logging={"payloads": True},
    )
    names = {n.removeprefix("MODELSERVE_").lower() for n in env_of(everything)}
    assert names <= set(Settings.model_fields)
    Settings(**{n.removeprefix("MODELSERVE_").lower(): v for n, v in env_of(everything).items()})


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"server": {"maxBodyBytes": 64 * 1024 * 1024 + 1}}, "maxBodyBytes"),
        ({"server": {"maxRowsPerRequest": 255}}, "maxRowsPerRequest"),
        ({"server": {"maxConnections": 0}}, "maxConnections"),
        ({"server": {"requestHeaderTimeoutSeconds": 0}}, "requestHeaderTimeoutSeconds"),
        ({"server": {"requestBodyTimeoutSeconds": 3601}}, "requestBodyTimeoutSeconds"),
        ({"security": {"authFailureLimit": {"requestsPerSecond": -1}}}, "requestsPerSecond"),
    ],
)
def test_out_of_range_settings_are_refused_naming_the_field(fields, where):
    with pytest.raises(ValidationError) as err:
        spec(**fields)
    assert where in str(err.value) or where in str([e["loc"] for e in err.value.errors()])


def test_the_crd_caps_max_body_bytes_at_64_mib():
    server = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["server"]["properties"]
    assert server["maxBodyBytes"]["maximum"] == 64 * 1024 * 1024
    assert {
        "maxRowsPerRequest",
        "maxConnections",
        "requestHeaderTimeoutSeconds",
        "requestBodyTimeoutSeconds",
    } <= set(server)


def test_the_rows_cap_never_refuses_the_operators_own_labelled_batches():
    from modeldeploy.api.spec import MIN_ROWS_PER_REQUEST
    from modeldeploy.probes.inference import BATCH_ROWS

    assert MIN_ROWS_PER_REQUEST >= BATCH_ROWS
