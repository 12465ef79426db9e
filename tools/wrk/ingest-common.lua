-- Shared by the ingest scenarios of tools/ingest-bench.sh (loaded by ingest-single.lua and
-- ingest-batch20.lua, which set the global events_per_request first).
--
-- Each request is POST /streams/bench-<n>/events with a body of events_per_request events
-- {"type":"bench.event","data":{...}} whose "data" serializes to exactly 100 bytes; expected_version
-- is left out (= any), so no request can conflict. Requests are spread over many streams: each wrk
-- thread cycles through its own `streams` names (script argument 1, default 1000), disjoint
-- between threads. Every request string is built once in init() (wrk.format), so request() is a
-- table lookup and the client spends its CPU on the sockets, not on Lua.
--
-- done() prints one machine-readable line, which the bench script parses:
--   ingest-result requests=N duration_us=N non2xx=N connect=N read=N write=N timeout=N
--                 p50_us=N p99_us=N events_per_request=N
-- non2xx is wrk's summary.errors.status (responses with status > 399; the servers send no 1xx or
-- 3xx, so it is every non-2xx answer); requests counts completed responses of any status.

local data_bytes = 100

local next_tid = 0
function setup(thread)
  -- Runs in the main Lua state, once per wrk thread, before they start.
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

-- The "data" object: a few realistic fields, padded so that its JSON text is data_bytes long.
-- nlohmann::json's dump() of it reproduces the same compact text, so each stored payload is 100 B.
local function data_json()
  local head = '{"team":"bench","status":"ready","seq":12345,"note":"'
  local tail = '"}'
  return head .. string.rep("x", data_bytes - #head - #tail) .. tail
end

function init(args)
  local n = events_per_request or 1
  local streams = tonumber(args[1]) or 1000
  local event = '{"type":"bench.event","data":' .. data_json() .. '}'
  local body
  if n == 1 then
    body = event
  else
    local list = {}
    for k = 1, n do list[k] = event end
    body = "[" .. table.concat(list, ",") .. "]"
  end
  local headers = { ["Content-Type"] = "application/json" }
  requests_by_stream = {}
  for k = 1, streams do
    local stream = "bench-" .. ((tid or 0) * streams + k - 1)
    requests_by_stream[k] = wrk.format("POST", "/streams/" .. stream .. "/events", headers, body)
  end
  request_count = streams
  request_index = 0
end

function request()
  request_index = request_index % request_count + 1
  return requests_by_stream[request_index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "ingest-result requests=%.0f duration_us=%.0f non2xx=%.0f connect=%.0f read=%.0f write=%.0f " ..
    "timeout=%.0f p50_us=%.0f p99_us=%.0f events_per_request=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), events_per_request or 1))
end
