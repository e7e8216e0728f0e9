-- Argo CD health check for modeldeploy.io/ModelDeployment (Lua 5.1, as gopher-lua runs it).
-- Healthy: the active revision serves and nothing moves. Progressing: the operator has not seen the
-- latest generation yet, or a rollout moves. Suspended: a rollout waits for `promote`.
-- Degraded: Degraded or Failed phase, with the operator's message.

local function find_condition(status, wanted)
  if status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == wanted then
      return condition
    end
  end
  return nil
end

local function message_of(condition, fallback)
  if condition ~= nil and condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  return fallback
end

local hs = {}
local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to pick up the ModelDeployment"
  return hs
end

-- A status written for an older spec says nothing about the current one.
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = find_condition(status, "Ready")
local degraded = find_condition(status, "Degraded")
local rollout = status.rollout or {}
local phase = status.phase

if phase == "Failed" then
  hs.status = "Degraded"
  hs.message = message_of(ready, "No revision can serve")
  return hs
end

if phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = message_of(degraded, message_of(ready, "ModelDeployment is degraded"))
  return hs
end

if phase == "Paused" or rollout.phase == "Paused" then
  hs.status = "Suspended"
  local what = "Rollout"
  if rollout.revision ~= nil then
    what = "Rollout of revision " .. rollout.revision
  end
  hs.message = message_of(rollout, what .. " waits for promotion") ..
    " (promote: kubectl modeldeploy promote " .. obj.metadata.name .. ")"
  return hs
end

if phase == "Healthy" and ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message_of(ready, "Serving")
  return hs
end

hs.status = "Progressing"
if rollout.message ~= nil and rollout.message ~= "" then
  hs.message = rollout.message
else
  hs.message = message_of(ready, "Phase " .. tostring(phase))
end
return hs
