"""Spec rules that keep a ModelDeployment author inside their own namespace, checked by the operator's own
models (objects stored before a CRD upgrade are parsed at the edge); the same rules as CEL in the CRD, which
tests/e2e/operator/test_crd_validation.py proves on a real API server."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modeldeploy.api import Analysis, Evaluation, ModelDeploymentSpec, QualityGate
from modeldeploy.api.cel import VALIDATIONS_KEY
from modeldeploy.crdgen import build_crd

ONNX = {"uri": "https://models.example/m.onnx"}


def spec(**fields) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({"model": ONNX, **fields})


def dataset(uri: str) -> dict:
    return {"datasetUri": uri, "labelColumn": "y", "metric": "accuracy", "threshold": 0.5}


@pytest.mark.parametrize(
    "uri",
    [
        "file:///var/run/secrets/kubernetes.io/serviceaccount/token",
        "s3://bucket/holdout.csv",
        "pvc://claim/holdout.csv",
        "/etc/passwd",
        "gopher://x/",
        "http:///no-host.csv",
    ],
)
@pytest.mark.parametrize("model", [QualityGate, Evaluation])
def test_dataset_uri_accepts_only_what_the_operator_reads(model, uri):
    with pytest.raises(ValidationError, match="datasetUri must be an https:// or http:// URL"):
        model.model_validate(dataset(uri))


def test_dataset_uri_over_http_is_accepted():
    assert QualityGate.model_validate(dataset("https://d.example/h.csv?sig=1")).dataset_uri.startswith(
        "https"
    )
    assert Evaluation.model_validate(dataset("http://data.ml.svc:8080/h.csv")).label_column == "y"


@pytest.mark.parametrize(
    "name",
    ["MODELSERVE_API_KEYS_FILE", "modelserve_api_keys_file", "ModelServe_Allow_Unverified_Pickle",
     "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "LD_PRELOAD", "LD_LIBRARY_PATH"],
)  # fmt: skip
def test_reserved_environment_names_are_refused_in_any_case(name):
    with pytest.raises(ValidationError, match=r"server\.env must not set"):
        spec(server={"env": [{"name": name, "value": "/x"}]})


@pytest.mark.parametrize("name", ["AWS_REGION", "OMP_NUM_THREADS", "pythonpath_hint", "MODELSERVE"])
def test_ordinary_environment_names_are_accepted(name):
    assert spec(server={"env": [{"name": name, "value": "1"}]}).server.env[0].name == name


def test_env_values_that_would_overflow_the_annotation_are_refused():
    big = [{"name": f"V{i}", "value": "x" * 32768} for i in range(3)]
    with pytest.raises(ValidationError, match="names and values together must be at most 65536 bytes"):
        spec(server={"env": big})
    assert len(spec(server={"env": big[:1]}).server.env) == 1


@pytest.mark.parametrize("quantity", ["-1", "-250m", -1, "lots"])
def test_negative_or_malformed_quantities_are_refused(quantity):
    with pytest.raises(ValidationError, match=r"must not be negative|is not a Kubernetes quantity"):
        spec(resources={"requests": {"memory": quantity}})


@pytest.mark.parametrize("key", ["bad key!", "-pool", "a/b/c", "x" * 64, "Example.com/pool"])
def test_node_selector_keys_must_be_label_keys(key):
    with pytest.raises(ValidationError, match=r"server\.nodeSelector keys must be label keys"):
        spec(server={"nodeSelector": {key: "a"}})


def test_node_selector_values_must_be_label_values():
    with pytest.raises(ValidationError):
        spec(server={"nodeSelector": {"pool": "not a value!"}})
    ok = spec(server={"nodeSelector": {"node-role.kubernetes.io/ml": "", "pool": "gpu.a100"}})
    assert ok.server.node_selector["pool"] == "gpu.a100"


def test_toleration_fields_the_api_server_would_refuse():
    with pytest.raises(ValidationError, match="value must be empty when operator is Exists"):
        spec(server={"tolerations": [{"operator": "Exists", "value": "x"}]})
    with pytest.raises(ValidationError, match="tolerationSeconds needs effect NoExecute"):
        spec(server={"tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]})


def test_a_toleration_must_name_a_key():
    with pytest.raises(ValidationError, match="every toleration must name a key"):
        spec(server={"tolerations": [{"operator": "Exists"}]})
    with pytest.raises(ValidationError, match="every toleration must name a key"):
        spec(server={"tolerations": [{"operator": "Exists", "effect": "NoSchedule", "key": ""}]})
    ok = spec(server={"tolerations": [{"key": "pool", "operator": "Exists", "effect": "NoSchedule"}]})
    assert ok.server.tolerations[0].key == "pool"


@pytest.mark.parametrize(("value", "ok"), [("(", False), ("[a-", False), ("^canary-(a|b)$", True)])
def test_a_regular_expression_header_match_must_compile(value, ok):
    match = {"name": "x-canary", "value": value, "type": "RegularExpression"}
    routing = {"gatewayAPI": {"parentRefs": [{"name": "gw"}], "headerMatch": match}}
    if ok:
        assert spec(rollout={"trafficRouting": routing}).rollout.traffic_routing.gateway_api.header_match
    else:
        with pytest.raises(ValidationError, match=r"headerMatch\.value is not a regular expression"):
            spec(rollout={"trafficRouting": routing})
    # An Exact match is a literal: any text will do.
    exact = {**match, "type": "Exact"}
    assert spec(
        rollout={"trafficRouting": {"gatewayAPI": {"parentRefs": [{"name": "gw"}], "headerMatch": exact}}}
    )


@pytest.mark.parametrize("model", [QualityGate, Evaluation])
def test_max_rows_is_capped_and_objects_stored_with_more_are_read_as_the_cap(model):
    assert (
        model.model_validate({**dataset("https://d.example/h.csv"), "maxRows": 1_000_000}).max_rows == 100_000
    )
    assert model.model_validate({**dataset("https://d.example/h.csv"), "maxRows": 5000}).max_rows == 5000


def test_min_requests_zero_means_one():
    assert Analysis.model_validate({"minRequests": 0}).min_requests == 1
    assert Analysis.model_validate({"minRequests": 7}).min_requests == 7


def _rules(schema: dict) -> list[str]:
    found = [r["rule"] for r in schema.get(VALIDATIONS_KEY, [])]
    for child in schema.get("properties", {}).values():
        found += _rules(child)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += _rules(schema[key])
    return found


def test_the_crd_carries_the_same_rules_as_cel():
    root = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = " ".join(_rules(root))
    for needle in ("upperAscii().startsWith('MODELSERVE_')", "'LD_PRELOAD'", "self.matches('^https?://",
                   "!string(self).startsWith('-')", "self.all(k, k.matches("):  # fmt: skip
        assert needle in rules, needle
    analysis = root["properties"]["spec"]["properties"]["rollout"]["properties"]["analysis"]
    assert analysis["properties"]["minRequests"]["minimum"] == 1
    gate = root["properties"]["spec"]["properties"]["rollout"]["properties"]["qualityGate"]
    assert gate["properties"]["maxRows"]["maximum"] == 100_000
    assert "has(self.key) && self.key != ''" in rules


@pytest.mark.parametrize(
    ("toleration", "message"),
    [
        ({"key": "bad key!"}, "key must be a label key"),
        ({"key": "-pool"}, "key must be a label key"),
        ({"key": "pool", "value": "gpu a100"}, "value must be a label value"),
        ({"key": "pool", "value": "x" * 64}, "at most 63"),
    ],
)
def test_toleration_keys_and_values_must_be_label_keys_and_values(toleration, message):
    with pytest.raises(ValidationError, match=message):
        spec(server={"tolerations": [toleration]})


def test_well_formed_tolerations_are_accepted():
    ok = spec(
        server={
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}, {"key": "p", "value": "a.b"}]
        }
    )
    assert [t.key for t in ok.server.tolerations] == ["nvidia.com/gpu", "p"]


@pytest.mark.parametrize("hostname", ["Iris.example", "iris.example:443", "http://iris.example", "a..b", "*"])
def test_route_hostnames_must_be_dns_names(hostname):
    routing = {"gatewayAPI": {"parentRefs": [{"name": "gw"}], "hostnames": [hostname]}}
    with pytest.raises(ValidationError, match="must be a lower-case DNS name"):
        spec(rollout={"trafficRouting": routing})


def test_route_hostnames_may_be_wildcards():
    routing = {
        "gatewayAPI": {"parentRefs": [{"name": "gw"}], "hostnames": ["*.models.example", "iris.example"]}
    }
    assert spec(rollout={"trafficRouting": routing}).rollout.traffic_routing is not None
