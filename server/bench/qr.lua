-- POST /v1/qr:verify with a chip card's QR text built from a sample record
-- or, with MODE=verify, POST /v1/citizens:verify claiming the same card
-- fields (id, full_name, date_of_birth, sex, legacy_id when the card has
-- one, permanent_residence): equal work, so the two rates compare the
-- routes. Rows come from sample-ids (all six columns).
package.path = os.getenv("BENCH_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local headers = common.headers()
local mode = os.getenv("MODE") or "qr"
common.seed()

local function ddmmyyyy(iso)
  local y, m, d = iso:match("^(%d%d%d%d)-(%d%d)-(%d%d)$")
  return d .. m .. y
end

local reqs = {}
for line in io.lines(os.getenv("IDS_FILE")) do
  local id, name, dob, sex, legacy, address =
    line:match("^(%d+)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$")
  if id and address ~= "" and #reqs < 20000 then
    local body
    if mode == "verify" then
      local legacy_claim = legacy ~= "" and string.format(',"legacy_id":"%s"', legacy) or ""
      body = string.format(
        '{"id":"%s","full_name":"%s","date_of_birth":"%s","sex":"%s"%s,"permanent_residence":"%s"}',
        id, name, dob, sex, legacy_claim, address)
      reqs[#reqs + 1] = wrk.format("POST", "/v1/citizens:verify", headers, body)
    else
      local word = sex == "male" and "Nam" or "Nữ"
      local qr = table.concat({ id, legacy, name, ddmmyyyy(dob), word, address, "01072021" }, "|")
      body = string.format('{"qr":"%s"}', qr)
      reqs[#reqs + 1] = wrk.format("POST", "/v1/qr:verify", headers, body)
    end
  end
end
assert(#reqs > 0, "no rows with an address in IDS_FILE (sample-ids prints six columns)")

request = function()
  return reqs[math.random(#reqs)]
end

done = common.done
