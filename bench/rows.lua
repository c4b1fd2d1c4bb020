-- wrk script: POST one iris-shaped row per request, in the body format a target expects.
-- Environment: BENCH_FORMAT (v1 | features | mlflow), BENCH_API_KEY (sent as X-API-Key when
-- set), BENCH_REPEAT (N > 0: cycle over N rows, so they repeat; else every row differs),
-- BENCH_OFFSET (first row number, so that runs never share rows).
local format = os.getenv("BENCH_FORMAT") or "v1"
local key = os.getenv("BENCH_API_KEY") or ""
local cycle = tonumber(os.getenv("BENCH_REPEAT") or "0")
local n = tonumber(os.getenv("BENCH_OFFSET") or "0")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if key ~= "" then
  wrk.headers["X-API-Key"] = key
end

-- 360 x 240 x 590 x 250 = 12,744,000,000 distinct rows inside iris' ranges (two decimals).
local function row(i)
  local a = 4.30 + (i % 360) / 100
  local b = 2.00 + (math.floor(i / 360) % 240) / 100
  local c = 1.00 + (math.floor(i / 86400) % 590) / 100
  local d = 0.10 + (math.floor(i / 50976000) % 250) / 100
  return string.format("[%.2f,%.2f,%.2f,%.2f]", a, b, c, d)
end

function request()
  n = n + 1
  local values = row(cycle > 0 and (n % cycle) or n)
  local body
  if format == "features" then
    body = '{"features":[' .. values .. ']}'
  elseif format == "mlflow" then
    body = '{"dataframe_split":{"columns":["sepal_length","sepal_width","petal_length",'
      .. '"petal_width"],"data":[' .. values .. ']}}'
  else
    body = '{"instances":[' .. values .. ']}'
  end
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,'
      .. '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_ms":%.3f,"p90_ms":%.3f,'
      .. '"p99_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
