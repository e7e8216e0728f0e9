"""The ModelDeployment spec: pydantic models that are the single source of truth for the CRD schema.

Public: ``ModelDeploymentSpec`` and its parts ``ModelSource``, ``ModelCredentials``, ``ModelSchema``,
``Feature``, ``Resources``, ``ResourceList``, ``Autoscaling``, ``Server``, ``Batching``, ``EnvVar``,
``Toleration``, ``LocalObjectReference``, ``Security``, ``SecretKeyRef``, ``RateLimit``, ``Logging``,
``Rollout``, ``RolloutStep``, ``Analysis``, ``Shadow``, ``Smoke``, ``SmokeRequest``, ``QualityGate``,
``Evaluation``, ``TrafficRouting``, ``GatewayAPIRouting``, ``ParentRef``, ``HeaderMatch``, ``Monitoring``,
``Drift``, ``ServiceMonitorSpec``; enums ``ModelFormat``, ``Metric``, ``DatasetFormat``; constants
``PICKLE_FORMATS``, ``PICKLE_SUFFIXES``, ``MAX_NAME_LENGTH``, ``CHILD_SUFFIXES``.

Every field has a description (``kubectl explain`` is the manual), scalar defaults live in the schema,
and the CEL rules next to the fields are copied into the CRD by ``modeldeploy.crdgen``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from modeldeploy.api.cel import rule, validations

# Longest suffix the operator appends to the ModelDeployment name ("-preview"); children must fit 63.
CHILD_SUFFIXES = ("-preview", "-green", "-blue")
MAX_NAME_LENGTH = 63 - max(len(s) for s in CHILD_SUFFIXES)
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")


class ApiModel(BaseModel):
    """Base: camelCase on the wire, snake_case in Python, unknown fields ignored (the API server prunes)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


def _object_default() -> dict[str, Any]:
    # `default: {}` in the CRD so the API server fills the nested defaults (kubectl get shows them).
    return {"default": {}}


_NUMBER = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
_QUANTITY_PATTERN = rf"^(\+|-)?{_NUMBER}(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?{_NUMBER}))?$"
_NEGATIVE_QUANTITY = "resource quantities must not be negative"
MAX_QUANTITY_LENGTH = 64


def _non_negative_quantity(value: str | int) -> str | int:
    if (isinstance(value, int) and value < 0) or (isinstance(value, str) and value.startswith("-")):
        raise ValueError(_NEGATIVE_QUANTITY)
    if isinstance(value, str) and (
        len(value) > MAX_QUANTITY_LENGTH or not re.match(_QUANTITY_PATTERN, value)
    ):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 250m, 1, 256Mi)")
    return value


Quantity = Annotated[
    str | int,
    AfterValidator(_non_negative_quantity),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": _QUANTITY_PATTERN,
            "maxLength": MAX_QUANTITY_LENGTH,  # bounds the CEL cost of the rules that read quantities
            # The Deployment would be refused with 422 on every apply; refuse the spec instead.
            **validations(rule("!string(self).startsWith('-')", _NEGATIVE_QUANTITY)),
        }
    ),
]
DNSLabel = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
DNSSubdomain = Annotated[
    str,
    Field(
        min_length=1,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    ),
]


class ModelFormat(StrEnum):
    sklearn = "sklearn"
    skops = "skops"
    onnx = "onnx"
    torchscript = "torchscript"
    tensorflow = "tensorflow"
    xgboost = "xgboost"
    lightgbm = "lightgbm"


# Formats whose loader unpickles, i.e. runs code from the file: a digest pins what will run.
PICKLE_FORMATS = (ModelFormat.sklearn,)


class Feature(ApiModel):
    """One input column of a tabular model (modelserve rejects requests that break these rules)."""

    name: str = Field(description="Column name.", min_length=1, max_length=256)
    dtype: str = Field(
        default="float",
        description="float, float32, float64, int, bool or string.",
        json_schema_extra={"enum": ["float", "float32", "float64", "int", "bool", "string"]},
    )
    required: bool = Field(default=True, description="Whether the column must be present.")
    minimum: float | None = Field(default=None, alias="min", description="Smallest value accepted.")
    maximum: float | None = Field(default=None, alias="max", description="Largest value accepted.")
    categories: list[Any] | None = Field(
        default=None,
        description="The only values accepted (strings or numbers).",
        max_length=1024,
        json_schema_extra={"items": {"x-kubernetes-preserve-unknown-fields": True}},
    )


class ModelSchema(ApiModel):
    """Input schema, written next to the model as <model>.schema.json (modelserve's manifest format)."""

    features: list[Feature] = Field(
        default_factory=list, description="Columns of a tabular model, in order.", max_length=4096
    )
    shape: list[int] | None = Field(
        default=None, description="Input shape of a tensor model; -1 = any size.", max_length=8
    )
    dtype: str | None = Field(
        default=None, description="Input dtype of a tensor model, e.g. float32.", max_length=16
    )
    input_name: str | None = Field(default=None, description="Input tensor name.", max_length=256)
    outputs: list[Annotated[str, Field(max_length=256)]] = Field(
        default_factory=list, description="Output names.", max_length=64
    )

    def to_manifest(self) -> dict[str, Any]:
        """The JSON modelserve reads (snake_case keys, min/max)."""
        doc: dict[str, Any] = {
            "features": [f.model_dump(by_alias=True, exclude_none=True) for f in self.features],
            "outputs": list(self.outputs),
        }
        for key in ("shape", "dtype", "input_name"):
            if getattr(self, key) is not None:
                doc[key] = getattr(self, key)
        return doc


URI_PATTERN = (
    r"^(https?://[^/]+/|s3://[^/]+/|gs://[^/]+/|azure://[a-z0-9]{3,24}/[a-z0-9][-a-z0-9]{1,61}[a-z0-9]/"
    r"|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?/|file:///)[^?#]*[^/?#]([?#].*)?$"
)
# The schemes the init container fetches (the others are mounted): credentials and an inline schema apply.
FETCHED_SCHEMES = ("https", "http", "s3", "gs", "azure")
_FETCHED_CEL = f"^({'|'.join(FETCHED_SCHEMES)})://"
_PICKLE_SUFFIX_CEL = " || ".join(f"self.uri.endsWith('{s}')" for s in PICKLE_SUFFIXES)
_PICKLE_FORMAT_CEL = " || ".join(f"self.format == '{f.value}'" for f in PICKLE_FORMATS)


class LocalObjectReference(ApiModel):
    name: DNSSubdomain = Field(description="Name of an object in the ModelDeployment's namespace.")


