-- Scenario (b) of tools/ingest-bench.sh: 20 events per request (a JSON array), spread over many
-- streams.
--   wrk -t2 -c16 -d10s --timeout 10s --latency -s tools/wrk/ingest-batch20.lua http://127.0.0.1:PORT/ [-- STREAMS]
-- The shared code is found beside this file, wherever wrk is run from.
events_per_request = 20
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "ingest-common.lua")
