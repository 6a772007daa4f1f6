-- Acquire a lock of the 0.x lock module (Floe --legacy), each request on a lock of its own so
-- that contenders never queue: one replicated write and the check that it heads its queue.
-- Lock names: the run's prefix (the script's first argument), the wrk thread and a counter.
local counter = 0
local threads = 0
local prefix = "run"

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

function init(args)
  prefix = (args[1] or "run") .. "-" .. tostring(thread_id or 0)
end

request = function()
  counter = counter + 1
  return wrk.format("POST", "/mod/v2/lock/" .. prefix .. "-" .. counter .. "?ttl=60")
end
