-- wrk script: POST a request with a fresh Idempotency-Key each time.
counter = 0
request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = "wrk-" .. tostring(os.time()) .. "-" .. tostring(math.random(1, 1e9)) .. "-" .. counter
  return wrk.format("POST", nil, nil, wrk.body)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.3f %.3f %.3f\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
