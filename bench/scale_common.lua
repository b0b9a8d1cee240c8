-- Shared by the wrk scripts bench/scale_*.lua of bench/scale.sh (loaded
-- with dofile after bench/common.lua; run wrk from the repository root).
--
-- scale_patients(): the patients of the database, read from the manifest
-- bench_gen_scale wrote (SCALE_MANIFEST, default DIR/scale-manifest.tsv),
-- each as { id = "p000123", start = s, stop = s, heart_rates = n,
-- glucose = n, marks = { t0, t100, t200, ..., tend } } (epoch seconds;
-- [marks[j], marks[j+1]) holds exactly 100 heart rates when j <= the
-- number of full hundreds).
-- scale_seed(): seeds math.random per wrk thread (SCALE_LUA_SEED, tid).
-- scale_minute(t): "YYYY-MM-DDThh:mm" (UTC) of epoch seconds t; with
-- SCALE_DATE_SECONDS=1 "YYYY-MM-DDThh:mm:ss" (for a server that does not
-- take minutes without seconds yet).
-- scale_fill(make): fills `pool` (common.lua) with SCALE_POOL (default
-- 4096) GETs whose paths make() returns, so each request picks its own
-- patient and time and wrk formats nothing while it measures. make()
-- returns the path and the patient it names (from scale_patients()).
--
-- SCALE_AS=patient: each request is made by the patient it names, not by
-- the admin of VITALOG_TOKEN (a patient reading her own compartment
-- discloses nothing, so the server writes no AuditEvent). scale_patients()
-- then returns only the patients of SCALE_TOKENS (default
-- scale-tokens.tsv next to the manifest: "id<TAB>token" lines, written by
-- bench/scale.sh), each with its token as p.token, and scale_fill() sends
-- each request with "Authorization: Bearer <its patient's token>".

function scale_as_patient()
   local as = os.getenv("SCALE_AS")
   if as == nil or as == "" or as == "admin" then return false end
   if as ~= "patient" then error("SCALE_AS is '" .. as .. "', not patient or admin") end
   return true
end

local function scale_tokens(manifest)
   local path = os.getenv("SCALE_TOKENS")
   if path == nil or path == "" then
      path = (manifest:match("^(.*)/[^/]*$") or ".") .. "/scale-tokens.tsv"
   end
   local f = assert(io.open(path, "r"))
   local tokens = {}
   for line in f:lines() do
      local id, token = line:match("^(%S+)\t(%S+)$")
      if id then tokens[id] = token end
   end
   f:close()
   return tokens, path
end

function scale_patients()
   local path = os.getenv("SCALE_MANIFEST")
   if path == nil or path == "" then error("SCALE_MANIFEST is not set") end
   local f = assert(io.open(path, "r"))
   local list = {}
   for line in f:lines() do
      if line:sub(1, 1) ~= "#" then
         local id, s, e, hr, gl, marks = line:match("^(%S+)\t(%d+)\t(%d+)\t(%d+)\t(%d+)\t?(.*)$")
         if id then
            local m = {}
            for t in marks:gmatch("%d+") do m[#m + 1] = tonumber(t) end
            list[#list + 1] = { id = id, start = tonumber(s), stop = tonumber(e),
                                heart_rates = tonumber(hr), glucose = tonumber(gl), marks = m }
         end
      end
   end
   f:close()
   if #list == 0 then error("no patients in " .. path) end
   if scale_as_patient() then
      local tokens, tpath = scale_tokens(path)
      local mine = {}
      for _, p in ipairs(list) do
         if tokens[p.id] then
            p.token = tokens[p.id]
            mine[#mine + 1] = p
         end
      end
      if #mine == 0 then error("no patient of " .. path .. " has a token in " .. tpath) end
      list = mine
   end
   return list
end

function scale_seed()
   math.randomseed((tonumber(os.getenv("SCALE_LUA_SEED") or "") or 1) * 1000 + (tid or 0))
end

function scale_minute(t)
   if os.getenv("SCALE_DATE_SECONDS") == "1" then
      return os.date("!%Y-%m-%dT%H:%M:%S", t)
   end
   return os.date("!%Y-%m-%dT%H:%M", t)
end

function scale_fill(make)
   local n = tonumber(os.getenv("SCALE_POOL") or "") or 4096
   local as_patient = scale_as_patient()
   local headers = bench_headers({ ["Accept"] = "application/fhir+json" })
   for i = 1, n do
      local path, p = make()
      if as_patient then
         if p == nil or p.token == nil then error("SCALE_AS=patient: no token for " .. path) end
         headers = { ["Accept"] = "application/fhir+json",
                     ["Authorization"] = "Bearer " .. p.token }
      end
      pool[i] = wrk.format("GET", path, headers, nil)
   end
end