class ModelCredentials(ApiModel):
    secret_ref: LocalObjectReference = Field(
        description="Secret in the ModelDeployment's namespace, labelled `modeldeploy.io/usage: "
        "model-credentials`, whose keys the fetch uses. s3: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
        "optional AWS_SESSION_TOKEN, AWS_ENDPOINT_URL and AWS_REGION; gs: "
        "GOOGLE_APPLICATION_CREDENTIALS_JSON (a service-account key file's content), optional "
        "STORAGE_EMULATOR_HOST; azure: one of "
        "AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN, optional "
        "AZURE_STORAGE_BLOB_ENDPOINT; https/http: Authorization (the whole header value, e.g. "
        "`Bearer <token>`). Given to the fetch init container only.",
    )


class ModelSource(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                f"has(self.sha256) || self.allowUnverifiedPickle || "
                f"!((has(self.format) && ({_PICKLE_FORMAT_CEL})) || {_PICKLE_SUFFIX_CEL})",
                "model.sha256 is required for pickle-family models (format sklearn, or a uri ending in "
                ".pkl, .pickle or .joblib): loading a pickle runs code from the file. Set model.sha256 to "
                "the file's SHA-256, or set model.allowUnverifiedPickle: true to accept the risk",
                field_path=".sha256",
                reason="FieldValueRequired",
            ),
            rule(
                f"!has(self.credentials) || self.uri.matches('{_FETCHED_CEL}')",
                "model.credentials works only for https, http, s3, gs and azure models (the ones the init "
                "container fetches); a pvc:// or file:// model needs none",
                field_path=".credentials",
            ),
            rule(
                f"!has(self.schema) || self.uri.matches('{_FETCHED_CEL}')",
                "model.schema works only for https, http, s3, gs and azure models; for pvc:// and file:// "
                "models put <model>.schema.json next to the model file instead",
                field_path=".schema",
            ),
        )
    )

    uri: str = Field(
        description=(
            "Where the model lives: https://host/path, http://host/path, s3://bucket/key, "
            "gs://bucket/object, azure://<account>/<container>/<blob>, pvc://<claim>/<path> (mounted "
            "read-only from a PersistentVolumeClaim labelled `modeldeploy.io/usage: models`) or "
            "file:///<path> (baked into a custom server.image). The init container runs `modelserve fetch` "
            "for http(s), s3, gs and azure. A .tar.gz, .tgz or .zip is an archive, unpacked by modelserve; a "
            "path ending in /MANIFEST names a directory whose MANIFEST lists its files (docs/models.md)."
        ),
        min_length=1,
        max_length=2048,
        json_schema_extra=validations(
            rule(
                f"self.matches('{URI_PATTERN}')",
                "model.uri must be https://host/path, http://host/path, s3://bucket/key, gs://bucket/object, "
                "azure://<account>/<container>/<blob>, pvc://<claim>/<path> or file:///<path>, and name a "
                "file or directory (not end in /)",
            )
        ),
    )
    format: ModelFormat | None = Field(
        default=None, description="Model format; inferred by modelserve from the file when omitted."
    )
    sha256: str | None = Field(
        default=None,
        description="Expected SHA-256 (hex) of the model file, of the archive, or of the directory's "
        "MANIFEST (which pins every file it lists); the fetch fails on a mismatch.",
        max_length=64,
        json_schema_extra=validations(
            rule(
                "self.matches('^[a-f0-9]{64}$')",
                "model.sha256 must be 64 lowercase hexadecimal characters (the output of sha256sum)",
            )
        ),
    )
    allow_unverified_pickle: bool = Field(
        default=False,
        description="Allow loading a pickle-family model without a sha256. Unsafe: the file runs code.",
    )
    version: str | None = Field(
        default=None,
        description="Human version of the model, shown in metrics, headers and status.",
        max_length=63,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
    )
    credentials: ModelCredentials | None = Field(
        default=None, description="Credentials for fetching the model, from a Secret (never in the spec)."
    )
    schema_: ModelSchema | None = Field(
        default=None,
        alias="schema",
        description="Optional input schema; mounted next to the model as <model>.schema.json.",
    )

    # The same rules as the CEL above, for objects stored before a CRD upgrade (parsed at the edge).
    @model_validator(mode="after")
    def _mirror_cel(self) -> ModelSource:
        if not re.match(URI_PATTERN, self.uri):
            raise ValueError("model.uri must be https://host/path, http://host/path, s3://bucket/key, "
                             "gs://bucket/object, azure://<account>/<container>/<blob>, "
                             "pvc://<claim>/<path> or file:///<path>")  # fmt: skip
        if self.sha256 is not None and not re.fullmatch(r"[a-f0-9]{64}", self.sha256):
            raise ValueError("model.sha256 must be 64 lowercase hexadecimal characters")
        pickle = self.format in PICKLE_FORMATS or self.uri.endswith(PICKLE_SUFFIXES)
        if pickle and not self.sha256 and not self.allow_unverified_pickle:
            raise ValueError("model.sha256 is required for pickle-family models unless allowUnverifiedPickle")
        fetched = re.match(_FETCHED_CEL, self.uri) is not None
        if self.credentials is not None and not fetched:
            raise ValueError("model.credentials works only for https, http, s3, gs and azure models")
        if self.schema_ is not None and not fetched:
            raise ValueError("model.schema works only for https, http, s3, gs and azure models")
        return self


NATIVE_RESOURCES = ("cpu", "memory", "ephemeral-storage")
# An extended resource is <DNS subdomain>/<name> outside kubernetes.io, as device plugins advertise them.
# `[.]`, not a backslash: the same text is a Python and a CEL string.
_EXTENDED_RESOURCE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?[.])+[a-z0-9]([-a-z0-9]*[a-z0-9])?"
    r"/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_KUBERNETES_DOMAIN_PATTERN = r"^([^/]*[.])?kubernetes[.]io/"
_WHOLE_NUMBER_PATTERN = r"^[0-9]+$"
MAX_RESOURCE_NAME = 253 + 1 + 63
MAX_RESOURCES = 16
_RESOURCE_NAME_MESSAGE = (
    "resources: a resource name is cpu, memory, ephemeral-storage or an extended resource named "
    "<domain>/<name> outside kubernetes.io (e.g. nvidia.com/gpu)"
)
_WHOLE_NUMBER_MESSAGE = (
    "resources: extended resources (names with a '/', e.g. nvidia.com/gpu) take whole numbers"
)
_EXTENDED_EQUAL_MESSAGE = (
    "resources: an extended resource (e.g. nvidia.com/gpu) in requests must be in limits with the same "
    "number (Kubernetes does not overcommit them; giving only limits is enough)"
)


