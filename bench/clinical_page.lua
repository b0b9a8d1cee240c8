-- wrk script of bench/clinical.sh: a page of 100 of one patient's heart
-- rates, with CLIN_INCLUDE=1 also their subject (_include).
--
--   GET /fhir/Observation?patient=Patient/X&code=http://loinc.org|8867-4&_count=100
--       [&_include=Observation:subject]
--
-- Environment as bench/scale_*.lua, and CLIN_INCLUDE.

dofile("bench/common.lua")
dofile("bench/scale_common.lua")

function init(args)
   scale_seed()
   local patients = scale_patients()
   local include = os.getenv("CLIN_INCLUDE") == "1" and "&_include=Observation:subject" or ""
   scale_fill(function()
      local p = patients[math.random(#patients)]
      return "/fhir/Observation?patient=Patient/" .. p.id ..
         "&code=http://loinc.org%7C8867-4&_count=100" .. include, p
   end)
end

function done(summary, latency, requests)
   bench_done(summary)
end
