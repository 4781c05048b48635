-- :NinetyTen* commands: thin wrappers over the server's workspace/executeCommand commands.
local ids = require("ninetyten.ids")
local lsp = require("ninetyten.lsp")
local position = require("ninetyten.position")

local M = {}

M.last_result = nil -- { command, result } of the last command, for tests and scripting

local function notify(message, level)
  vim.notify("ninetyten: " .. message, level or vim.log.levels.INFO)
end

local function with_client(buf)
  local client = lsp.client_for(buf)
  if not client then
    notify("the server is not running for this buffer (see :messages, or :lua require('ninetyten').start())",
      vim.log.levels.WARN)
  end
  return client
end

-- Runs a server command; `done(result)` gets the result object when there is no error.
function M.execute(buf, command, argument, done)
  local client = with_client(buf)
  if not client then
    return
  end
  local arguments = argument and { argument } or {}
  lsp.execute(client, { command = command, arguments = arguments }, buf, function(err, result)
    M.last_result = { command = command, err = err, result = result }
    if err then
      notify(command .. " failed: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
      return
    end
    if type(result) ~= "table" then
      notify(command .. " returned nothing", vim.log.levels.WARN)
      return
    end
    if result.error and result.error ~= vim.NIL then
      notify(tostring(result.error), vim.log.levels.WARN)
      if not (result.text or result.explanation) then
        return
      end
    end
    done(result)
  end)
end

local scratch = {} -- title -> buffer

-- Shows `lines` in a scratch split (reused per title); `q` closes it.
function M.show_scratch(title, lines, filetype)
  local buf = scratch[title]
  if not (buf and vim.api.nvim_buf_is_valid(buf)) then
    buf = vim.api.nvim_create_buf(false, true)
    scratch[title] = buf
    pcall(vim.api.nvim_buf_set_name, buf, "ninetyten://" .. title)
    vim.api.nvim_buf_set_option(buf, "bufhidden", "hide")
    vim.api.nvim_buf_set_option(buf, "swapfile", false)
    vim.api.nvim_buf_set_keymap(buf, "n", "q", "<Cmd>close<CR>", { noremap = true, silent = true })
  end
  vim.api.nvim_buf_set_option(buf, "modifiable", true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.api.nvim_buf_set_option(buf, "modifiable", false)
  vim.api.nvim_buf_set_option(buf, "filetype", filetype or "markdown")
  local win = vim.fn.bufwinid(buf)
  if win == -1 then
    vim.cmd("botright " .. math.max(5, math.min(#lines + 1, 20)) .. "split")
    win = vim.api.nvim_get_current_win()
    vim.api.nvim_win_set_buf(win, buf)
    vim.api.nvim_win_set_option(win, "wrap", true)
    vim.api.nvim_win_set_option(win, "linebreak", true)
  else
    vim.api.nvim_set_current_win(win)
  end
  vim.api.nvim_win_set_cursor(win, { 1, 0 })
  return buf
end

local function split(text)
  return vim.split(tostring(text), "\n", { plain = true })
end

local function footer(result)
  local parts = {}
  for _, key in ipairs({ "tier", "model" }) do
    if type(result[key]) == "string" then
      parts[#parts + 1] = result[key]
    end
  end
  if result.low_confidence == true then
    parts[#parts + 1] = "low confidence"
  end
  if #parts == 0 then
    return {}
  end
  return { "", "_" .. table.concat(parts, " · ") .. "_" }
end

-- The LSP range of the command's range: the exact characters of a charwise visual
-- selection, whole lines otherwise.
function M.selection_range(buf, opts, encoding)
  local first, last = opts.line1 - 1, opts.line2 - 1
  local first_line = vim.api.nvim_buf_get_lines(buf, first, first + 1, false)[1] or ""
  local last_line = vim.api.nvim_buf_get_lines(buf, last, last + 1, false)[1] or ""
  local start_col, end_col = 0, #last_line
  local vstart, vend = vim.fn.getpos("'<"), vim.fn.getpos("'>")
  if opts.range == 2 and vim.fn.visualmode() == "v" and vstart[2] == opts.line1 and vend[2] == opts.line2 then
    start_col = math.min(vstart[3] - 1, #first_line)
    end_col = position.char_end(last_line, math.min(vend[3], #last_line))
  end
  return {
    start = { line = first, character = position.to_lsp(first_line, start_col, encoding) },
    ["end"] = { line = last, character = position.to_lsp(last_line, end_col, encoding) },
  }
end

local function target(buf, opts, client)
  local argument = { textDocument = { uri = vim.uri_from_bufnr(buf) } }
  if opts.range and opts.range > 0 then
    argument.range = M.selection_range(buf, opts, client.offset_encoding)
  end
  return argument
end

local function where(buf, opts)
  local name = vim.fn.fnamemodify(vim.api.nvim_buf_get_name(buf), ":t")
  if opts.range and opts.range > 0 then
    return string.format("%s:%d-%d", name, opts.line1, opts.line2)
  end
  return name
end

-- :[range]NinetyTenExplain[!] — with a range: explain that code. Without: explain this
-- file's uncommitted change; with !: explain what is staged (the whole next commit).
function M.explain(opts)
  local buf = vim.api.nvim_get_current_buf()
  local client = with_client(buf)
  if not client then
    return
  end
  if opts.range and opts.range > 0 then
    vim.api.nvim_echo({ { "ninetyten: explaining…", "MoreMsg" } }, false, {})
    M.execute(buf, ids.commands.explainSelection, target(buf, opts, client), function(result)
      local lines = { "# Explanation of " .. where(buf, opts), "" }
      vim.list_extend(lines, split(result.text or ""))
      vim.list_extend(lines, footer(result))
      M.show_scratch("explanation", lines)
    end)
    return
  end
  local argument
  local title
  if opts.bang then
    argument, title = { staged = true }, "the staged change"
  else
    argument, title = { textDocument = { uri = vim.uri_from_bufnr(buf) } }, "the change to " .. where(buf, opts)
  end
  vim.api.nvim_echo({ { "ninetyten: explaining " .. title .. "…", "MoreMsg" } }, false, {})
  M.execute(buf, ids.commands.explainChange, argument, function(result)
    local text = result.explanation
    if type(text) ~= "string" then
      text = type(text) == "table" and vim.inspect(text) or tostring(result.error or "no explanation")
    end
    local lines = { "# Explanation of " .. title, "" }
    vim.list_extend(lines, split(text))
    M.show_scratch("explanation", lines)
  end)
end

-- :[range]NinetyTenRefactor {instruction} — rewrites the range (the whole file without one);
-- the server applies the edit, so `u` undoes it.
function M.refactor(opts)
  local buf = vim.api.nvim_get_current_buf()
  local client = with_client(buf)
  if not client then
    return
  end
  if opts.args == "" then
    notify("usage: :[range]NinetyTenRefactor {instruction}", vim.log.levels.WARN)
    return
  end
  local argument = target(buf, opts, client)
  argument.instruction = opts.args
  argument.apply = true
  vim.api.nvim_echo({ { "ninetyten: refactoring…", "MoreMsg" } }, false, {})
  M.execute(buf, ids.commands.refactorSelection, argument, function(result)
    if result.applied == true then
      notify("refactored " .. where(buf, opts) .. " (u undoes it)")
    elseif type(result.text) == "string" then
      local lines = { "# Proposed refactoring of " .. where(buf, opts) .. " (not applied)", "", "```" }
      vim.list_extend(lines, split(result.text))
      lines[#lines + 1] = "```"
      M.show_scratch("refactoring", lines)
    end
  end)
end

-- :[range]NinetyTenAsk {question} — about the range, or the whole file without one.
function M.ask(opts)
  local buf = vim.api.nvim_get_current_buf()
  local client = with_client(buf)
  if not client then
    return
  end
  if opts.args == "" then
    notify("usage: :[range]NinetyTenAsk {question}", vim.log.levels.WARN)
    return
  end
  local argument = target(buf, opts, client)
  argument.question = opts.args
  vim.api.nvim_echo({ { "ninetyten: thinking…", "MoreMsg" } }, false, {})
  M.execute(buf, ids.commands.ask, argument, function(result)
    local lines = { "# " .. opts.args, "", "_about " .. where(buf, opts) .. "_", "" }
    vim.list_extend(lines, split(result.text or ""))
    vim.list_extend(lines, footer(result))
    M.show_scratch("answer", lines)
  end)
end

-- :NinetyTenReport [since] — the cost report (default: today).
function M.report(opts)
  local buf = vim.api.nvim_get_current_buf()
  local argument = opts.args ~= "" and { since = opts.args } or nil
  M.execute(buf, ids.commands.report, argument, function(result)
    local lines = {}
    for _, text in ipairs(split((result.text or ""):gsub("%s+$", ""))) do
      lines[#lines + 1] = (text:gsub("%s+$", "")) -- the table is padded to a fixed width
    end
    M.show_scratch("report", lines, "text")
  end)
end

-- The lines shown before the user decides: every setting the repository policy wants, why it
-- needs trust, and the file's digest (an approval covers exactly that content).
function M.trust_lines(state)
  local lines = { "# Repository policy: what trusting it would allow", "" }
  if type(state.path) == "string" then
    lines[#lines + 1] = "File: " .. state.path
  end
  if type(state.sha256) == "string" then
    lines[#lines + 1] = "SHA-256: " .. state.sha256 .. " (any change to the file needs a new approval)"
  end
  local under = type(state.base) == "string" and ("your policy " .. state.base) or "the built-in default (everything local)"
  vim.list_extend(lines, { "", "Laid over " .. under .. ". Its stricter settings apply already; these wait for approval:", "" })
  for _, item in ipairs(type(state.ignored) == "table" and state.ignored or {}) do
    lines[#lines + 1] = "- " .. tostring(item.key) .. " = " .. tostring(item.value)
    lines[#lines + 1] = "    " .. tostring(item.reason)
  end
  return lines
end

-- :NinetyTenTrustPolicy — shows what the repository's .ninetyten/policy.toml wants that the
-- user's own policy does not allow, and asks: Trust (approve this file as it is) or Keep local.
function M.trust_policy()
  local buf = vim.api.nvim_get_current_buf()
  local client = with_client(buf)
  if not client then
    return
  end
  lsp.request(client, ids.methods.policyTrust, {}, function(err, state)
    M.last_result = { command = ids.methods.policyTrust, err = err, result = state }
    if err or type(state) ~= "table" then
      notify("could not ask the server about the policy: " .. vim.inspect(err), vim.log.levels.ERROR)
      return
    end
    if state.needsApproval ~= true then
      notify(state.trust == "approved" and "the repository policy is trusted already"
        or "the policy in force needs no approval")
      return
    end
    M.show_scratch("repository policy", M.trust_lines(state))
    vim.ui.select({ "Trust", "Keep local" }, {
      prompt = "Trust this repository policy (" .. #state.ignored .. " settings that could send code, keys or money elsewhere)?",
    }, function(choice)
      if choice ~= "Trust" then
        notify("kept local: the repository policy's looser settings stay ignored")
        M.last_result = { command = ids.commands.trustPolicy, result = { kept_local = true } }
        return
      end
      -- The digest that was shown: the server refuses if the file changed since.
      M.execute(buf, ids.commands.trustPolicy, { sha256 = state.sha256 }, function(result)
        notify("the repository policy is trusted (" .. tostring(result.trust) .. ")")
      end)
    end)
  end, buf)
end

-- :NinetyTenUntrustPolicy — withdraws the approval of the repository policy.
function M.untrust_policy()
  local buf = vim.api.nvim_get_current_buf()
  M.execute(buf, ids.commands.untrustPolicy, nil, function()
    notify("the repository policy is no longer trusted")
  end)
end

-- -- local models (ninetyten/models, ninetyten/pullModel, ninetyten/useModel) ------------------

local function megabytes(bytes)
  bytes = tonumber(bytes) or 0
  if bytes >= 1e9 then
    return string.format("%.1f GB", bytes / 1e9)
  end
  return string.format("%d MB", math.floor(bytes / 1e6 + 0.5))
end

local function model_line(label, model)
  if type(model) ~= "table" then
    return label .. "  ?"
  end
  if model.same_as_completion == true then
    return label .. "  the completion model"
  end
  local state = model.load_failed == true and "failed to load" or (model.ready == true and "ready" or "loading")
  local source = type(model.source) == "string" and (", " .. model.source) or ""
  return string.format("%s  %s (%s%s)", label, tostring(model.name), state, source)
end

-- The lines of :NinetyTenModel list: what serves each task, what this machine should run, what is pulled.
function M.model_lines(state)
  local lines = { "# Local models", "" }
  lines[#lines + 1] = model_line("completion", state.completion)
  lines[#lines + 1] = model_line("chat      ", state.chat)
  local choice = type(state.choice) == "table" and state.choice or {}
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Your choice (" .. tostring(choice.path) .. "): completion "
    .. (type(choice.completion) == "string" and choice.completion or "-") .. ", chat "
    .. (type(choice.chat) == "string" and choice.chat or "-")
  local rec = type(state.recommendation) == "table" and state.recommendation or nil
  if rec then
    vim.list_extend(lines, { "", "## Recommended for this machine (" .. tostring(rec.machine) .. ")", "" })
    for _, key in ipairs({ "completion", "chat" }) do
      local pick = rec[key]
      if type(pick) == "table" then
        local size = tonumber(pick.download_bytes) and pick.download_bytes > 0 and (", " .. megabytes(pick.download_bytes)) or ""
        lines[#lines + 1] = string.format("- %s: %s (%s%s)", key, tostring(pick.model_id), tostring(pick.quant), size)
        lines[#lines + 1] = "  " .. tostring(pick.why)
      end
    end
    if type(rec.pull) == "table" and #rec.pull > 0 then
      lines[#lines + 1] = ""
      lines[#lines + 1] = ":NinetyTenModel pull  downloads " .. table.concat(rec.pull, " and ") .. " ("
        .. megabytes(rec.download_bytes) .. ") and uses them"
    end
  end
  vim.list_extend(lines, { "", "## Pulled", "" })
  local pulled = type(state.pulled) == "table" and state.pulled or {}
  if #pulled == 0 then
    lines[#lines + 1] = "nothing yet"
  end
  for _, item in ipairs(pulled) do
    lines[#lines + 1] = string.format("- %s (%s, %s)", tostring(item.spec), tostring(item.quant), megabytes(item.size))
  end
  return lines
end

local function model_request(buf, method, params, done)
  local client = with_client(buf)
  if not client then
    return
  end
  lsp.request(client, method, params, function(err, result)
    M.last_result = { command = method, err = err, result = result }
    if err or type(result) ~= "table" then
      notify(method .. " failed: " .. vim.inspect(err), vim.log.levels.ERROR)
      return
    end
    if type(result.error) == "string" then
      notify(result.error, vim.log.levels.WARN)
      return
    end
    done(result)
  end, buf)
end

-- Said when the server's own --model (setup()'s `model`) wins over the choice just saved.
local function pinned_note(state)
  local pinned = type(state) == "table" and type(state.pinned) == "table" and state.pinned.completion
  if type(pinned) == "string" then
    return " (this server keeps " .. pinned .. " for completions: `model` in setup() wins over the saved choice)"
  end
  return ""
end

local function describe_use(used)
  local parts = {}
  for _, key in ipairs({ "completion", "chat" }) do
    if type(used[key]) == "string" then
      parts[#parts + 1] = used[key] .. (key == "chat" and " for explain, refactor and ask" or " for completions")
    end
  end
  return table.concat(parts, ", ")
end

-- :NinetyTenModel list | pull [MODEL ...] | use [chat] MODEL
--   list   what serves completions and chat tasks, what this machine should run, what is pulled
--   pull   download (default: the recommended models), with progress, and use them
--   use    switch to a pulled model (`default`: the built-in one); saved in your ninetyten config
function M.model(opts)
  local buf = vim.api.nvim_get_current_buf()
  local args = opts.fargs or vim.split(opts.args or "", "%s+", { trimempty = true })
  local action = args[1] or "list"
  if action == "list" then
    model_request(buf, ids.methods.models, {}, function(state)
      M.show_scratch("models", M.model_lines(state))
    end)
  elseif action == "pull" then
    local models = { unpack(args, 2) }
    vim.api.nvim_echo({ { "ninetyten: pulling " .. (#models > 0 and table.concat(models, ", ")
      or "the recommended models") .. "…", "MoreMsg" } }, false, {})
    -- No list at all (an empty Lua table could go out as an object): the server's recommendation.
    local params = { use = true, models = #models > 0 and models or nil }
    model_request(buf, ids.methods.pullModel, params, function(result)
      notify("pulled; now using " .. describe_use(result.used or {}) .. pinned_note(result.models))
    end)
  elseif action == "use" then
    local task, value = "completion", args[2]
    if args[2] == "chat" or args[2] == "completion" then
      task, value = args[2], args[3]
    end
    if not value then
      notify("usage: :NinetyTenModel use [chat] MODEL   (MODEL: a pulled id, REPO:FILE, a .gguf path or default)",
        vim.log.levels.WARN)
      return
    end
    model_request(buf, ids.methods.useModel, { [task] = value }, function(result)
      local note = task == "completion" and pinned_note(result.models) or ""
      notify("now using " .. describe_use({ [task] = value }) .. " (saved in your ninetyten config)" .. note)
    end)
  else
    notify("usage: :NinetyTenModel list | pull [MODEL ...] | use [chat] MODEL", vim.log.levels.WARN)
  end
end

function M.model_complete(arg_lead, line)
  local words = vim.split(line, "%s+", { trimempty = true })
  if #words <= 1 or (#words == 2 and arg_lead ~= "") then
    return vim.tbl_filter(function(item)
      return item:find(arg_lead, 1, true) == 1
    end, { "list", "pull", "use" })
  end
  return {}
end

-- :NinetyTenOffline — toggles offline mode; the server announces the new state itself.
function M.offline()
  local buf = vim.api.nvim_get_current_buf()
  M.execute(buf, ids.commands.toggleOffline, nil, function(result)
    M.offline_state = result.offline
  end)
end

return M