def _is_extended(name: str) -> bool:
    return "/" in name


def _check_resource_list(values: dict[str, str | int]) -> dict[str, str | int]:
    if len(values) > MAX_RESOURCES:
        raise ValueError(f"resources: at most {MAX_RESOURCES} resources")
    for name, value in values.items():
        if name in NATIVE_RESOURCES:
            continue
        if (
            len(name) > MAX_RESOURCE_NAME
            or not re.match(_EXTENDED_RESOURCE_PATTERN, name)
            or re.match(_KUBERNETES_DOMAIN_PATTERN, name)
        ):
            raise ValueError(f"{name!r} is not a resource name. {_RESOURCE_NAME_MESSAGE}")
        if not re.match(_WHOLE_NUMBER_PATTERN, str(value)):
            raise ValueError(f"{name}: {value!r} is not a whole number. {_WHOLE_NUMBER_MESSAGE}")
    return values


ResourceList = Annotated[
    dict[str, Quantity],
    AfterValidator(_check_resource_list),
    Field(
        json_schema_extra={
            "maxProperties": MAX_RESOURCES,
            **validations(
                rule(
                    f"self.all(k, k in {list(NATIVE_RESOURCES)} || (size(k) <= {MAX_RESOURCE_NAME} && "
                    f"k.matches('{_EXTENDED_RESOURCE_PATTERN}') && "
                    f"!k.matches('{_KUBERNETES_DOMAIN_PATTERN}')))",
                    _RESOURCE_NAME_MESSAGE,
                ),
                rule(
                    f"self.all(k, !k.contains('/') || string(self[k]).matches('{_WHOLE_NUMBER_PATTERN}'))",
                    _WHOLE_NUMBER_MESSAGE,
                ),
            ),
        },
    ),
]


def _limit_at_least_request(resource: str) -> dict[str, Any]:
    lim, req = f"self.limits['{resource}']", f"self.requests['{resource}']"
    return rule(
        f"!has(self.limits) || !has(self.requests) || !('{resource}' in self.limits) || "
        f"!('{resource}' in self.requests) || "
        f"quantity(string({lim})).compareTo(quantity(string({req}))) >= 0",
        f"resources.limits.{resource} must be greater than or equal to resources.requests.{resource}",
        field_path=f".limits['{resource}']",
    )


class Resources(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=validations(
            *(_limit_at_least_request(resource) for resource in NATIVE_RESOURCES),
            rule(
                "!has(self.requests) || self.requests.all(k, !k.contains('/') || (has(self.limits) && "
                "k in self.limits && int(string(self.requests[k])) == int(string(self.limits[k]))))",
                _EXTENDED_EQUAL_MESSAGE,
                field_path=".requests",
            ),
        )
    )

    requests: ResourceList | None = Field(
        default=None,
        description="Guaranteed resources per server pod: cpu (e.g. 250m), memory (e.g. 256Mi), "
        "ephemeral-storage, and extended resources such as nvidia.com/gpu (whole numbers).",
    )
    limits: ResourceList | None = Field(
        default=None,
        description="Maximum resources per server pod, with the same names; an extended resource given "
        "only here is also requested.",
    )

    @model_validator(mode="after")
    def _mirror_cel(self) -> Resources:
        limits = self.limits or {}
        for name, value in (self.requests or {}).items():
            if _is_extended(name) and (name not in limits or int(str(limits[name])) != int(str(value))):
                raise ValueError(f"{name} in requests differs from limits. {_EXTENDED_EQUAL_MESSAGE}")
        return self

    def extended(self) -> dict[str, str]:
        """The extended resources asked for (limits win; requests default to them), e.g. nvidia.com/gpu."""
        merged = {**(self.requests or {}), **(self.limits or {})}
        return {name: str(value) for name, value in merged.items() if _is_extended(name)}


