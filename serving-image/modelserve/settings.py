"""Settings from MODELSERVE_* environment variables; CLI flags carry the same names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ModelFormat = Literal["", "sklearn", "skops", "onnx", "torchscript", "tensorflow", "xgboost", "lightgbm"]


class Settings(BaseSettings):
    """Every field is MODELSERVE_<FIELD NAME UPPER> in the environment and --<field-name> on the CLI."""

    model_config = SettingsConfigDict(env_prefix="MODELSERVE_", extra="ignore", protected_namespaces=())

    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)
    # gRPC Open Inference Protocol on its own port; 0 = off. Connections are closed (GOAWAY) after
    # grpc_max_connection_age_seconds so long-lived clients reconnect and follow a Service switch.
    grpc_port: int = Field(0, ge=0, le=65535)
    grpc_max_connection_age_seconds: float = Field(300.0, gt=0)
    grpc_max_connection_age_grace_seconds: float = Field(10.0, ge=0)

    model_path: str = "/models/model"
    model_name: str = "model"
    model_version: str = "1"
    model_revision: str = ""
    model_color: Literal["", "blue", "green"] = ""
    model_format: ModelFormat = ""
    model_sha256: str = ""
    allow_unverified_pickle: bool = False
    skops_trusted_types: str = ""
    onnx_intra_op_threads: int = Field(1, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    archive_max_bytes: int = Field(10 * 1024**3, ge=1)
    archive_max_files: int = Field(10_000, ge=1)

    timeout_seconds: float = Field(10.0, gt=0)
    max_batch_size: int = Field(32, ge=1)
    max_batch_latency_ms: float = Field(2.0, ge=0)
    max_queue: int = Field(256, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1)
    max_rows: int = Field(0, ge=0)
    max_connections: int = Field(1024, ge=1)
    header_timeout_seconds: float = Field(10.0, gt=0)
    body_timeout_seconds: float = Field(30.0, gt=0)
    stall_seconds: float = Field(0.0, ge=0)
    predict_mode: Literal["auto", "inline", "thread"] = "auto"
    sklearn_fast_path: bool = True
    framework_bypass: bool = True

    api_keys_file: str = "/etc/modelserve/keys/api-keys"
    rate_limit_rps: float = Field(0.0, ge=0)
    rate_limit_burst: int = Field(0, ge=0)
    auth_failure_rps: float = Field(1.0, ge=0)
    auth_failure_burst: int = Field(10, ge=0)

    # Mounted from the ModelDeployment's shadow ConfigMap; absent or disabled = no copies.
    shadow_config_file: str = "/etc/modelserve/shadow/shadow.json"
    feedback_key_file: str = "/etc/modelserve/feedback/signing-key"
    feedback_ttl_seconds: float = Field(7 * 86400.0, gt=0)
    feedback_max_rows: int = Field(256, ge=1, le=10_000)
    feedback_window_rows: int = Field(1000, ge=1, le=1_000_000)
    feedback_seen_capacity: int = Field(100_000, ge=1, le=10_000_000)

    drift_reference_file: str = ""
    drift_features: str = ""
    drift_window_rows: int = Field(1000, ge=10, le=1_000_000)
    drift_max_features: int = Field(32, ge=1, le=256)

    log_sample_rate: float = Field(1.0, ge=0, le=1)
    log_redact_fields: str = ""
    log_payloads: bool = False

    termination_message_path: str = "/dev/termination-log"
    drain_seconds: float = Field(0.0, ge=0)
    graceful_timeout_seconds: float = Field(30.0, ge=0)
    metrics_dir: str = "/tmp/modelserve-metrics"

    @field_validator("model_sha256")
    @classmethod
    def _sha256_is_hex(cls, value: str) -> str:
        value = value.strip().lower()
        if value and (len(value) != 64 or any(c not in "0123456789abcdef" for c in value)):
            raise ValueError("must be 64 hexadecimal characters (a SHA-256 digest)")
        return value

    @field_validator("model_revision")
    @classmethod
    def _revision_fits_a_header(cls, value: str) -> str:
        # Sent as X-Model-Revision on every response: a header value must be visible ASCII.
        if len(value) > 128 or any(not 0x21 <= ord(c) <= 0x7E for c in value):
            raise ValueError("must be at most 128 visible ASCII characters (no spaces)")
        return value

    @field_validator("grpc_port")
    @classmethod
    def _grpc_port_is_its_own(cls, value: int, info: ValidationInfo) -> int:
        port = info.data.get("port")
        if value and value == port:
            raise ValueError(f"must differ from MODELSERVE_PORT ({port}); 0 turns gRPC off")
        return value

    @property
    def stall_limit_seconds(self) -> float:
        """A model call running longer fails liveness: STALL_SECONDS, else max(3 x timeout, 30 s)."""
        return self.stall_seconds or max(3 * self.timeout_seconds, 30.0)

    @property
    def api_keys_required(self) -> bool:
        """A key file named explicitly must exist at start (fail closed); the default path may be absent."""
        return bool(self.api_keys_file) and "api_keys_file" in self.model_fields_set

    @property
    def drift_feature_list(self) -> list[str]:
        return [f.strip() for f in self.drift_features.split(",") if f.strip()]

    @property
    def redact_fields(self) -> frozenset[str]:
        return frozenset(f.strip() for f in self.log_redact_fields.split(",") if f.strip())

    @property
    def trusted_skops_types(self) -> list[str]:
        return [t.strip() for t in self.skops_trusted_types.split(",") if t.strip()]

    @property
    def metric_labels(self) -> dict[str, str]:
        return {
            "model": self.model_name,
            "version": self.model_version,
            "revision": self.model_revision,
            "color": self.model_color,
        }


def misspelt_settings(environ: Mapping[str, str]) -> list[str]:
    """MODELSERVE_ variables in another letter case: pydantic-settings would read them (case-insensitive) and
    they could override the documented upper-case ones, so start-up refuses them."""
    return sorted(k for k in environ if k.upper().startswith("MODELSERVE_") and k != k.upper())
