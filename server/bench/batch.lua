-- POST /v1/citizens:batchGet ({"ids": [1000 random IDs]}) or, with
-- MODE=verify, POST /v1/citizens:batchVerify with 1000 claims
-- {id, full_name, date_of_birth}. FIELDS narrows batchGet's projection.
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local rows = common.load()
local headers = common.headers()
local mode = os.getenv("MODE") or "get"
local size = tonumber(os.getenv("BATCH") or "1000")
local fields = os.getenv("FIELDS")
common.seed()

-- A batch names each subject once (the server answers 400 otherwise).
local function distinct_rows()
  local picked, seen = {}, {}
  while #picked < size do
    local r = rows[math.random(#rows)]
    if not seen[r.id] then
      seen[r.id] = true
      picked[#picked + 1] = r
    end
  end
  return picked
end

local reqs = {}
for b = 1, 32 do
  local items = {}
  for i, r in ipairs(distinct_rows()) do
    if mode == "verify" then
      items[i] = string.format('{"id":"%s","full_name":"%s","date_of_birth":"%s"}', r.id, r.name, r.dob)
    else
      items[i] = '"' .. r.id .. '"'
    end
  end
  local body
  if mode == "verify" then
    body = '{"requests":[' .. table.concat(items, ",") .. ']}'
    reqs[b] = wrk.format("POST", "/v1/citizens:batchVerify", headers, body)
  else
    local extra = fields and (',"fields":"' .. fields .. '"') or ""
    body = '{"ids":[' .. table.concat(items, ",") .. ']' .. extra .. '}'
    reqs[b] = wrk.format("POST", "/v1/citizens:batchGet", headers, body)
  end
end

request = function()
  return reqs[math.random(#reqs)]
end

done = function(summary, latency, requests)
  local non2xx = summary.errors.status
  if non2xx > 0 then
    io.stderr:write(string.format("WARNING: %d non-2xx responses\n", non2xx))
  end
end
