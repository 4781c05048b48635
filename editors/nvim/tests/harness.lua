-- A tiny test runner for headless Neovim (0.7+). Tests run inside a coroutine so they can
-- sleep: while a test waits, Neovim's main loop runs and processes nvim_input() keys, insert
-- mode autocommands, timers and LSP messages, exactly as for a user. Results go to the JSON
-- file named by $NINETYTEN_TEST_OUT; then Neovim quits.
local H = {}
local uv = vim.uv or vim.loop

local out_path = assert(os.getenv("NINETYTEN_TEST_OUT"), "NINETYTEN_TEST_OUT is not set")
local results = { tests = {}, data = {} }
local finished = false

local function finish()
  if finished then
    return
  end
  finished = true
  local file = assert(io.open(out_path, "w"))
  file:write(vim.fn.json_encode(results))
  file:close()
  vim.cmd("qa!")
end

local function resume(co, ...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    results.error = debug.traceback(co, tostring(err))
    finish()
  end
end

function H.sleep(ms)
  local co = coroutine.running()
  vim.defer_fn(function()
    resume(co)
  end, ms)
  coroutine.yield()
end

-- Polls `condition` until it returns a truthy value (returned) or `timeout_ms` passes (error).
function H.wait_for(what, condition, timeout_ms)
  local deadline = uv.now() + (timeout_ms or 5000)
  while true do
    local value = condition()
    if value then
      return value
    end
    if uv.now() > deadline then
      error("timed out waiting for " .. what, 2)
    end
    H.sleep(20)
  end
end

function H.eq(expected, actual, message)
  if not vim.deep_equal(expected, actual) then
    error(string.format("%s\nexpected: %s\nactual:   %s", message or "not equal",
      vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

function H.ok(value, message)
  if not value then
    error(message or "expected a truthy value", 2)
  end
  return value
end

-- Records a value for the Python side to assert on.
function H.record(key, value)
  results.data[key] = value
end

-- What is on screen (the headless grid), rows `first`..`last`, trailing blanks trimmed.
function H.screen(first, last)
  vim.cmd("redraw")
  local rows = {}
  for row = first, last do
    local cells = {}
    for col = 1, vim.o.columns do
      cells[#cells + 1] = vim.fn.screenstring(row, col)
    end
    rows[#rows + 1] = (table.concat(cells):gsub("%s+$", ""))
  end
  return rows
end

-- Runs `tests` (a list of { name, fn }) one after another; an error fails that test only.
function H.run(tests, timeout_ms)
  vim.defer_fn(function()
    results.error = "the tests timed out"
    finish()
  end, timeout_ms or 60000)
  local co = coroutine.create(function()
    for _, test in ipairs(tests) do
      local started = uv.hrtime()
      local ok, err = xpcall(test[2], debug.traceback)
      results.tests[#results.tests + 1] = {
        name = test[1],
        ok = ok,
        error = ok and nil or tostring(err),
        ms = math.floor((uv.hrtime() - started) / 1e6),
      }
      -- Leave insert mode and any scratch window so the next test starts clean.
      vim.api.nvim_input("<Esc>")
      H.sleep(10)
    end
    finish()
  end)
  resume(co)
end

return H
