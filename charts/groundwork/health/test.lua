-- Runs every health check in this directory against a table of sample objects.
--   lua5.1 charts/groundwork/health/test.lua
-- Prints one line per case and exits non-zero if any case fails (or a script fails to load).
local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local kinds = {"Rack", "Server", "UpstreamLink", "BorderRouter", "BlackholeRoute"}

local function cond(type_, status, reason, message)
  return {type = type_, status = status, reason = reason, message = message,
          lastTransitionTime = "2026-01-01T00:00:00Z"}
end

-- name, object, expected status, text the message must contain
local cases = {
  {"healthy", {metadata = {generation = 3}, status = {observedGeneration = 3, conditions = {
      cond("Ready", "True", "Reconciled", "All good"),
      cond("Reconciling", "False", "Reconciled", ""),
      cond("Stalled", "False", "Reconciled", "")}}},
    "Healthy", "All good"},
  {"stalled", {metadata = {generation = 2}, status = {observedGeneration = 2, conditions = {
      cond("Ready", "False", "RackNotFound", "rack r9 not found"),
      cond("Reconciling", "False", "RackNotFound", ""),
      cond("Stalled", "True", "RackNotFound", "rackRef r9: Rack not found in namespace site-a")}}},
    "Degraded", "rackRef r9: Rack not found"},
  {"stalled without message uses the reason", {metadata = {generation = 1}, status = {
      observedGeneration = 1, conditions = {cond("Stalled", "True", "OverBudget", "")}}},
    "Degraded", "OverBudget"},
  {"progressing", {metadata = {generation = 5}, status = {observedGeneration = 5, conditions = {
      cond("Ready", "False", "Progressing", "not yet"),
      cond("Reconciling", "True", "Progressing", "Inspecting hardware"),
      cond("Stalled", "False", "Progressing", "")}}},
    "Progressing", "Inspecting hardware"},
  {"stale generation", {metadata = {generation = 4}, status = {observedGeneration = 3, conditions = {
      cond("Ready", "True", "Reconciled", "All good")}}},
    "Progressing", "observe generation 4"},
  {"stale generation hides an old Stalled", {metadata = {generation = 7}, status = {
      observedGeneration = 6, conditions = {cond("Stalled", "True", "InvalidSpec", "bad")}}},
    "Progressing", "observe generation 7"},
  {"no observedGeneration yet", {metadata = {generation = 1}, status = {conditions = {
      cond("Ready", "True", "Reconciled", "All good")}}},
    "Progressing", "observe generation 1"},
  {"no status", {metadata = {generation = 1}, spec = {}},
    "Progressing", "Waiting for the controller"},
  {"conditions missing", {metadata = {generation = 1}, status = {observedGeneration = 1}},
    "Progressing", "Waiting for the Ready condition"},
  {"ready false without reconciling", {metadata = {generation = 1}, status = {
      observedGeneration = 1, conditions = {cond("Ready", "False", "Pending", "session Idle")}}},
    "Progressing", "session Idle"},
}

local failures, total = 0, 0
for _, kind in ipairs(kinds) do
  local path = dir .. "/groundwork.lua"
  local chunk, err = loadfile(path)
  if chunk == nil then
    print("FAIL " .. kind .. ": cannot load " .. path .. ": " .. tostring(err))
    failures = failures + 1
  else
    for _, case in ipairs(cases) do
      total = total + 1
      local name, obj, want_status, want_message = case[1], case[2], case[3], case[4]
      -- Argo CD hands the object to the script as the global `obj`.
      local env = setmetatable({obj = obj}, {__index = _G})
      setfenv(chunk, env)
      local ok, hs = pcall(chunk)
      local problem = nil
      if not ok then
        problem = "error: " .. tostring(hs)
      elseif type(hs) ~= "table" then
        problem = "returned " .. type(hs)
      elseif hs.status ~= want_status then
        problem = "status " .. tostring(hs.status) .. ", want " .. want_status
      elseif type(hs.message) ~= "string" or not hs.message:find(want_message, 1, true) then
        problem = "message " .. tostring(hs.message) .. ", want it to contain " .. want_message
      end
      if problem then
        failures = failures + 1
        print("FAIL " .. kind .. " / " .. name .. ": " .. problem)
      else
        print("ok   " .. kind .. " / " .. name .. " -> " .. hs.status .. ": " .. hs.message)
      end
    end
  end
end
print(string.format("%d cases, %d failed", total, failures))
if failures > 0 then
  os.exit(1)
end
