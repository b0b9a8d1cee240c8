-- wrk script of bench/scale.sh, search d: clinic-wide, the heart rates above
-- 120 /min, first page of 50.
--
--   GET /fhir/Observation?code=http://loinc.org|8867-4
--       &value-quantity=gt120|http://unitsofmeasure.org|/min&_count=50
--
-- The same request every time: it names no patient and no time. Environment:
-- VITALOG_TOKEN, SCALE_HIGH (the threshold, default 120).

dofile("bench/common.lua")

function init(args)
   local high = os.getenv("SCALE_HIGH")
   if high == nil or high == "" then high = "120" end
   pool[1] = wrk.format("GET", "/fhir/Observation?code=http://loinc.org%7C8867-4" ..
      "&value-quantity=gt" .. high .. "%7Chttp://unitsofmeasure.org%7C/min&_count=50",
      bench_headers({ ["Accept"] = "application/fhir+json" }), nil)
end

function done(summary, latency, requests)
   bench_done(summary)
end
