"""Operator-wide settings the pure builders need, as one frozen value (the settings module fills it).

Public: ``BuildParams``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuildParams:
    default_image: str = "modelserve:latest"  # the bundled modelserve image (operator setting)
    image_pull_policy: str | None = None
    cluster_domain: str = "cluster.local"
    port: int = 8080
    pre_stop_seconds: int = 5  # endpoints are removed while the pod still answers
    termination_grace_seconds: int = 45  # preStop + modelserve's drain + in-flight requests
    revision_history_limit: int = 2
