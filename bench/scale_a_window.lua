-- wrk script of bench/scale.sh, search a: one patient's heart rates in a
-- time window that holds exactly 100 of them.
--
--   GET /fhir/Observation?patient=Patient/X&code=http://loinc.org|8867-4
--       &date=geYYYY-MM-DDThh:mm&date=ltYYYY-MM-DDThh:mm&_count=100
--
-- Every request picks a patient and one of its windows of 100 heart rates
-- (from the manifest; see scale_common.lua). Environment: SCALE_MANIFEST,
-- SCALE_POOL, SCALE_LUA_SEED, SCALE_DATE_SECONDS, VITALOG_TOKEN, SCALE_AS
-- (patient: each request made by its patient), SCALE_TOKENS.

dofile("bench/common.lua")
dofile("bench/scale_common.lua")

function init(args)
   scale_seed()
   local windows = {}
   for _, p in ipairs(scale_patients()) do
      for j = 1, math.floor(p.heart_rates / 100) do
         windows[#windows + 1] = { p, p.marks[j], p.marks[j + 1] }
      end
   end
   if #windows == 0 then error("no patient has 100 heart rates") end
   scale_fill(function()
      local w = windows[math.random(#windows)]
      return "/fhir/Observation?patient=Patient/" .. w[1].id ..
         "&code=http://loinc.org%7C8867-4&date=ge" .. scale_minute(w[2]) ..
         "&date=lt" .. scale_minute(w[3]) .. "&_count=100", w[1]
   end)
end

function done(summary, latency, requests)
   bench_done(summary)
end
