-- wrk script of bench/scale.sh, search b: one patient's latest heart rate.
--
--   GET /fhir/Observation?patient=Patient/X&code=http://loinc.org|8867-4&_sort=-date&_count=1
--
-- Every request picks a patient (from the manifest; see scale_common.lua).
-- Environment: SCALE_MANIFEST, SCALE_POOL, SCALE_LUA_SEED, VITALOG_TOKEN,
-- SCALE_AS (patient: each request made by its patient), SCALE_TOKENS.

dofile("bench/common.lua")
dofile("bench/scale_common.lua")

function init(args)
   scale_seed()
   local patients = scale_patients()
   scale_fill(function()
      local p = patients[math.random(#patients)]
      return "/fhir/Observation?patient=Patient/" .. p.id ..
         "&code=http://loinc.org%7C8867-4&_sort=-date&_count=1", p
   end)
end

function done(summary, latency, requests)
   bench_done(summary)
end
