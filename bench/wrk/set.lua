-- wrk script for the write loads of bench/cluster_bench.sh: POST /set, a new key every request.
-- Usage: wrk ... -s set.lua URL -- PREFIX [same]
--   PREFIX keeps the keys of different loads (and their warm-ups) apart, so
--   every request creates a key instead of overwriting one. With "same",
--   every request overwrites the one key PREFIX (the twin of h2load, which
--   sends one body: bench/etcd_api_bench.py --vs-seed).

local threads = 0
local counter = 0
local prefix
local same_key_body
-- 16 bytes, the value size the bench is specified with.
local body_tail = '","value":"0123456789abcdef"}'

-- Runs in wrk's main Lua state, once per thread before it starts: gives
-- each thread an id so that keys stay unique with -t > 1.
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  prefix = '{"key":"' .. (args[1] or "w") .. "-" .. id .. "-"
  if args[2] == "same" then
    same_key_body = '{"key":"' .. (args[1] or "w") .. body_tail
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

-- wrk calls this once on thread 0 before the run, only to check that the
-- result parses, and never sends that request: counter values are unique
-- but start at 2 on thread 0, so don't use counter as a request count.
function request()
  if same_key_body then
    return wrk.format(nil, "/set", nil, same_key_body)
  end
  counter = counter + 1
  return wrk.format(nil, "/set", nil, prefix .. counter .. body_tail)
end
