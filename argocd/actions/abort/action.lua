-- Argo CD resource action "abort": the same request as `kubectl modeldeploy abort`. The operator acts once per
-- requestId; Argo CD applies status changes of an action through the status subresource.
if obj.status == nil then
  obj.status = {}
end
obj.status.rolloutControl = {action = "abort", requestId = "argocd-" .. os.date("!%Y%m%dT%H%M%SZ")}
return obj