class Autoscaling(ApiModel):
    """A HorizontalPodAutoscaler targeting the ModelDeployment's scale subresource."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "self.maxReplicas >= self.minReplicas",
                "autoscaling.maxReplicas must be greater than or equal to autoscaling.minReplicas",
                field_path=".maxReplicas",
            )
        )
    )

    min_replicas: int = Field(default=1, ge=1, le=1000, description="Fewest replicas the HPA keeps.")
    max_replicas: int = Field(ge=1, le=1000, description="Most replicas the HPA may create.")
    target_cpu_utilization_percentage: int = Field(
        default=80,
        ge=1,
        le=100,
        alias="targetCPUUtilizationPercentage",
        description="Average CPU utilisation (percent of requests) the HPA aims for; "
        "needs resources.requests.cpu.",
    )

    @model_validator(mode="after")
    def _mirror_cel(self) -> Autoscaling:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                "autoscaling.maxReplicas must be greater than or equal to autoscaling.minReplicas"
            )
        return self


class Batching(ApiModel):
    max_batch_size: int = Field(default=1, ge=1, le=4096, description="Most requests merged into one batch.")
    max_latency_ms: float = Field(
        default=0, ge=0, le=10000, description="How long a request may wait for a batch to fill, in ms."
    )


# Variables that would change what the server runs or how it is configured, not just its environment.
RESERVED_ENV_NAMES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "LD_PRELOAD", "LD_LIBRARY_PATH")
RESERVED_ENV_PREFIX = "MODELSERVE_"
_RESERVED_ENV_CEL = ", ".join(f"'{n}'" for n in RESERVED_ENV_NAMES)
RESERVED_ENV_MESSAGE = (
    "server.env must not set MODELSERVE_* variables (in any letter case): the operator sets them from the "
    "spec (use the matching spec field instead)"
)
LOADER_ENV_MESSAGE = (
    "server.env must not set " + ", ".join(RESERVED_ENV_NAMES) + ": they change which code the server "
    "loads, around the model digest check"
)
MAX_ENV_BYTES = 65536  # names + values; the pod template travels in a 256 KiB annotation


class EnvVar(ApiModel):
    name: str = Field(
        description="Variable name; MODELSERVE_* (any case), PYTHONPATH, PYTHONHOME, PYTHONSTARTUP, "
        "LD_PRELOAD and LD_LIBRARY_PATH are reserved.",
        min_length=1,
        max_length=128,
        pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$",
        json_schema_extra=validations(
            rule(f"!self.upperAscii().startsWith('{RESERVED_ENV_PREFIX}')", RESERVED_ENV_MESSAGE),
            rule(f"!(self in [{_RESERVED_ENV_CEL}])", LOADER_ENV_MESSAGE),
        ),
    )
    value: str = Field(default="", description="Value.", max_length=32768)

    # The same rules as the CEL above, for objects stored before a CRD upgrade (parsed at the edge).
    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name.upper().startswith(RESERVED_ENV_PREFIX):
            raise ValueError(RESERVED_ENV_MESSAGE)
        if name in RESERVED_ENV_NAMES:
            raise ValueError(LOADER_ENV_MESSAGE)
        return name


_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?" + _LABEL_NAME + "$"
)
LABEL_VALUE_PATTERN = r"^(" + _LABEL_NAME + ")?$"
_TOLERATION_VALUE_MESSAGE = "server.tolerations: value must be empty when operator is Exists"
_TOLERATION_KEY_MESSAGE = (
    "server.tolerations: key must be a label key (an optional DNS-subdomain prefix and '/', then a name of "
    "at most 63 letters, digits, '-', '_', '.', starting and ending with a letter or digit)"
)
_TOLERATION_VALUE_FORM_MESSAGE = (
    "server.tolerations: value must be a label value (at most 63 letters, digits, '-', '_', '.', starting "
    "and ending with a letter or digit)"
)
_TOLERATION_SECONDS_MESSAGE = "server.tolerations: tolerationSeconds needs effect NoExecute"
_TOLERATION_KEY_REQUIRED_MESSAGE = (
    "server.tolerations: every toleration must name a key (an empty key with operator Exists tolerates every "
    "taint, control-plane and dedicated nodes included)"
)


class Toleration(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
                _TOLERATION_VALUE_MESSAGE,
                field_path=".value",
            ),
            rule(
                "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                _TOLERATION_SECONDS_MESSAGE,
                field_path=".tolerationSeconds",
            ),
            rule(
                f"!has(self.key) || self.key == '' || self.key.matches('{LABEL_KEY_PATTERN}')",
                _TOLERATION_KEY_MESSAGE,
                field_path=".key",
            ),
            rule(
                f"!has(self.value) || self.value.matches('{LABEL_VALUE_PATTERN}')",
                _TOLERATION_VALUE_FORM_MESSAGE,
                field_path=".value",
            ),
            rule("has(self.key) && self.key != ''", _TOLERATION_KEY_REQUIRED_MESSAGE, field_path=".key"),
        )
    )

    key: str | None = Field(
        default=None, description="Taint key (required: no toleration of every taint).", max_length=316
    )
    operator: str = Field(
        default="Equal", description="Equal or Exists.", json_schema_extra={"enum": ["Equal", "Exists"]}
    )
    value: str | None = Field(default=None, description="Taint value for operator Equal.", max_length=63)
    effect: str | None = Field(
        default=None,
        description="NoSchedule, PreferNoSchedule or NoExecute; empty matches all.",
        json_schema_extra={"enum": ["NoSchedule", "PreferNoSchedule", "NoExecute"]},
    )
    toleration_seconds: int | None = Field(
        default=None, ge=0, description="How long a NoExecute taint is tolerated."
    )

    @model_validator(mode="after")
    def _mirror_cel(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError(_TOLERATION_VALUE_MESSAGE)
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError(_TOLERATION_SECONDS_MESSAGE)
        if not self.key:
            raise ValueError(_TOLERATION_KEY_REQUIRED_MESSAGE)
        if self.key and not re.match(LABEL_KEY_PATTERN, self.key):
            raise ValueError(_TOLERATION_KEY_MESSAGE)
        if self.value is not None and not re.match(LABEL_VALUE_PATTERN, self.value):
            raise ValueError(_TOLERATION_VALUE_FORM_MESSAGE)
        return self


_ENV_SIZE_MESSAGE = (
    f"server.env: names and values together must be at most {MAX_ENV_BYTES} bytes (the pod template is "
    "stored in a 256 KiB annotation); mount large values from a ConfigMap-backed image or file instead"
)
_NODE_SELECTOR_MESSAGE = (
    "server.nodeSelector keys must be label keys: an optional DNS-subdomain prefix and '/', then a name of "
    "at most 63 characters (letters, digits, '-', '_', '.'), starting and ending with a letter or digit"
)


MAX_BODY_BYTES = 64 * 1024 * 1024  # bodies are buffered whole: a bound on each connection's memory
MIN_ROWS_PER_REQUEST = 256  # the operator's own labelled-data requests carry up to 256 rows


class Server(ApiModel):
    image: str | None = Field(
        default=None,
        description="modelserve-compatible image; defaults to the operator's bundled modelserve image.",
        max_length=512,
    )
    image_pull_policy: str | None = Field(
        default=None,
        description="Always, IfNotPresent or Never; Kubernetes' default when omitted.",
        json_schema_extra={"enum": ["Always", "IfNotPresent", "Never"]},
    )
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list,
        description="Secrets for pulling the image; each must carry the label "
        "`modeldeploy.io/usage: image-pull`.",
        max_length=16,
    )
    workers: int = Field(default=1, ge=1, le=64, description="Server worker processes per pod.")
    grpc: bool = Field(
        default=False,
        description="Also serve the gRPC Open Inference Protocol (KServe/Triton `grpc_predict_v2`) and "
        "`grpc.health.v1` on container port 8081, named `grpc` on the pods and on every Service.",
    )
    timeout_seconds: float = Field(default=10, gt=0, le=3600, description="Per-request timeout in seconds.")
    model_load_timeout_seconds: int = Field(
        default=600, ge=10, le=7200, description="How long a pod may take to fetch, load and warm the model."
    )
    max_body_bytes: int | None = Field(
        default=None, ge=1024, le=MAX_BODY_BYTES, description="Largest request body accepted (413 beyond)."
    )
    max_rows_per_request: int | None = Field(
        default=None,
        ge=MIN_ROWS_PER_REQUEST,
        le=1_000_000,
        description="Most rows in one request (413 beyond); at least 256, the rows the operator's quality "
        "gate and evaluation send per request.",
    )
    max_queue: int | None = Field(default=None, ge=1, description="Requests queued before answering 503.")
    max_connections: int | None = Field(
        default=None,
        ge=1,
        le=65_536,
        description="Open connections per server worker; past it the longest-idle closes. Default 1024.",
    )
    request_header_timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=300,
        description="A request's headers must arrive within this, else 408 and close. Default 10.",
    )
    request_body_timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="A request's body must arrive within this after its headers, else 408. Default 30.",
    )
    batching: Batching | None = Field(default=None, description="Adaptive request batching.")
    env: list[EnvVar] = Field(
        default_factory=list,
        description=f"Extra environment variables (names and values together at most {MAX_ENV_BYTES} bytes).",
        max_length=64,
        json_schema_extra=validations(
            rule(
                f"self.map(e, size(e.name) + (has(e.value) ? size(e.value) : 0)).sum() <= {MAX_ENV_BYTES}",
                _ENV_SIZE_MESSAGE,
            )
        ),
    )
    node_selector: dict[str, Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]] = Field(
        default_factory=dict,
        description="Node labels the pods must match.",
        json_schema_extra={
            "maxProperties": 32,
            **validations(rule(f"self.all(k, k.matches('{LABEL_KEY_PATTERN}'))", _NODE_SELECTOR_MESSAGE)),
        },
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Taints the pods tolerate.", max_length=32
    )
    affinity: dict[str, Any] | None = Field(
        default=None,
        description="Pod affinity/anti-affinity, as in a Pod spec (not validated here; the Deployment is).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )

    @model_validator(mode="after")
    def _mirror_cel(self) -> Server:
        if sum(len(e.name) + len(e.value) for e in self.env) > MAX_ENV_BYTES:
            raise ValueError(_ENV_SIZE_MESSAGE)
        if any(not re.match(LABEL_KEY_PATTERN, k) for k in self.node_selector):
            raise ValueError(_NODE_SELECTOR_MESSAGE)
        return self


class SecretKeyRef(ApiModel):
    name: DNSSubdomain = Field(description="Secret name in the ModelDeployment's namespace.")
    key: str = Field(
        default="api-keys",
        description="Key holding the API keys, one per line (# comments allowed).",
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
    )


class SigningKeyRef(ApiModel):
    name: DNSSubdomain = Field(description="Secret name in the ModelDeployment's namespace.")
    key: str = Field(
        default="signing-key",
        description="Key holding the signing key (any random bytes; 32 or more).",
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
    )


class RateLimit(ApiModel):
    requests_per_second: float = Field(
        gt=0, le=1_000_000, description="Sustained requests per second per pod."
    )
    burst: int | None = Field(
        default=None, ge=1, le=10_000_000, description="Bucket size; defaults to 2x the rate."
    )


class AuthFailureLimit(ApiModel):
    requests_per_second: float = Field(
        ge=0, le=1_000, description="Failed API-key attempts per second per client address (0 = no limit)."
    )
    burst: int | None = Field(
        default=None, ge=1, le=10_000, description="Failed attempts allowed at once; defaults to 10."
    )


class Security(ApiModel):
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret with API keys; requests then need `Authorization: Bearer <key>`. The Secret must "
        "carry the label `modeldeploy.io/usage: api-keys`.",
    )
    signing_key_secret_ref: SigningKeyRef | None = Field(
        default=None,
        description="Secret with the key that signs prediction ids (X-Prediction-ID), mounted by every pod "
        "of both colours so that any pod scores a label sent back to /feedback. Required by monitoring."
        "evaluation.source feedback. The Secret must carry the label `modeldeploy.io/usage: "
        "prediction-signing`; the operator reads only its labels.",
    )
    rate_limit: RateLimit | None = Field(
        default=None, description="Per-pod token-bucket rate limit (429 beyond)."
    )
    auth_failure_limit: AuthFailureLimit | None = Field(
        default=None,
        description="Failed API-key attempts per client address before 429 (a valid key is always served); "
        "default 1/s, burst 10.",
    )


class Logging(ApiModel):
    sample_rate: float = Field(default=1.0, ge=0, le=1, description="Fraction of requests logged (0..1).")
    redact_fields: list[Annotated[str, Field(max_length=128)]] = Field(
        default_factory=list,
        description="Input and output names replaced by [REDACTED] in logs and never quoted in errors.",
        max_length=64,
    )
    payloads: bool = Field(
        default=False,
        description="Log each prediction's inputs and outputs (off: request lines carry metadata only).",
    )


class RolloutStep(ApiModel):
    weight: int = Field(ge=1, le=100, description="Percent of traffic sent to the candidate in this step.")
    pause_seconds: int | None = Field(
        default=None,
        ge=0,
        le=604800,
        description="How long the step lasts; omitted = wait for `promote` (how an A/B split is held).",
    )


class Analysis(ApiModel):
    """Judges the candidate from its own /metrics (or Prometheus) since the step began."""

    max_error_rate: float | None = Field(
        default=None, ge=0, le=1, description="Largest 5xx/all ratio allowed."
    )
    max_latency_p99_ms: float | None = Field(
        default=None, gt=0, description="Largest p99 latency allowed, in ms."
    )
    min_requests: int = Field(
        default=20,
        ge=1,
        description="Requests needed before judging; fewer = inconclusive. At least 1: a verdict on no "
        "traffic would promote a model nobody has called.",
    )
    interval_seconds: int = Field(default=10, ge=1, le=3600, description="How often analysis runs.")
    post_promotion: bool = Field(
        default=True,
        description="Keep analysing during scaleDownDelaySeconds after promotion (instant rollback).",
    )

    @field_validator("min_requests", mode="before")
    @classmethod
    def _zero_means_one(cls, value: Any) -> Any:
        # Objects stored before the CRD minimum of 1 keep working, but never promote on no traffic.
        return 1 if value == 0 and not isinstance(value, bool) else value


class SmokeRequest(ApiModel):
    path: str = Field(
        default="/predict",
        description="Path on the preview Service, e.g. /predict or /v2/models/<name>/infer.",
        max_length=512,
        pattern=r"^/",
    )
    body: Any = Field(
        description="JSON request body.", json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    expected_status: int = Field(default=200, ge=100, le=599, description="HTTP status the request must get.")
    expected_output_shape: list[int] | None = Field(
        default=None,
        description="Shape of the output (v2: outputs[0].shape; otherwise the predictions array); -1 = any.",
        max_length=8,
    )


class Smoke(ApiModel):
    requests: list[SmokeRequest] = Field(
        description="Requests sent to the preview; all must pass.", min_length=1, max_length=20
    )


_SHADOW_PERCENT_MESSAGE = (
    "rollout.shadow.percent must be above 0 and at most 100: the share of answered requests copied to the "
    "candidate"
)
_SHADOW_AGREEMENT_MESSAGE = "rollout.shadow.minAgreement must be between 0 and 1, e.g. 0.97"


class Shadow(ApiModel):
    """Before any traffic step, the active colour copies a share of the requests it answered to the
    candidate (after answering) and the rollout goes on only if the candidate agrees often enough."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "!has(self.percent) || (self.percent > 0.0 && self.percent <= 100.0)", _SHADOW_PERCENT_MESSAGE
            ),
            rule(
                "!has(self.minAgreement) || (self.minAgreement >= 0.0 && self.minAgreement <= 1.0)",
                _SHADOW_AGREEMENT_MESSAGE,
            ),
        )
    )

    percent: float = Field(
        default=10,
        gt=0,
        le=100,
        description="Percent of the requests the active colour answered that are copied to the candidate.",
    )
    min_requests: int = Field(
        default=200,
        ge=1,
        le=1_000_000,
        description="Compared rows needed before judging; fewer = keep copying (until maxSeconds).",
    )
    min_agreement: float = Field(
        default=0.97,
        ge=0,
        le=1,
        description="Share of compared rows on which the candidate must agree with the active model; below "
        "it the rollout aborts (reason ShadowDisagreement).",
    )
    relative_tolerance: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Regressors (and outputs other than a classifier's label): values agree when "
        "|a - b| <= absoluteTolerance + relativeTolerance * |a|.",
    )
    absolute_tolerance: float = Field(
        default=0.0, ge=0, le=1e12, description="See relativeTolerance; 0 = exact."
    )
    max_seconds: int = Field(
        default=900,
        ge=10,
        le=604800,
        description="Still fewer than minRequests compared rows after this: the rollout pauses for a person "
        "(promote goes on to the steps, abort stops).",
    )


