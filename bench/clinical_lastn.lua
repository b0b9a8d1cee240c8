-- wrk script of bench/clinical.sh: the latest vital signs of one patient.
--
--   GET /fhir/Observation/$lastn?patient=Patient/X&category=vital-signs
--
-- Every request picks a patient (scale_common.lua). Environment as
-- bench/scale_*.lua: SCALE_MANIFEST, SCALE_POOL, SCALE_LUA_SEED,
-- VITALOG_TOKEN, SCALE_AS, SCALE_TOKENS.

dofile("bench/common.lua")
dofile("bench/scale_common.lua")

function init(args)
   scale_seed()
   local patients = scale_patients()
   scale_fill(function()
      local p = patients[math.random(#patients)]
      return "/fhir/Observation/$lastn?patient=Patient/" .. p.id ..
         "&category=http://terminology.hl7.org/CodeSystem/observation-category%7Cvital-signs", p
   end)
end

function done(summary, latency, requests)
   bench_done(summary)
end
