-- Shared by the wrk scripts of bench/http.sh: loads sample records
-- (`id<TAB>full_name<TAB>date_of_birth`, from the sample-ids example) from
-- $IDS_FILE and seeds each wrk thread differently.
local M = {}

function M.load()
  local rows = {}
  for line in io.lines(os.getenv("IDS_FILE")) do
    local id, name, dob = line:match("^(%d+)\t([^\t]*)\t(%S+)")
    if id then rows[#rows + 1] = { id = id, name = name, dob = dob } end
  end
  assert(#rows > 0, "no rows in IDS_FILE")
  return rows
end

function M.headers()
  return {
    ["Authorization"] = "Bearer " .. (os.getenv("DANCU_KEY") or "dancu-demo-key"),
    ["Content-Type"] = "application/json",
  }
end

local counter = 0
function M.seed()
  counter = counter + 1
  math.randomseed(os.time() * 1000 + counter * 7919 + math.floor(os.clock() * 1e6))
end

-- wrk's `done`: says when some answers were not 2xx (the rates then
-- measure errors).
function M.done(summary)
  local non2xx = summary.errors.status
  if non2xx > 0 then
    io.stderr:write(string.format("WARNING: %d non-2xx responses\n", non2xx))
  end
end

return M
