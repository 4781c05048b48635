-- A real editing session against a real `ninetyten serve`, driven by tests/e2e/test_neovim.py:
--   $NINETYTEN_TEST_SETUP  JSON options for require("ninetyten").setup()
--   $NINETYTEN_TEST_FILE   the Python file to edit (in a project directory)
--   $NINETYTEN_TEST_OUT    where the observations go (JSON); the Python side asserts on them
local here = debug.getinfo(1, "S").source:sub(2):match("(.*)/")
package.path = here .. "/?.lua;" .. package.path
local H = require("harness")
local ninetyten = require("ninetyten")
local completion = require("ninetyten.completion")
local commands = require("ninetyten.commands")
local ghost = require("ninetyten.ghost")
local lsp = require("ninetyten.lsp")

vim.o.showmode = false
vim.o.columns = 100
vim.o.lines = 30
vim.cmd("filetype on")

local options = vim.fn.json_decode(assert(os.getenv("NINETYTEN_TEST_SETUP")))
local file = assert(os.getenv("NINETYTEN_TEST_FILE"))
local messages = {}
local notify = vim.notify
vim.notify = function(message, level, ...)
  messages[#messages + 1] = { message = message, level = level }
  return notify(message, level, ...)
end

local LOAD_TIMEOUT = 40000
local buf

local function ghost_now()
  local marks = vim.api.nvim_buf_get_extmarks(buf, ghost.namespace, 0, -1, { details = true })
  if #marks == 0 then
    return nil
  end
  local details = marks[1][4]
  local text = details.virt_text[1][1]
  local lines = { text }
  for _, chunks in ipairs(details.virt_lines or {}) do
    lines[#lines + 1] = chunks[1][1]
  end
  return { row = marks[1][2], col = marks[1][3], text = text, lines = lines, count = #marks }
end

local function enter_insert(keys)
  vim.api.nvim_input(keys)
  H.wait_for("insert mode", function() return vim.api.nvim_get_mode().mode == "i" end)
end

local function leave_insert()
  vim.api.nvim_input("<Esc>")
  H.wait_for("normal mode", function() return vim.api.nvim_get_mode().mode == "n" end)
end

local function line(row)
  return vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1]
end

local function find_line(prefix)
  for index, text in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
    if text:sub(1, #prefix) == prefix then
      return index
    end
  end
  error("no line starting with " .. prefix)
end

local function run_command(command_line, command)
  commands.last_result = nil
  vim.cmd(command_line)
  local done = H.wait_for(command .. " to answer", function()
    local last = commands.last_result
    return last and last.command == command and last
  end, LOAD_TIMEOUT)
  H.sleep(50) -- the result is drawn right after it arrives
  return done
end

local function test(name, fn)
  return { name, fn }
end

-- $NINETYTEN_TEST_STEPS limits the scenario to its first N tests (a slow model runs fewer).
local steps = {
  test("the server starts for a Python buffer", function()
    ninetyten.setup(options)
    vim.cmd("edit " .. vim.fn.fnameescape(file))
    buf = vim.api.nvim_get_current_buf()
    local client = H.wait_for("the client", function() return lsp.client_for(buf) end, LOAD_TIMEOUT)
    H.record("cmd", client.config.cmd)
    H.record("offset_encoding", client.offset_encoding)
    H.record("messages", messages)
  end),

  test("ghost text at the end of a line, accepted with Tab", function()
    local row = find_line("result = ")
    vim.api.nvim_win_set_cursor(0, { row, 0 })
    enter_insert("A")
    local shown = H.wait_for("ghost text", ghost_now, LOAD_TIMEOUT)
    H.record("eol_ghost", shown)
    H.record("eol_cursor", vim.api.nvim_win_get_cursor(0))
    H.record("eol_screen", H.screen(row, row + #shown.lines - 1))
    H.record("progress", lsp.progress)
    vim.api.nvim_input("<Tab>")
    H.wait_for("the insertion", function() return line(row - 1) ~= "result = " end)
    H.record("eol_after_accept", line(row - 1))
    H.record("buffer_after_accept", vim.api.nvim_buf_get_lines(buf, 0, -1, false))
    H.record("eol_cursor_after_accept", vim.api.nvim_win_get_cursor(0))
    H.record("accept_command", H.wait_for("the acceptance command", function() return completion.last_accept end, 10000))
    leave_insert()
    H.record("ghost_after_leave", ghost_now() or vim.NIL)
  end),

  test("typing asks again; C-] dismisses", function()
    local row = find_line("result = ")
    vim.api.nvim_win_set_cursor(0, { row, 0 })
    enter_insert("o")
    vim.api.nvim_input("y = ")
    local shown = H.wait_for("ghost text after typing", ghost_now, LOAD_TIMEOUT)
    H.record("typed_ghost", shown)
    H.record("typed_line", line(row))
    vim.api.nvim_input("<C-]>")
    H.wait_for("the ghost text to go", function() return ghost_now() == nil end)
    H.sleep(600) -- longer than the debounce: nothing may come back by itself
    H.record("after_dismiss", { ghost = ghost_now() or vim.NIL, line = line(row) })
    leave_insert()
  end),

  test("mid-line ghost text after non-ASCII characters", function()
    local row = find_line('a = "')
    local text = line(row - 1)
    vim.api.nvim_win_set_cursor(0, { row, (text:find("xx", 1, true)) - 1 })
    enter_insert("i")
    local shown = H.wait_for("mid-line ghost text", ghost_now, LOAD_TIMEOUT)
    H.record("mid_ghost", shown)
    H.record("mid_screen", H.screen(row, row))
    vim.api.nvim_input("<Tab>")
    H.wait_for("the insertion", function() return line(row - 1) ~= text end)
    H.record("mid_after_accept", line(row - 1))
    leave_insert()
  end),

  test(":NinetyTenExplain on a range", function()
    local done = run_command("1,2NinetyTenExplain", "ninetyten.explainSelection")
    H.record("explain_result", done.result or vim.NIL)
    H.record("explain_buffer", {
      name = vim.api.nvim_buf_get_name(0),
      filetype = vim.api.nvim_buf_get_option(0, "filetype"),
      lines = vim.api.nvim_buf_get_lines(0, 0, -1, false),
    })
    vim.cmd("close")
  end),

  test(":NinetyTenExplain without a range: the file's uncommitted change; with !: the staged one", function()
    vim.cmd("silent write")
    local done = run_command("NinetyTenExplain", "ninetyten.explainChange")
    H.record("change_result", done.result or vim.NIL)
    H.record("change_buffer", vim.api.nvim_buf_get_lines(0, 0, -1, false))
    vim.cmd("close")
    local messages_before = #messages
    done = run_command("NinetyTenExplain!", "ninetyten.explainChange")
    H.record("staged_result", done.result or vim.NIL)
    H.record("staged_messages", { unpack(messages, messages_before + 1) })
    H.record("staged_window", vim.api.nvim_buf_get_name(0))
  end),

  test(":NinetyTenRefactor on a charwise selection, undoable", function()
    local row = find_line("    return a + b")
    local before = line(row - 1)
    vim.api.nvim_win_set_cursor(0, { row, 11 })
    vim.cmd("normal! v4l\27") -- "a + b"
    local done = run_command("'<,'>NinetyTenRefactor use better names", "ninetyten.refactorSelection")
    H.record("refactor_result", done.result or vim.NIL)
    H.record("refactor_line", line(row - 1))
    vim.cmd("silent undo")
    H.record("refactor_undone", line(row - 1) == before)
  end),

  test(":NinetyTenAsk, :NinetyTenReport, :NinetyTenOffline", function()
    local done = run_command("NinetyTenAsk what does add return?", "ninetyten.ask")
    H.record("ask_result", done.result or vim.NIL)
    H.record("ask_lines", vim.api.nvim_buf_get_lines(0, 0, -1, false))
    vim.cmd("close")
    done = run_command("NinetyTenReport", "ninetyten.report")
    H.record("report_result", done.result or vim.NIL)
    H.record("report_lines", vim.api.nvim_buf_get_lines(0, 0, -1, false))
    vim.cmd("close")
    done = run_command("NinetyTenOffline", "ninetyten.toggleOffline")
    H.record("offline_result", done.result or vim.NIL)
    H.record("status", ninetyten.status())
  end),
}
local limit = tonumber(os.getenv("NINETYTEN_TEST_STEPS") or "") or #steps
H.run({ unpack(steps, 1, limit) }, 100000)
