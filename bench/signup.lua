-- wrk script for POST /subscriptions: a form-encoded signup with a new
-- address on every request (unique per thread and per run), so every request
-- does the full work: insert the reader, the consent event, the token and
-- the outbox row.

local counter = 0
-- HONEYPOT=1: fill the honeypot, so Tidings parses and answers each request
-- as usual but stores and sends nothing: the cost of HTTP alone.
local trap = os.getenv("HONEYPOT") == "1" and "&website=x" or ""
local threads = {}
local run = tostring(os.time()) .. tostring(math.random(100000, 999999))

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
  counter = counter + 1
  local body = "email=r" .. run .. "-" .. tid .. "-" .. counter ..
    "%40bench.example&name=Reader+" .. counter .. trap
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local non2xx = summary.errors.status
  io.write(string.format("RESULT requests=%d seconds=%.2f rps=%.0f p50_ms=%.2f p99_ms=%.2f non2xx=%d sockerr=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    non2xx, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
