-- wrk script: reads of one stored Observation.
--
--   BENCH_OBSERVATION_ID=<id> wrk -t1 -c1 -d10s --latency -s bench/get_observation.lua http://127.0.0.1:PORT
--
-- GETs /fhir/Observation/<id> (Accept: application/fhir+json) over and over.
-- The path can also be given whole in BENCH_PATH, or as the URL's path when
-- neither variable is set. bench/run.sh creates the Observation with curl
-- first and passes its id.
--
-- Environment:
--   BENCH_OBSERVATION_ID  logical id of the Observation to read
--   BENCH_PATH            full request path (overrides BENCH_OBSERVATION_ID)
--   VITALOG_TOKEN         bearer token sent as Authorization (none when unset)
--
-- done() prints the same machine-readable line as post_observation.lua:
--   bench-result requests=N ok=N non2xx=N connect_err=N read_err=N write_err=N timeouts=N

local req

function init(args)
   local path = os.getenv("BENCH_PATH")
   if path == nil or path == "" then
      local id = os.getenv("BENCH_OBSERVATION_ID")
      if id ~= nil and id ~= "" then
         path = "/fhir/Observation/" .. id
      else
         path = wrk.path
      end
   end
   local headers = { ["Accept"] = "application/fhir+json" }
   local token = os.getenv("VITALOG_TOKEN")
   if token ~= nil and token ~= "" then
      headers["Authorization"] = "Bearer " .. token
   end
   req = wrk.format("GET", path, headers, nil)
end

function request()
   return req
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "bench-result requests=%d ok=%d non2xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d\n",
      summary.requests, summary.requests - e.status, e.status,
      e.connect, e.read, e.write, e.timeout))
end
