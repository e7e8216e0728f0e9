"""modeldeploy.desired: PURE decisions (spec -> manifests, rollout steps, status); no kopf/kubernetes/httpx.

Modules and their public functions:
- ``naming``: ``child_name``, ``deployment_name``, ``service_names``, ``labels``, ``selector``,
  ``owner_reference``, ``object_meta``, ``inherited_labels``, ``LABEL_NAME``, ``LABEL_COLOR``,
  ``LABEL_REVISION``
- ``params``: ``BuildParams`` (operator settings the builders need)
- ``revision``: ``revision_of(spec)``
- ``deployment``: ``build_deployment(md, spec, color, revision, replicas, params)``, ``model_location``,
  ``probes``
- ``references``: ``references(spec)``, ``refusal(ref, namespace, live)`` (the Secrets and PVCs the pods
  mount: they must exist and be marked for that use)
- ``children``: ``build_services``, ``build_hpa``, ``build_pdb``, ``build_service_monitor``,
  ``build_httproute``
- ``pods``: ``pod_failure(pod)``, ``first_failure(pods)``, ``pod_ready``, ``pods_of``
- ``status``: ``observe_rollout``, ``effective_traffic``, ``status_from``, ``set_condition``,
  ``overall_phase``, ``current_status``, ``failure_status``, ``refused_status``
- ``plan`` (re-exported here): ``rollout_pass(body, spec, observed, params, now, report) -> PlannedPass``,
  ``CheckReport`` (a check's findings, an input of the pass), ``optional_children(body, spec)``,
  ``unwanted_optional_children(body, spec)``
- ``rollout``: ``plan_rollout_step(spec, revision, status, observed, now)``, ``plan_placement(...)``,
  ``replica_split``, ``RolloutObservation``, ``ColorObservation`` (promote/abort/retry: status.rolloutControl)
"""

from modeldeploy.desired.plan import (
    CheckReport,
    PlannedPass,
    optional_children,
    rollout_pass,
    unwanted_optional_children,
)
from modeldeploy.desired.references import Reference, references, refusal
from modeldeploy.desired.status import current_status, failure_status, refused_status

__all__ = [
    "CheckReport",
    "PlannedPass",
    "Reference",
    "current_status",
    "failure_status",
    "optional_children",
    "references",
    "refusal",
    "refused_status",
    "rollout_pass",
    "unwanted_optional_children",
]
