-- wrk script: durable FHIR Observation creates.
--
--   wrk -t2 -c16 -d10s --latency -s bench/post_observation.lua http://127.0.0.1:PORT/fhir/Observation
--
-- Every request POSTs a vital-signs heart-rate Observation (LOINC 8867-4,
-- UCUM /min) for one of BENCH_PATIENTS patients (Patient/bench-0 ..), with a
-- varying effectiveDateTime and value, Content-Type application/fhir+json and
-- Prefer: return=minimal. The bodies are built once per thread in init() (a
-- pool of BENCH_POOL distinct requests that request() cycles through), so the
-- load generator spends no time formatting JSON during the measurement.
--
-- Environment:
--   VITALOG_TOKEN        bearer token sent as Authorization (none when unset)
--   BENCH_PATIENTS       number of distinct subjects (default 100)
--   BENCH_POOL           distinct bodies per wrk thread (default 512)
--   BENCH_STATUS_DETAIL  when 1, count responses per status code (costs one
--                        Lua call per response; off by default)
--
-- done() prints one machine-readable line that bench/run.sh parses:
--   bench-result requests=N ok=N non2xx=N connect_err=N read_err=N write_err=N timeouts=N
-- ("ok" is every complete response with a status below 400, as wrk counts it.)

dofile("bench/common.lua")

function init(args)
   local t = tid or 0
   local patients = tonumber(os.getenv("BENCH_PATIENTS") or "") or 100
   local pool_size = tonumber(os.getenv("BENCH_POOL") or "") or 512
   local headers = write_headers()
   -- 2024-01-01T00:00:00Z; each body one minute after the previous one,
   -- each thread in its own range.
   local base = 1704067200 + t * pool_size * 60
   for i = 1, pool_size do
      local n = t * pool_size + i
      local patient = (n * 37) % patients
      local when = os.date("!%Y-%m-%dT%H:%M:%SZ", base + i * 60)
      local bpm = 48 + (n * 7919) % 113         -- 48 .. 160
      pool[i] = wrk.format("POST", nil, headers, observation_body(patient, when, bpm))
   end
end

if os.getenv("BENCH_STATUS_DETAIL") == "1" then
   statuses = {}
   function response(status, headers, body)
      statuses[status] = (statuses[status] or 0) + 1
   end
end

function done(summary, latency, requests)
   bench_done(summary)
   if os.getenv("BENCH_STATUS_DETAIL") == "1" then
      local total = {}
      for _, thread in ipairs(threads) do
         local s = thread:get("statuses")
         if s then
            for code, n in pairs(s) do total[code] = (total[code] or 0) + n end
         end
      end
      local parts = {}
      for code, n in pairs(total) do table.insert(parts, code .. "=" .. n) end
      table.sort(parts)
      io.write("bench-statuses " .. table.concat(parts, " ") .. "\n")
   end
end
