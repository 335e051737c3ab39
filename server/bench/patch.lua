-- PATCH /v1/citizens/{id} (a move: a new current_residence) over random IDs
-- of the snapshot, with the registrar's X-Change-Reason: durable writes.
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local rows = common.load()
local headers = common.headers()
headers["X-Change-Reason"] = "bench move"
common.seed()
local n = #rows
local count = 0

request = function()
  count = count + 1
  local row = rows[math.random(n)]
  local body = '{"current_residence":"Số ' .. count .. ' Đường Lê Lợi, Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh"}'
  return wrk.format("PATCH", "/v1/citizens/" .. row.id, headers, body)
end
