-- wrk script for bench/write_bench.py: POST /v3/kv/put to etcd's JSON gateway (or consensuskv's), a new key every request.
-- Usage: wrk ... -s etcd_put.lua URL -- PREFIX
--   The twin of set.lua: the same keys (PREFIX-THREAD-COUNTER) and the same
--   16-byte value, base64-encoded as protobuf's JSON mapping wants bytes.

local threads = 0
local counter = 0
local prefix
local value_b64

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = math.min(#s - i + 1, 3) + 1  -- output characters before the padding
    for j = 1, 4 do
      if j <= chars then
        local k = math.floor(n / 2 ^ (6 * (4 - j))) % 64
        out[#out + 1] = alphabet:sub(k + 1, k + 1)
      else
        out[#out + 1] = "="
      end
    end
  end
  return table.concat(out)
end

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  prefix = (args[1] or "w") .. "-" .. id .. "-"
  value_b64 = base64("0123456789abcdef")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local body = '{"key":"' .. base64(prefix .. counter) .. '","value":"' .. value_b64 .. '"}'
  return wrk.format(nil, "/v3/kv/put", nil, body)
end
