-- GET /v1/citizens/{id} over random IDs; PIPELINE=n sends n requests at once
-- (wrk counts every response); QUERY=fields=id,sex appends a query string.
-- The bare server gets the very same requests.
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local rows = common.load()
local headers = common.headers()
headers["Content-Type"] = nil
local depth = tonumber(os.getenv("PIPELINE") or "1")
local query = os.getenv("QUERY")
local suffix = (query and query ~= "") and ("?" .. query) or ""
local reqs = {}
for i, row in ipairs(rows) do
  reqs[i] = wrk.format("GET", "/v1/citizens/" .. row.id .. suffix, headers)
end
common.seed()
local n = #reqs

request = function()
  if depth == 1 then
    return reqs[math.random(n)]
  end
  local parts = {}
  for i = 1, depth do
    parts[i] = reqs[math.random(n)]
  end
  return table.concat(parts)
end
