-- Shared by the wrk scripts of bench/ (loaded with dofile; run wrk from the
-- repository root, as bench/run.sh does).
--
-- setup(thread): numbers the wrk threads (the global `tid` in each) and
-- keeps them in `threads` for done().
-- bench_headers(h): h plus Authorization: Bearer $VITALOG_TOKEN when set.
-- write_headers(): the headers of a FHIR JSON write with Prefer: return=minimal.
-- request(): cycles through `pool`, the requests the script's init() built.
-- observation_body(patient, when, bpm): a vital-signs heart-rate
-- Observation (LOINC 8867-4, UCUM /min) for Patient/bench-<patient>.
-- bench_done(summary): the machine-readable line bench/run.sh parses:
--   bench-result requests=N ok=N non2xx=N connect_err=N read_err=N write_err=N timeouts=N

threads = {}
local next_tid = 0

function setup(thread)
   thread:set("tid", next_tid)
   next_tid = next_tid + 1
   table.insert(threads, thread)
end

function bench_headers(h)
   local token = os.getenv("VITALOG_TOKEN")
   if token ~= nil and token ~= "" then
      h["Authorization"] = "Bearer " .. token
   end
   return h
end

function write_headers()
   return bench_headers({
      ["Content-Type"] = "application/fhir+json",
      ["Accept"] = "application/fhir+json",
      ["Prefer"] = "return=minimal",
   })
end

pool = {}
local counter = 0

function request()
   counter = counter + 1
   if counter > #pool then counter = 1 end
   return pool[counter]
end

function observation_body(patient, when, bpm)
   return '{"resourceType":"Observation",' ..
      '"status":"final",' ..
      '"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category",' ..
      '"code":"vital-signs","display":"Vital Signs"}],"text":"Vital Signs"}],' ..
      '"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],' ..
      '"text":"Heart rate"},' ..
      '"subject":{"reference":"Patient/bench-' .. patient .. '"},' ..
      '"effectiveDateTime":"' .. when .. '",' ..
      '"valueQuantity":{"value":' .. bpm .. ',"unit":"beats/minute",' ..
      '"system":"http://unitsofmeasure.org","code":"/min"}}'
end

function bench_done(summary)
   local e = summary.errors
   io.write(string.format(
      "bench-result requests=%d ok=%d non2xx=%d connect_err=%d read_err=%d write_err=%d timeouts=%d\n",
      summary.requests, summary.requests - e.status, e.status,
      e.connect, e.read, e.write, e.timeout))
end
