-- PUT a 64-byte value to one of 1,000 keys, as a form body (wrk's request hook).
local counter = 0
local value = "value=" .. string.rep("x", 64)
request = function()
  counter = counter + 1
  return wrk.format("PUT", "/v2/keys/bench/k" .. (counter % 1000),
    { ["Content-Type"] = "application/x-www-form-urlencoded" }, value)
end
