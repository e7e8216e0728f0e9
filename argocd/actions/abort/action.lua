-- Argo CD resource action abort (traffic back to the active colour, or roll back right after promotion): the same request as
-- `kubectl modeldeploy abort`, written to status.rolloutControl. Argo CD sends the status part of an
-- action's change to the status subresource (see docs/gitops.md). The requestId names the object version the
-- button was pressed on: the operator acts once per id, so pressing twice on one version is one request.
local request_id
if obj.metadata.resourceVersion ~= nil and obj.metadata.resourceVersion ~= "" then
  request_id = "argocd-rv" .. obj.metadata.resourceVersion
else
  -- Argo CD's sandbox has no global os: its safe os module (time and date only) comes through require.
  local os = require("os")
  request_id = "argocd-" .. os.date("!%Y%m%dT%H%M%SZ")
end
if obj.status == nil then
  obj.status = {}
end
obj.status.rolloutControl = {action = "abort", requestId = request_id}
return obj
