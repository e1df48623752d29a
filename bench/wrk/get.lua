-- wrk script for the read loads of bench/cluster_bench.sh: GET /get over preloaded keys r0..r(NKEYS-1).
-- Usage: wrk ... -s get.lua URL -- NKEYS [stale]
--   Every key read must exist (a 404 counts as a wrk error), so NKEYS must
--   not exceed what the bench preloaded. "stale" adds consistency=stale.

local threads = 0
local nkeys, suffix, cursor

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  nkeys = tonumber(args[1])
  if not nkeys or nkeys < 1 then
    error("get.lua: pass the number of preloaded keys: -- NKEYS [stale]")
  end
  suffix = args[2] == "stale" and "&consistency=stale" or ""
  -- Threads start at different keys so that they don't read in lockstep.
  cursor = (id * 7919) % nkeys
end

-- The verification call wrk makes on thread 0 before the run only moves the
-- cursor by one; every key still comes round.
function request()
  local path = "/get?key=r" .. cursor .. suffix
  cursor = (cursor + 1) % nkeys
  return wrk.format("GET", path)
end
