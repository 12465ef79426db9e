-- Scenario (a) of tools/ingest-bench.sh: one event per request, spread over many streams.
--   wrk -t2 -c64 -d10s --timeout 10s --latency -s tools/wrk/ingest-single.lua http://127.0.0.1:PORT/ [-- STREAMS]
-- The shared code is found beside this file, wherever wrk is run from.
events_per_request = 1
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "ingest-common.lua")