class Metric(StrEnum):
    accuracy = "accuracy"
    f1 = "f1"
    roc_auc = "roc_auc"
    rmse = "rmse"
    mae = "mae"


HIGHER_IS_BETTER = {Metric.accuracy, Metric.f1, Metric.roc_auc}


class DatasetFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


# The operator reads data sets itself, over HTTP only: never its own disk (file://), and it holds no
# credentials for s3:// or volumes for pvc://.
DATASET_URI_PATTERN = r"^https?://[^/?#]+([/?#].*)?$"
MAX_DATASET_ROWS = 100_000
DATASET_URI_MESSAGE = (
    "datasetUri must be an https:// or http:// URL: the operator reads the data set itself and cannot read "
    "file://, s3:// or pvc:// (publish it over HTTP, e.g. as a presigned URL)"
)


class EvaluationSource(StrEnum):
    dataset = "dataset"
    feedback = "feedback"


# Figures modelserve computes from late labels (roc_auc would need the probabilities of every labelled row).
FEEDBACK_METRICS = (Metric.accuracy, Metric.f1, Metric.rmse, Metric.mae)
MIN_DATASET_INTERVAL_SECONDS = 60


def _dataset_uri_field(required: bool) -> Any:
    return Field(
        default=... if required else None,
        description="CSV (or Parquet) with features and a label column, read by the operator: an https:// "
        "or http:// URL (no redirects; loopback, link-local and platform-blocked addresses are refused).",
        min_length=1,
        max_length=2048,
        json_schema_extra=validations(rule(f"self.matches('{DATASET_URI_PATTERN}')", DATASET_URI_MESSAGE)),
    )


