-- Argo CD resource action "promote": the same request as `kubectl modeldeploy promote`. The operator acts once per
-- requestId; Argo CD applies status changes of an action through the status subresource.
if obj.status == nil then
  obj.status = {}
end
obj.status.rolloutControl = {action = "promote", requestId = "argocd-" .. os.date("!%Y%m%dT%H%M%SZ")}
return obj
