-- wrk script of bench/clinical.sh: one patient's heart rate statistics
-- over the calendar month of a random moment of its monitoring window.
--
--   GET /fhir/Observation/$stats?subject=Patient/X&code=8867-4&system=http://loinc.org
--       &statistic=average,minimum,maximum,count&period=YYYY-MM-01/YYYY-(MM+1)-01
--
-- Environment as bench/scale_*.lua.

dofile("bench/common.lua")
dofile("bench/scale_common.lua")

function init(args)
   scale_seed()
   local patients = scale_patients()
   scale_fill(function()
      local p = patients[math.random(#patients)]
      local t = p.start + math.random(0, math.max(0, p.stop - p.start - 1))
      local y, m = tonumber(os.date("!%Y", t)), tonumber(os.date("!%m", t))
      local ny, nm = y, m + 1
      if nm == 13 then ny, nm = y + 1, 1 end
      return "/fhir/Observation/$stats?subject=Patient/" .. p.id ..
         "&code=8867-4&system=http://loinc.org&statistic=average,minimum,maximum,count" ..
         string.format("&period=%04d-%02d-01/%04d-%02d-01", y, m, ny, nm), p
   end)
end

function done(summary, latency, requests)
   bench_done(summary)
end
