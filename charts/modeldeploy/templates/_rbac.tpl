{{/*
Rules the operator needs in every namespace it serves, as one list so the ClusterRole (all namespaces)
and the per-namespace Roles (watchNamespaces) can never drift apart.
*/}}
{{- define "modeldeploy.namespacedRules" -}}
# Framework: kopf posts Events about handler failures; the operator posts its own rollout Events (core v1
# Events for both; nothing writes events.k8s.io).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Application: watch ModelDeployments, and read one a pass has no body for yet. Never patch or update
# them: their spec and metadata belong to users; kopf keeps its retry state in status.kopf (the operator
# refuses to start on a CRD without it) and adds no finalizer.
- apiGroups: [modeldeploy.io]
  resources: [modeldeployments]
  verbs: [get, list, watch]
# Application: status is computed by the operator (and rolloutControl acknowledged there).
- apiGroups: [modeldeploy.io]
  resources: [modeldeployments/status]
  verbs: [patch]
# Application: the children of a ModelDeployment, written with server-side apply (a patch; the first
# one of an object also needs create) after a get that checks the name is not taken; Deployments and
# Services are never deleted by the operator (garbage collection does it through owner references).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch]
# Application: the shadow phase's settings, one ConfigMap per ModelDeployment that asks for a shadow phase,
# mounted into its pods and rewritten (never deleted) to switch the copy on or off.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch]
# Application: an HPA or PDB is deleted when a spec change no longer wants it (autoscaling removed,
# replicas down to 1).
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
# Application: optional children, only when the user asks for them (ServiceMonitor, Gateway API routing);
# watched, and deleted when no longer wanted.
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, create, patch, delete]
# Application: serving pods, watched (failure causes, readiness); never read one by one.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
# Application: read the API-key, image pull and model-credentials Secrets, model PVCs and the
# ServiceAccount a ModelDeployment names, to check they are marked for that use (never list, never read
# others; a ServiceAccount is never created or edited).
- apiGroups: [""]
  resources: [secrets, persistentvolumeclaims, serviceaccounts]
  verbs: [get]
{{- end }}

{{/* Cluster-scoped reads every mode needs. */}}
{{- define "modeldeploy.clusterRules" -}}
# Framework: kopf follows CRDs to discover resources; the operator checks its CRD keeps status.kopf and
# whether the optional children's CRDs are installed.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
{{- if .Values.watchNamespaces }}
# Framework: kopf follows namespaces to (re)start watches in the ones it serves (cluster-wide it has no need).
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}
{{- end }}
