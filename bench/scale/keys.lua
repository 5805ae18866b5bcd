-- wrk script for bench/scale.py: bench/post.lua's chat completion, each request with the next key of
-- BENCH_KEYS_FILE (one key a line), so the gateway sees as many distinct keys as the file holds.
local keys = {}
for line in io.lines(os.getenv("BENCH_KEYS_FILE")) do
  if line ~= "" then keys[#keys + 1] = line end
end
local body = '{"model":"' .. (os.getenv("BENCH_MODEL") or "bench") ..
  '","messages":[{"role":"user","content":"Say hello in one short sentence."}]}'
local headers = { ["Content-Type"] = "application/json" }
local position = 0

-- Each wrk thread starts at its own place in the list, so two threads do not send the same keys in step.
function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  position = math.random(#keys)
end

function request()
  position = position % #keys + 1
  headers["Authorization"] = "Bearer " .. keys[position]
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  io.write(string.format("RESULT rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f errors=%d non2xx=%d requests=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, summary.errors.status, summary.requests))
end