def _label_column_field(required: bool) -> Any:
    return Field(
        default=... if required else None,
        description="Column holding the true label.",
        min_length=1,
        max_length=256,
    )


class _Scored(ApiModel):
    """What every judgement on labelled data shares: the metric, its threshold and the data set's shape."""

    dataset_format: DatasetFormat | None = Field(
        default=None, description="csv or parquet; from the suffix when omitted."
    )
    metric: Metric = Field(
        description="accuracy, f1, roc_auc (higher is better), rmse or mae (lower is better)."
    )
    threshold: float = Field(
        description="Score the model must reach (>= for accuracy/f1/roc_auc, <= for rmse/mae)."
    )
    max_rows: int = Field(
        default=10000,
        ge=1,
        le=MAX_DATASET_ROWS,
        description=f"Rows used at most (at most {MAX_DATASET_ROWS:,}: more would not fit the check's time "
        "budget, and every rollout would abort).",
    )

    @field_validator("max_rows", mode="before")
    @classmethod
    def _at_most_the_cap(cls, value: Any) -> Any:
        # Objects stored before the CRD maximum keep working, read as the maximum.
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_DATASET_ROWS:
            return MAX_DATASET_ROWS
        return value

    @field_validator("dataset_uri", check_fields=False)
    @classmethod
    def _readable_by_the_operator(cls, uri: str | None) -> str | None:
        if uri is not None and not re.match(DATASET_URI_PATTERN, uri):
            raise ValueError(DATASET_URI_MESSAGE)
        return uri


class Evaluation(_Scored):
    """Labelled data sent to a model server; a scikit-learn metric is computed from the answers."""

    dataset_uri: str = _dataset_uri_field(required=True)
    label_column: str = _label_column_field(required=True)


class QualityGate(Evaluation):
    max_regression: float | None = Field(
        default=None,
        ge=0,
        description="Champion/challenger: the candidate may be worse than the active model on the same rows "
        "by at most this much. Omitted = only the absolute threshold.",
    )


_FEEDBACK = "has(self.source) && self.source == 'feedback'"


