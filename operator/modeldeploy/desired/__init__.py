"""modeldeploy.desired: PURE decisions (spec -> manifests, rollout steps, status); no kopf/kubernetes/httpx.

Modules and their public functions:
- ``naming``: ``child_name``, ``deployment_name``, ``service_names``, ``labels``, ``selector``,
  ``owner_reference``, ``object_meta``, ``inherited_labels``, ``LABEL_NAME``, ``LABEL_COLOR``,
  ``LABEL_REVISION``
- ``params``: ``BuildParams`` (operator settings the builders need)
- ``revision``: ``revision_of(spec, params)``
- ``deployment``: ``build_deployment(md, spec, color, revision, replicas, params)``, ``model_location``,
  ``probes``
- ``children``: ``build_services``, ``build_hpa``, ``build_pdb``, ``build_service_monitor``,
  ``build_httproute``, ``service_url``
- ``status``: ``compute_status(...)``, ``pod_failure(pod)``, ``color_failure(pods)``, ``set_condition``,
  ``condition_events``, ``status_patch(old, new)``
- ``compare``: ``plan_apply(desired, existing, ignore=...) -> ApplyDecision`` (create / update / unchanged)
- ``rollout``: ``plan_rollout_step(spec, revision, status, observed, now)``, ``plan_world(...)``,
  ``replica_split``, ``RolloutObservation``, ``ColorObservation`` (promote/abort/retry: status.rolloutControl)
"""
