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

dofile("bench/common.lua")

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
   pool[1] = wrk.format("GET", path, bench_headers({ ["Accept"] = "application/fhir+json" }), nil)
end

function done(summary, latency, requests)
   bench_done(summary)
end