class MonitoringEvaluation(_Scored):
    """The live model judged on a labelled data set the operator reads, or on the labels clients send back."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                f"({_FEEDBACK}) || (has(self.datasetUri) && has(self.labelColumn))",
                "monitoring.evaluation.datasetUri and labelColumn are required unless source is feedback",
                reason="FieldValueRequired",
            ),
            rule(
                f"!({_FEEDBACK}) || self.metric != 'roc_auc'",
                "monitoring.evaluation.metric: with source feedback use accuracy, f1, rmse or mae (roc_auc "
                "needs every labelled row's probabilities)",
                field_path=".metric",
            ),
            rule(
                f"({_FEEDBACK}) || !has(self.intervalSeconds) || self.intervalSeconds >= "
                f"{MIN_DATASET_INTERVAL_SECONDS}",
                f"monitoring.evaluation.intervalSeconds must be at least {MIN_DATASET_INTERVAL_SECONDS} with "
                "source dataset (each evaluation reads the whole data set)",
                field_path=".intervalSeconds",
            ),
        )
    )

    source: EvaluationSource = Field(
        default=EvaluationSource.dataset,
        description="dataset: the operator sends datasetUri's rows to the live model and scores the answers. "
        "feedback: the figures modelserve computes from the labels clients send to /feedback for the live "
        "revision's prediction ids (no data set).",
    )
    dataset_uri: str | None = _dataset_uri_field(required=False)
    label_column: str | None = _label_column_field(required=False)
    min_labels: int = Field(
        default=100,
        ge=1,
        le=1_000_000,
        description="source feedback: labelled rows the live revision needs before it is judged (fewer is "
        "inconclusive).",
    )
    interval_seconds: int = Field(
        default=3600,
        ge=10,
        le=2_592_000,
        description=f"How often the live model is evaluated (at least {MIN_DATASET_INTERVAL_SECONDS} with "
        "source dataset).",
    )
    rollback_on_failure: bool = Field(
        default=False,
        description="Roll back to the colour this revision replaced at its promotion while that colour is "
        "warm (scaleDownDelaySeconds) and Ready; otherwise (later, or a revision an abort, rollback or "
        "revert made active) a failure makes the ModelDeployment Degraded with a RollbackUnavailable Event.",
    )

    @model_validator(mode="after")
    def _source_rules(self) -> MonitoringEvaluation:
        if self.source == EvaluationSource.feedback:
            if self.metric not in FEEDBACK_METRICS:
                raise ValueError(
                    "monitoring.evaluation.metric: with source feedback use accuracy, f1, rmse or mae "
                    "(roc_auc needs every labelled row's probabilities)"
                )
            return self
        if self.dataset_uri is None or self.label_column is None:
            raise ValueError(
                "monitoring.evaluation.datasetUri and labelColumn are required unless source is feedback"
            )
        if self.interval_seconds < MIN_DATASET_INTERVAL_SECONDS:
            raise ValueError(
                f"monitoring.evaluation.intervalSeconds must be at least {MIN_DATASET_INTERVAL_SECONDS} with "
                "source dataset (each evaluation reads the whole data set)"
            )
        return self

    def dataset_evaluation(self) -> Evaluation:
        """The data-set judgement (source dataset: both fields are set, the validator saw to it)."""
        return Evaluation(
            dataset_uri=self.dataset_uri or "",
            label_column=self.label_column or "",
            dataset_format=self.dataset_format,
            metric=self.metric,
            threshold=self.threshold,
            max_rows=self.max_rows,
        )


class ParentRef(ApiModel):
    name: DNSSubdomain = Field(description="Gateway name.")
    namespace: DNSLabel | None = Field(
        default=None, description="Gateway namespace; the route's when omitted."
    )
    section_name: str | None = Field(default=None, description="Listener name.", max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535, description="Listener port.")


class HeaderMatch(ApiModel):
    name: str = Field(
        description="Header that selects users for the candidate.", min_length=1, max_length=256
    )
    value: str = Field(description="Value to match.", min_length=1, max_length=4096)
    type: str = Field(
        default="Exact",
        description="Exact or RegularExpression (the expression must compile).",
        json_schema_extra={"enum": ["Exact", "RegularExpression"]},
    )

    @model_validator(mode="after")
    def _expression_compiles(self) -> HeaderMatch:
        # A broken expression would be accepted here and refused by the Gateway mid-rollout.
        if self.type == "RegularExpression":
            try:
                re.compile(self.value)
            except re.error as err:
                raise ValueError(
                    f"trafficRouting.gatewayAPI.headerMatch.value is not a regular expression: {err}"
                ) from None
        return self


# Character classes, not backslashes: the pattern is also a CEL string literal.
HOSTNAME_PATTERN = r"^([*][.])?[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_HOSTNAME_MESSAGE = (
    "rollout.trafficRouting.gatewayAPI.hostnames: each must be a lower-case DNS name, optionally starting "
    "with '*.', without a port or an IP address"
)


class GatewayAPIRouting(ApiModel):
    parent_refs: list[ParentRef] = Field(
        description="Gateways the HTTPRoute attaches to.", min_length=1, max_length=16
    )
    hostnames: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list,
        description="Hostnames the HTTPRoute serves (DNS names, lower case; a leading '*.' for a wildcard).",
        max_length=16,
        json_schema_extra=validations(
            rule(f"self.all(h, h.matches('{HOSTNAME_PATTERN}'))", _HOSTNAME_MESSAGE)
        ),
    )
    header_match: HeaderMatch | None = Field(
        default=None, description="Requests with this header always go to the candidate during a rollout."
    )

    @field_validator("hostnames")
    @classmethod
    def _hostnames_mirror_cel(cls, hostnames: list[str]) -> list[str]:
        if any(not re.match(HOSTNAME_PATTERN, h) for h in hostnames):
            raise ValueError(_HOSTNAME_MESSAGE)
        return hostnames


class TrafficRouting(ApiModel):
    gateway_api: GatewayAPIRouting | None = Field(
        default=None,
        alias="gatewayAPI",
        description="Exact weights through a Gateway API HTTPRoute the operator owns. "
        "Omitted = Service-based "
        "(selector switch; steps approximated by the replica ratio).",
    )


class Rollout(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "!has(self.steps) || (self.steps.map(s, s.weight).isSorted() && "
                "self.steps.all(a, self.steps.exists_one(b, b.weight == a.weight)))",
                "rollout.steps weights must be strictly increasing, e.g. 10, 50",
                field_path=".steps",
            )
        )
    )

    strategy: str = Field(
        default="BlueGreen", description="Only BlueGreen.", json_schema_extra={"enum": ["BlueGreen"]}
    )
    steps: list[RolloutStep] = Field(
        default_factory=list, description="Traffic steps before 100%; empty = switch at once.", max_length=10
    )
    smoke: Smoke | None = Field(default=None, description="Requests sent to the preview before any traffic.")
    quality_gate: QualityGate | None = Field(
        default=None, description="Labelled-data check before any traffic."
    )
    shadow: Shadow | None = Field(
        default=None,
        description="Copy a share of live requests to the candidate before any traffic step and compare its "
        "answers with the active model's (after smoke and quality gate).",
    )
    analysis: Analysis | None = Field(default=None, description="Error-rate and latency checks during steps.")
    auto_promote: bool = Field(
        default=True, description="Promote after the last step; false = wait for `promote`."
    )
    scale_down_delay_seconds: int = Field(
        default=30,
        ge=0,
        le=86400,
        description="How long the previous colour stays warm for instant rollback.",
    )
    progress_deadline_seconds: int = Field(
        default=600,
        ge=10,
        le=86400,
        description="A candidate not Ready within this is aborted with the cause.",
    )
    history_limit: int = Field(default=10, ge=1, le=50, description="Rollouts kept in status.history.")
    traffic_routing: TrafficRouting | None = Field(default=None, description="How traffic is split.")

    @model_validator(mode="after")
    def _mirror_cel(self) -> Rollout:
        weights = [step.weight for step in self.steps]
        if any(b <= a for a, b in pairwise(weights)):
            raise ValueError("rollout.steps weights must be strictly increasing, e.g. 10, 50")
        return self


class ServiceMonitorSpec(ApiModel):
    enabled: bool = Field(default=False, description="Create a ServiceMonitor (if its CRD is installed).")
    interval: str = Field(
        default="30s", description="Scrape interval.", pattern=r"^[0-9]+(ms|s|m|h)$", max_length=16
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Extra labels, e.g. for the Prometheus serviceMonitorSelector.",
        json_schema_extra={"maxProperties": 32},
    )


# The reference is fetched by the pods' init container (never by the operator): the schemes it fetches.
DRIFT_URI_PATTERN = r"^(https?://[^/?#]+/|s3://[^/?#]+/)[^?#]*[^/?#]([?#].*)?$"
DRIFT_URI_MESSAGE = (
    "monitoring.drift.referenceUri must be https://host/path, http://host/path or s3://bucket/key naming a "
    "CSV file (the pods' init container fetches it)"
)
MAX_DRIFT_FEATURES = 32  # modelserve's MODELSERVE_DRIFT_MAX_FEATURES default: bins are exported per feature
DRIFT_SHA256_MESSAGE = "monitoring.drift.sha256 must be 64 lowercase hexadecimal characters (sha256sum)"
DRIFT_FEATURES_MESSAGE = "monitoring.drift.features must not name a feature twice"


class Drift(ApiModel):
    """Drift of the inputs and the predicted classes: each pod compares its last rows with a reference data
    set (population stability index per feature); the operator shows the top features in status."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "!has(self.features) || self.features.all(f, self.features.exists_one(g, g == f))",
                DRIFT_FEATURES_MESSAGE,
                field_path=".features",
            ),
        )
    )

    reference_uri: str = Field(
        description="CSV of reference rows (a header row naming the model's features), e.g. a sample of the "
        "training data: https://, http:// or s3:// (with model.credentials when the model's store needs "
        "them). Fetched by the pods' init container and checked against sha256; a reference that cannot be "
        "fetched leaves serving as it is and sets the DriftMonitored condition to False.",
        min_length=1,
        max_length=2048,
        json_schema_extra=validations(rule(f"self.matches('{DRIFT_URI_PATTERN}')", DRIFT_URI_MESSAGE)),
    )
    sha256: str = Field(
        description="SHA-256 (hex) of the reference file; the fetch refuses any other content.",
        min_length=64,
        max_length=64,
        json_schema_extra=validations(rule("self.matches('^[a-f0-9]{64}$')", DRIFT_SHA256_MESSAGE)),
    )
    features: list[Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^,]+$")]] = Field(
        default_factory=list,
        description=f"Features to track (at most {MAX_DRIFT_FEATURES}); empty = every feature of the model "
        f"(then a model with more than {MAX_DRIFT_FEATURES} features tracks none). Classifiers also track "
        "their predicted classes (feature `predicted_class`).",
        max_length=MAX_DRIFT_FEATURES,
    )
    threshold: float = Field(
        default=0.25,
        gt=0,
        le=100,
        description="Population stability index above which a feature drifts (0.1: worth a look, 0.25: a "
        "different population). Crossing it emits a DriftDetected Event.",
    )
    window_rows: int = Field(
        default=1000,
        ge=10,
        le=1_000_000,
        description="Rows each pod keeps in its rolling window; a verdict waits for a full window's rows.",
    )
    interval_seconds: int = Field(
        default=60, ge=10, le=86400, description="How often the operator reads the pods' drift figures."
    )

    @model_validator(mode="after")
    def _mirror_cel(self) -> Drift:
        if not re.match(DRIFT_URI_PATTERN, self.reference_uri):
            raise ValueError(DRIFT_URI_MESSAGE)
        if not re.fullmatch(r"[a-f0-9]{64}", self.sha256):
            raise ValueError(DRIFT_SHA256_MESSAGE)
        if len(set(self.features)) != len(self.features):
            raise ValueError(DRIFT_FEATURES_MESSAGE)
        return self


