-- wrk script: POST /api/v1/checkin for product "bench" (or SK_PRODUCT).
--   SK_PRODUCT_KEY  the organization's product key (required)
--   SK_PRODUCT      the product's code (default "bench")
--   SK_DEVICES      how many serials to cycle through (default 1000)
--   SK_MODE         "known": random serials among SK_DEVICES (they exist after a warm-up);
--                   "sequential": BENCH-0000000, BENCH-0000001, … wrapping at SK_DEVICES;
--                   "new": a serial never sent before on every request
local key = os.getenv("SK_PRODUCT_KEY") or error("SK_PRODUCT_KEY is not set")
local devices = tonumber(os.getenv("SK_DEVICES") or "1000")
local mode = os.getenv("SK_MODE") or "known"
local product = os.getenv("SK_PRODUCT") or "bench"
local counter = 0
local run = tostring(os.time())

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key

request = function()
  local serial
  if mode == "new" then
    counter = counter + 1
    serial = string.format("NEW-%s-%09d", run, counter)
  elseif mode == "sequential" then
    serial = string.format("BENCH-%07d", counter % devices)
    counter = counter + 1
  else
    serial = string.format("BENCH-%07d", math.random(0, devices - 1))
  end
  return wrk.format(nil, "/api/v1/checkin", nil, '{"product":"' .. product .. '","serial":"' .. serial .. '"}')
end
