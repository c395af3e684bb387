-- wrk script: each request takes the next line of its thread's file
-- (`<Stripe-Signature>\t<body>`), so every request is a distinct, freshly signed event.
-- usage: wrk ... -s bench/wrk_replay.lua URL -- BODIES_DIR
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  file = assert(io.open(args[1] .. "/bodies-" .. id .. ".txt", "r"))
  wrapped = 0
end

function request()
  local line = file:read("*l")
  if not line then
    file:seek("set", 0)
    wrapped = wrapped + 1
    line = file:read("*l")
  end
  local tab = line:find("\t", 1, true)
  return wrk.format("POST", nil, {
    ["Stripe-Signature"] = line:sub(1, tab - 1),
    ["Content-Type"] = "application/json; charset=utf-8",
  }, line:sub(tab + 1))
end

function done(summary, latency, requests)
  local wraps = 0
  for _, t in ipairs(threads) do wraps = wraps + (t:get("wrapped") or 0) end
  local non2xx = summary.errors.status
  io.write(string.format(
    '{"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"non_2xx":%d,"socket_errors":%d,"wrapped":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, non2xx,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, wraps))
end