class Monitoring(ApiModel):
    evaluation: MonitoringEvaluation | None = Field(
        default=None, description="Regular evaluation of the live model."
    )
    drift: Drift | None = Field(
        default=None, description="Drift of the inputs and predictions against a reference data set."
    )
    service_monitor: ServiceMonitorSpec | None = Field(
        default=None, description="Prometheus Operator scraping."
    )


_FEEDBACK_NEEDS_KEY = (
    "monitoring.evaluation.source feedback needs security.signingKeySecretRef: every pod must sign and "
    "verify prediction ids with the same key"
)


class ModelDeploymentSpec(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=validations(
            rule(
                "!has(self.monitoring) || !has(self.monitoring.evaluation) || "
                "!has(self.monitoring.evaluation.source) || self.monitoring.evaluation.source != 'feedback' "
                "|| (has(self.security) && has(self.security.signingKeySecretRef))",
                _FEEDBACK_NEEDS_KEY,
                field_path=".security",
                reason="FieldValueRequired",
            ),
        )
    )

    model: ModelSource = Field(description="The model to serve.")
    replicas: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Serving pods. Leave out when autoscaling is set: "
        "the HPA owns it via the scale subresource.",
    )
    resources: Resources | None = Field(
        default=None, description="CPU, memory and extended resources (e.g. GPUs) per server pod."
    )
    autoscaling: Autoscaling | None = Field(default=None, description="HorizontalPodAutoscaler on CPU.")
    server: Server = Field(
        default_factory=Server, description="Server process settings.", json_schema_extra=_object_default()
    )
    service_account_name: DNSSubdomain | None = Field(
        default=None,
        description="ServiceAccount the serving pods run under (for IRSA or Workload Identity), labelled "
        "`modeldeploy.io/usage: model-pods`; its token is mounted only then. The operator never creates or "
        "edits it. Default: the namespace's `default` account, with no token mounted.",
    )
    security: Security | None = Field(default=None, description="API keys and rate limit.")
    logging: Logging = Field(
        default_factory=Logging, description="Request logging.", json_schema_extra=_object_default()
    )
    rollout: Rollout = Field(
        default_factory=Rollout, description="How new revisions go live.", json_schema_extra=_object_default()
    )
    monitoring: Monitoring | None = Field(
        default=None, description="Metrics scraping, live-model evaluation and drift."
    )

    @model_validator(mode="after")
    def _feedback_has_a_signing_key(self) -> ModelDeploymentSpec:
        evaluation = self.monitoring.evaluation if self.monitoring else None
        feedback = evaluation is not None and evaluation.source == EvaluationSource.feedback
        if feedback and (self.security is None or self.security.signing_key_secret_ref is None):
            raise ValueError(_FEEDBACK_NEEDS_KEY)
        return self
