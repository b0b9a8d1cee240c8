-- wrk script of bench/scale.sh, search c: how many CGM glucose readings one
-- patient has in one month.
--
--   GET /fhir/Observation?patient=Patient/X&code=http://loinc.org|99504-3
--       &date=ge2025-MM-01&date=lt2025-(MM+1)-01&_summary=count
--
-- Every request picks a patient and the month of a random moment of its
-- monitoring window (from the manifest; see scale_common.lua), so the count
-- is rarely zero. SCALE_COUNT_PARAM replaces "_summary=count" (bench/scale.sh
-- sets "_count=0" for a server that does not take _summary=count yet).
-- Environment: SCALE_MANIFEST, SCALE_POOL, SCALE_LUA_SEED, SCALE_COUNT_PARAM,
-- VITALOG_TOKEN, SCALE_AS (patient: each request made by its patient),
-- SCALE_TOKENS.

dofile("bench/common.lua")
dofile("bench/scale_common.lua")

function init(args)
   scale_seed()
   local patients = scale_patients()
   local count = os.getenv("SCALE_COUNT_PARAM")
   if count == nil or count == "" then count = "_summary=count" end
   scale_fill(function()
      local p = patients[math.random(#patients)]
      local t = p.start + math.random(0, math.max(0, p.stop - p.start - 1))
      local y, m = tonumber(os.date("!%Y", t)), tonumber(os.date("!%m", t))
      local ny, nm = y, m + 1
      if nm == 13 then ny, nm = y + 1, 1 end
      return "/fhir/Observation?patient=Patient/" .. p.id ..
         "&code=http://loinc.org%7C99504-3" ..
         string.format("&date=ge%04d-%02d-01&date=lt%04d-%02d-01&", y, m, ny, nm) .. count, p
   end)
end

function done(summary, latency, requests)
   bench_done(summary)
end
