-- wrk script: POST one row per request, in the body format a target expects.
-- Environment: BENCH_FORMAT (v1 | features | mlflow | v2), BENCH_API_KEY (sent as X-API-Key
-- when set), BENCH_REPEAT (N > 0: cycle over N rows, so they repeat; else every row differs),
-- BENCH_OFFSET (first row number, so that runs never share rows), BENCH_WIDTH (4, the default:
-- iris rows; any other N: N features named f0..f<N-1>, for the flavor section's models).
local format = os.getenv("BENCH_FORMAT") or "v1"
local key = os.getenv("BENCH_API_KEY") or ""
local cycle = tonumber(os.getenv("BENCH_REPEAT") or "0")
local n = tonumber(os.getenv("BENCH_OFFSET") or "0")
local width = tonumber(os.getenv("BENCH_WIDTH") or "4")

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

-- Wide rows, values in [-5, 5) with two decimals: the first four features spell the row number
-- in base 1000 (distinct for row numbers below 10^12), the others are scrambled from it.
local function wide_row(i)
  local values = {}
  for j = 0, width - 1 do
    local v
    if j < 4 then
      v = math.floor(i / 1000 ^ j) % 1000
    else
      v = (i * 7919 + j * 104729 + math.floor(i / 997) * 31) % 1000
    end
    values[j + 1] = string.format("%.2f", v / 100 - 5)
  end
  return "[" .. table.concat(values, ",") .. "]"
end

local columns = '"sepal_length","sepal_width","petal_length","petal_width"'
if width ~= 4 then
  local names = {}
  for j = 0, width - 1 do
    names[j + 1] = '"f' .. j .. '"'
  end
  columns = table.concat(names, ",")
end

-- v2: the row as one 2-D FP32 tensor [1, width], as tritonclient's HTTP client sends a float32
-- numpy array in JSON mode (InferInput.set_data_from_numpy(binary_data=False)): the data flat,
-- each value the float32 nearest the two-decimal one, written as Python's json.dumps writes that
-- float (the shortest text that reads back as the same double; 5.1 -> 5.099999904632568).
local ffi = require("ffi")
local float32 = ffi.new("float[1]")

local function as_float32_json(text)
  float32[0] = tonumber(text)
  local value = float32[0]
  local out
  for digits = 15, 17 do
    out = string.format("%." .. digits .. "g", value)
    if tonumber(out) == value then
      break
    end
  end
  if not out:find("[.e]") then
    out = out .. ".0"
  end
  return out
end

local function v2_body(values)
  local data = {}
  for text in values:gmatch("[^%[%],]+") do
    data[#data + 1] = as_float32_json(text)
  end
  return '{"inputs":[{"name":"input-0","shape":[1,' .. width .. '],"datatype":"FP32","data":['
    .. table.concat(data, ",") .. ']}]}'
end

function request()
  n = n + 1
  local i = cycle > 0 and (n % cycle) or n
  local values = width == 4 and row(i) or wide_row(i)
  local body
  if format == "features" then
    body = '{"features":[' .. values .. ']}'
  elseif format == "mlflow" then
    body = '{"dataframe_split":{"columns":[' .. columns .. '],"data":[' .. values .. ']}}'
  elseif format == "v2" then
    body = v2_body(values)
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
