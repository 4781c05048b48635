-- :NinetyTenTrustPolicy against a real `ninetyten serve`, driven by tests/e2e/test_neovim.py.
-- The project's .ninetyten/policy.toml redirects the frontier tier; until it is trusted the
-- server ignores that. vim.ui.select is answered from a queue, as a user would pick.
--   $NINETYTEN_TEST_SETUP  JSON options for require("ninetyten").setup()
--   $NINETYTEN_TEST_FILE   the Python file to open (in the project)
--   $NINETYTEN_TEST_OUT    where the observations go (JSON)
local here = debug.getinfo(1, "S").source:sub(2):match("(.*)/")
package.path = here .. "/?.lua;" .. package.path
local H = require("harness")
local ninetyten = require("ninetyten")
local commands = require("ninetyten.commands")
local lsp = require("ninetyten.lsp")

vim.cmd("filetype on")
local options = vim.fn.json_decode(assert(os.getenv("NINETYTEN_TEST_SETUP")))
local file = assert(os.getenv("NINETYTEN_TEST_FILE"))
local TIMEOUT = 40000

local shown = {} -- window/showMessage texts
vim.lsp.handlers["window/showMessage"] = function(_, result)
  shown[#shown + 1] = result.message
  return result
end
local notified = {}
vim.notify = function(message)
  notified[#notified + 1] = message
end
local answers = {} -- what the "user" picks in vim.ui.select, in order
local prompts = {}
vim.ui.select = function(items, opts, on_choice)
  prompts[#prompts + 1] = { items = items, prompt = opts.prompt }
  on_choice(table.remove(answers, 1))
end

local buf

local function run(command_line, command)
  commands.last_result = nil
  vim.cmd(command_line)
  return H.wait_for(command .. " to answer", function()
    local last = commands.last_result
    return last and last.command == command and last
  end, TIMEOUT)
end

local function explain()
  vim.cmd("buffer " .. buf)
  local done = run("1,2NinetyTenExplain", "ninetyten.explainSelection")
  vim.cmd("buffer " .. buf)
  return done.result
end

H.run({
  { "an untrusted repository policy is said once and ignored", function()
    ninetyten.setup(options)
    vim.cmd("edit " .. vim.fn.fnameescape(file))
    buf = vim.api.nvim_get_current_buf()
    H.wait_for("the client", function() return lsp.client_for(buf) end, TIMEOUT)
    H.wait_for("the trust state", function() return lsp.policy_trust end, TIMEOUT)
    H.wait_for("the server's notice", function()
      for _, message in ipairs(shown) do
        if message:find("not trusted", 1, true) then
          return true
        end
      end
    end, TIMEOUT)
    H.record("initial_trust", lsp.policy_trust)
    H.record("status_untrusted", ninetyten.status())
    H.record("explain_untrusted", explain())
  end },

  { ":NinetyTenTrustPolicy, keep local", function()
    answers = { "Keep local" }
    local done = run("NinetyTenTrustPolicy", "ninetyten.trustPolicy")
    H.record("kept_local", done.result)
    H.record("details", vim.api.nvim_buf_get_lines(0, 0, -1, false))
    vim.cmd("close")
    H.record("trust_after_keep_local", lsp.policy_trust.trust)
  end },

  { ":NinetyTenTrustPolicy, trust", function()
    answers = { "Trust" }
    local done = run("NinetyTenTrustPolicy", "ninetyten.trustPolicy")
    H.record("trusted", done.result)
    pcall(vim.cmd, "close")
    H.wait_for("the approved state", function()
      return lsp.policy_trust and lsp.policy_trust.trust == "approved"
    end, TIMEOUT)
    H.record("explain_trusted", explain())
    H.record("prompts", prompts)
  end },

  { ":NinetyTenUntrustPolicy", function()
    run("NinetyTenUntrustPolicy", "ninetyten.untrustPolicy")
    H.wait_for("the untrusted state", function()
      return lsp.policy_trust and lsp.policy_trust.trust == "untrusted"
    end, TIMEOUT)
    H.record("explain_untrusted_again", explain())
    H.record("shown", shown)
    H.record("notified", notified)
  end },
}, 150000)
