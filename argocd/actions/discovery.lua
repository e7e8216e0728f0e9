-- Argo CD resource actions for ModelDeployment: which buttons are enabled for the current status.
-- promote: a rollout is in flight or paused; promote-full: in flight and not already promoting;
-- abort: a rollout is in flight or just promoted; retry: the last rollout was aborted.
local in_flight = {
  WaitingForCandidate = true, SmokeTesting = true, QualityGate = true, Shadowing = true, Stepping = true,
  Paused = true, Promoting = true,
}
local rollout_phase = ""
if obj.status ~= nil and obj.status.rollout ~= nil and obj.status.rollout.phase ~= nil then
  rollout_phase = obj.status.rollout.phase
end

local actions = {}
actions["promote"] = {["disabled"] = not in_flight[rollout_phase]}
actions["promote-full"] = {["disabled"] = not in_flight[rollout_phase] or rollout_phase == "Promoting"}
actions["abort"] = {["disabled"] = not (in_flight[rollout_phase] or rollout_phase == "PostPromotion")}
actions["retry"] = {["disabled"] = rollout_phase ~= "Aborted"}
return actions
