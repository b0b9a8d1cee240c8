-- wrk script: transaction Bundles of Observations.
--
--   wrk -t2 -c4 -d10s --latency -s bench/post_transaction.lua http://127.0.0.1:PORT/fhir
--
-- Every request POSTs a transaction Bundle of BENCH_BUNDLE_SIZE (default
-- 100) vital-signs heart-rate Observations (POST entries with urn:uuid
-- fullUrls), as a device gateway uploading a batch of readings would, with
-- Prefer: return=minimal. Observations/s = requests/s x BENCH_BUNDLE_SIZE.
-- Bodies are built once per thread in init() (BENCH_POOL distinct Bundles).
--
-- Environment: VITALOG_TOKEN, BENCH_PATIENTS (default 100), BENCH_POOL
-- (default 16), BENCH_BUNDLE_SIZE (default 100).
--
-- done() prints the same bench-result line as post_observation.lua.

dofile("bench/common.lua")

function init(args)
   local t = tid or 0
   local patients = tonumber(os.getenv("BENCH_PATIENTS") or "") or 100
   local size = tonumber(os.getenv("BENCH_BUNDLE_SIZE") or "") or 100
   local pool_size = tonumber(os.getenv("BENCH_POOL") or "") or 16
   local headers = write_headers()
   local base = 1735689600 + t * pool_size * size * 60 -- 2025-01-01, per-thread ranges
   for b = 1, pool_size do
      local entries = {}
      for i = 1, size do
         local n = (t * pool_size + b) * size + i
         local when = os.date("!%Y-%m-%dT%H:%M:%SZ", base + ((b - 1) * size + i) * 60)
         entries[i] = string.format(
            '{"fullUrl":"urn:uuid:%08x-0000-4000-8000-%012x","resource":%s,' ..
            '"request":{"method":"POST","url":"Observation"}}',
            t, n, observation_body((n * 37) % patients, when, 48 + (n * 7919) % 113))
      end
      local body = '{"resourceType":"Bundle","type":"transaction","entry":[' ..
         table.concat(entries, ",") .. ']}'
      pool[b] = wrk.format("POST", nil, headers, body)
   end
end

function done(summary, latency, requests)
   bench_done(summary)
end
