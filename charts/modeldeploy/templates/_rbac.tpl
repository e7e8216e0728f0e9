{{/*
Rules the operator needs in every namespace it serves, as one list so the ClusterRole (all namespaces)
and the per-namespace Roles (watchNamespaces) can never drift apart.
*/}}
{{- define "modeldeploy.namespacedRules" -}}
# Framework: kopf posts Events about handler failures; the operator posts its own rollout Events.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
# Application: watch ModelDeployments and patch their metadata (finalizer); never update the spec a user owns.
- apiGroups: [modeldeploy.io]
  resources: [modeldeployments]
  verbs: [get, list, watch, patch]
# Application: status is computed by the operator (and rolloutControl acknowledged there).
- apiGroups: [modeldeploy.io]
  resources: [modeldeployments/status]
  verbs: [get, patch]
# Application: the children of a ModelDeployment, written with server-side apply and garbage-collected
# by owner references (delete is for colours and routes that a spec change removes).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, update, patch, delete]
# Application: optional children, only when the user asks for them (ServiceMonitor, Gateway API routing).
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, create, update, patch, delete]
# Application: read-only views of serving pods (failure causes, readiness).
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
# Application: check that referenced API-key Secrets and model PVCs exist (never list, never read others).
- apiGroups: [""]
  resources: [secrets, persistentvolumeclaims]
  verbs: [get]
{{- end }}

{{/* Cluster-scoped reads every mode needs. */}}
{{- define "modeldeploy.clusterRules" -}}
# Framework: kopf discovers resources through CRDs; the operator checks its CRD keeps status.kopf.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
# Framework: kopf follows namespaces to (re)start watches in the ones it serves.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
{{- end }}
