-- wrk script for the BASELINE load of bench/cluster_bench.sh: GET /status.
-- It has a request() function only so that wrk pays the same per-request Lua
-- call as in the kv loads; without one wrk sends a prebuilt buffer and the
-- baseline would partly measure a cheaper client instead of the server.

local req

function init(args)
  req = wrk.format("GET", "/status")
end

function request()
  return req
end
