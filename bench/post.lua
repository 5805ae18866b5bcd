-- ../shared/bench/post.lua plus the number of completed requests, which the usage-record check in run.sh needs.
-- The RESULT line gains requests=N. With BENCH_TALLY set, every wrk run also appends its count to that file:
-- bench.sh discards the warm-up's output, but the warm-up's requests leave usage records too.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "sk-none")
wrk.body = '{"model":"' .. (os.getenv("BENCH_MODEL") or "mock-gpt") .. '","messages":[{"role":"user","content":"Say hello in one short sentence."}]' .. (os.getenv("BENCH_STREAM") == "1" and ',"stream":true' or '') .. '}'
done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f errors=%d non2xx=%d requests=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50)/1000, latency:percentile(90)/1000,
    latency:percentile(99)/1000, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.requests))
  local tally = os.getenv("BENCH_TALLY")
  if tally and tally ~= "" then
    local file = assert(io.open(tally, "a"))
    file:write(string.format("model=%s stream=%s requests=%d\n", os.getenv("BENCH_MODEL") or "",
      os.getenv("BENCH_STREAM") or "0", summary.requests))
    file:close()
  end
end
