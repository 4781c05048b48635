-- :NinetyTenModel list | pull | use against a real `ninetyten serve` (on the built-in model) and a
-- loopback Hugging Face hub, driven by tests/e2e/test_neovim_models.py:
--   $NINETYTEN_TEST_SETUP  JSON options for require("ninetyten").setup()
--   $NINETYTEN_TEST_FILE   the Python file to edit
--   $NINETYTEN_TEST_OUT    where the observations go (JSON)
local here = debug.getinfo(1, "S").source:sub(2):match("(.*)/")
package.path = here .. "/?.lua;" .. package.path
local H = require("harness")
local ninetyten = require("ninetyten")
local commands = require("ninetyten.commands")
local ghost = require("ninetyten.ghost")
local lsp = require("ninetyten.lsp")
local ids = require("ninetyten.ids")

vim.cmd("filetype on")
local options = vim.fn.json_decode(assert(os.getenv("NINETYTEN_TEST_SETUP")))
local file = assert(os.getenv("NINETYTEN_TEST_FILE"))
local TIMEOUT = 120000
local notified = {}
vim.notify = function(message)
  notified[#notified + 1] = message
end

local buf

local function run(command_line, method)
  commands.last_result = nil
  vim.cmd(command_line)
  return H.wait_for(method .. " to answer", function()
    local last = commands.last_result
    return last and last.command == method and last
  end, TIMEOUT)
end

local function state()
  local client = lsp.client_for(buf)
  local done
  lsp.request(client, ids.methods.models, {}, function(err, result)
    done = { err = err, result = result }
  end, buf)
  H.wait_for("ninetyten/models", function() return done end, TIMEOUT)
  return done.result
end

local function ghost_text()
  local marks = vim.api.nvim_buf_get_extmarks(buf, ghost.namespace, 0, -1, { details = true })
  return #marks > 0 and marks[1][4].virt_text[1][1] or nil
end

H.run({
  { "list shows the built-in model and what to pull", function()
    ninetyten.setup(options)
    vim.cmd("edit " .. vim.fn.fnameescape(file))
    buf = vim.api.nvim_get_current_buf()
    H.wait_for("the client", function() return lsp.client_for(buf) end, TIMEOUT)
    local shown = run("NinetyTenModel", ids.methods.models)
    H.record("list_state", shown.result)
    H.record("list_lines", vim.api.nvim_buf_get_lines(0, 0, -1, false))
    vim.cmd("close")
  end },
  { "pull downloads the recommended models with progress and uses them", function()
    vim.cmd("buffer " .. buf)
    local pulled = run("NinetyTenModel pull", ids.methods.pullModel)
    H.record("pull_result", pulled.result)
    local progress = {}
    for _, entry in pairs(lsp.progress) do
      if type(entry.title) == "string" and entry.title:find("pulling", 1, true) then
        progress[#progress + 1] = { title = entry.title, message = entry.message, percentage = entry.percentage,
          done = entry.done }
      end
    end
    H.record("pull_progress", progress)
    local ready = H.wait_for("the pulled models to load", function()
      local now = state()
      return now and now.completion.ready and now.chat.ready and now
    end, TIMEOUT)
    H.record("after_pull", ready)
  end },
  { "completions come from the pulled model", function()
    vim.cmd("buffer " .. buf)
    vim.api.nvim_input("Go")
    H.wait_for("insert mode", function() return vim.api.nvim_get_mode().mode == "i" end)
    vim.api.nvim_input("total = ")
    H.record("ghost", H.wait_for("ghost text", ghost_text, TIMEOUT))
    vim.api.nvim_input("<Esc>")
  end },
  { "use switches back and forth, saved in the user's config", function()
    vim.cmd("buffer " .. buf)
    local bad = run("NinetyTenModel use qwen2.5-coder-7b", ids.methods.useModel)
    H.record("use_missing", bad.result)
    local back = run("NinetyTenModel use default", ids.methods.useModel)
    H.record("use_default", back.result)
    local chat = run("NinetyTenModel use chat default", ids.methods.useModel)
    H.record("use_chat_default", chat.result)
    H.record("notified", notified)
  end },
}, 600000)
