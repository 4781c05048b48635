-- ninetyten for Neovim: starts `ninetyten serve` for matching buffers and draws its inline
-- completions as ghost text. The server does the work; this stays a thin client.
local commands = require("ninetyten.commands")
local completion = require("ninetyten.completion")
local ghost = require("ninetyten.ghost")
local lsp = require("ninetyten.lsp")

local M = {}

M.defaults = {
  cmd = nil, -- { "ninetyten", "serve" } or a path to the executable; default: PATH, then <root>/.venv
  model = nil, -- --model: a .gguf path or a catalog id
  policy = nil, -- --policy: a policy.toml
  settings = {}, -- initializationOptions for the server (see the main README)
  filetypes = {
    "python", "lua", "javascript", "javascriptreact", "typescript", "typescriptreact",
    "go", "rust", "c", "cpp", "java", "sh", "ruby", "php",
  },
  root_markers = { ".ninetyten", ".git", "pyproject.toml", "setup.py", "package.json", "go.mod", "Cargo.toml" },
  auto_trigger = true, -- request completions while typing
  debounce_ms = 150,
  native = false, -- Neovim >= 0.12: use vim.lsp.inline_completion instead of the plugin's ghost text
  progress = true, -- echo the server's $/progress (model loading, explaining a change)
  forward_definitions = true, -- send the definitions other language servers know (an optional extra)
  keymaps = {
    accept = "<Tab>",
    dismiss = "<C-]>",
    suggest = "<M-\\>", -- request a completion now
    next = "<M-]>", -- the next suggestion (asks for alternatives the first time)
    prev = "<M-[>",
    accept_word = "<M-Right>", -- accept the next word, keep the rest on screen
    accept_line = "<M-C-Right>", -- accept the rest of the line (or the next line)
  },
}

M.config = vim.deepcopy(M.defaults)

local told_not_found = false
local group

local function use_native()
  return M.config.native and vim.lsp.inline_completion ~= nil
end

local function buffer_keymaps(buf)
  local keys = M.config.keymaps or {}
  local function map(lhs, when_visible, desc)
    if not lhs or lhs == "" then
      return
    end
    vim.keymap.set("i", lhs, function()
      if M.visible() then
        return when_visible
      end
      return lhs -- not ours this time: the key does what it always does
    end, { buffer = buf, expr = true, desc = desc })
  end
  map(keys.accept, "<Cmd>lua require('ninetyten').accept()<CR>", "ninetyten: accept the completion")
  if not use_native() then -- the native ghost text goes away by itself when the cursor moves
    map(keys.dismiss, "<Cmd>lua require('ninetyten').dismiss()<CR>", "ninetyten: dismiss the completion")
    map(keys.accept_word, "<Cmd>lua require('ninetyten').accept_word()<CR>", "ninetyten: accept the next word")
    map(keys.accept_line, "<Cmd>lua require('ninetyten').accept_line()<CR>", "ninetyten: accept the next line")
  end
  for name, delta in pairs({ next = 1, prev = -1 }) do
    local lhs = keys[name]
    if lhs and lhs ~= "" then
      vim.keymap.set("i", lhs, function()
        M.cycle(delta)
      end, { buffer = buf, desc = "ninetyten: " .. (delta > 0 and "next" or "previous") .. " suggestion" })
    end
  end
  if keys.suggest and keys.suggest ~= "" then
    vim.keymap.set("i", keys.suggest, function()
      M.suggest()
    end, { buffer = buf, desc = "ninetyten: suggest a completion" })
  end
end

local function buffer_autocmds(buf)
  local function on(events, callback)
    vim.api.nvim_create_autocmd(events, { group = group, buffer = buf, callback = callback })
  end
  if M.config.auto_trigger then
    on({ "InsertEnter" }, function()
      completion.schedule(buf)
    end)
    on({ "TextChangedI", "CursorMovedI" }, function()
      completion.on_change(buf)
    end)
  else
    on({ "TextChangedI", "CursorMovedI" }, function()
      if completion.visible(buf) then
        completion.on_change(buf, false)
      end
    end)
  end
  on({ "InsertLeave", "BufLeave" }, function()
    completion.dismiss(buf)
  end)
  on({ "BufWipeout" }, function()
    completion.detach(buf)
  end)
end

local attached = {}

-- Starts the server for `buf` (default: the current buffer) and sets up ghost text there.
function M.start(buf)
  buf = (buf == nil or buf == 0) and vim.api.nvim_get_current_buf() or buf
  if vim.api.nvim_buf_get_option(buf, "buftype") ~= "" then
    return nil
  end
  local name = vim.api.nvim_buf_get_name(buf)
  if name == "" then
    return nil -- the server identifies documents by their file
  end
  local root = lsp.find_root(name, M.config.root_markers) or vim.fn.fnamemodify(name, ":p:h")
  local cmd = lsp.resolve_cmd(M.config, root)
  if not cmd then
    if not told_not_found then
      told_not_found = true
      vim.notify(lsp.NOT_FOUND, vim.log.levels.ERROR)
    end
    return nil
  end
  local id = lsp.attach(buf, root, cmd, M.config)
  if id then
    M._setup_buffer(buf)
  end
  return id
end

-- Ghost text, autocommands and keymaps for an attached buffer (once).
function M._setup_buffer(buf)
  if attached[buf] then
    return
  end
  attached[buf] = true
  vim.api.nvim_create_autocmd("BufEnter", { group = group, buffer = buf, callback = function()
    completion.warm(buf)
  end })
  if use_native() then
    vim.lsp.inline_completion.enable(true, { bufnr = buf })
  else
    buffer_autocmds(buf)
  end
  buffer_keymaps(buf)
end

local function native_visible()
  local ns = vim.api.nvim_get_namespaces()["nvim.lsp.inline_completion"]
  return ns ~= nil and #vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { limit = 1 }) > 0
end

function M.visible()
  if use_native() then
    return native_visible()
  end
  return completion.visible()
end

-- Accepts the shown completion; returns false when none is shown (for your own mappings).
function M.accept()
  if use_native() then
    if not native_visible() then
      return false
    end
    vim.lsp.inline_completion.get()
    return true
  end
  return completion.accept()
end

function M.dismiss()
  completion.dismiss()
end

-- Accepts the next word / line of the shown completion and keeps the rest on screen.
function M.accept_word()
  return not use_native() and completion.accept_word()
end

function M.accept_line()
  return not use_native() and completion.accept_line()
end

-- The next (1) or previous (-1) suggestion; the first time, the server is asked explicitly,
-- which adds alternatives where the model was unsure.
function M.cycle(delta)
  if use_native() then
    if vim.lsp.inline_completion.select then
      vim.lsp.inline_completion.select({ count = delta })
    end
    return
  end
  completion.cycle(nil, delta)
end

function M.suggest()
  if use_native() then
    vim.lsp.inline_completion.get()
    return
  end
  completion.request()
end

-- A short status for the statusline: what served the last completion.
function M.status()
  local served = lsp.served
  local trust = lsp.policy_trust
  local untrusted = type(trust) == "table" and trust.needsApproval == true
  if type(served) ~= "table" then
    return untrusted and "ninetyten · policy not trusted" or ""
  end
  local parts = { "ninetyten" }
  if type(served.tier) == "string" then
    parts[#parts + 1] = served.tier
  end
  if type(served.latency_ms) == "number" then
    parts[#parts + 1] = string.format("%d ms", served.latency_ms)
  end
  if served.offline == true then
    parts[#parts + 1] = "offline"
  end
  if untrusted then
    parts[#parts + 1] = "policy not trusted"
  end
  return table.concat(parts, " · ")
end

local function user_commands()
  local create = vim.api.nvim_create_user_command
  create("NinetyTenExplain", commands.explain, {
    range = true, bang = true,
    desc = "ninetyten: explain the selection; without a range this file's change, with ! the staged change",
  })
  create("NinetyTenRefactor", commands.refactor, {
    range = true, nargs = "+", desc = "ninetyten: refactor the selection (or file) as instructed",
  })
  create("NinetyTenAsk", commands.ask, {
    range = true, nargs = "+", desc = "ninetyten: ask about the selection (or file)",
  })
  create("NinetyTenReport", commands.report, { nargs = "?", desc = "ninetyten: cost report (since: today, 7d, a date)" })
  create("NinetyTenOffline", commands.offline, { nargs = 0, desc = "ninetyten: toggle offline mode" })
  create("NinetyTenTrustPolicy", commands.trust_policy, {
    nargs = 0, desc = "ninetyten: show what the repository policy wants, and trust it or keep local",
  })
  create("NinetyTenUntrustPolicy", commands.untrust_policy, {
    nargs = 0, desc = "ninetyten: stop trusting the repository policy",
  })
  create("NinetyTenModel", commands.model, {
    nargs = "*", complete = commands.model_complete,
    desc = "ninetyten: local models: list | pull [MODEL ...] | use [chat] MODEL",
  })
end

local function matches(filetype)
  for _, candidate in ipairs(M.config.filetypes) do
    if candidate == "*" or candidate == filetype then
      return true
    end
  end
  return false
end

function M.setup(opts)
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts or {})
  -- A list replaces the default; tbl_deep_extend would merge it index by index.
  for _, key in ipairs({ "filetypes", "root_markers", "cmd" }) do
    if opts and opts[key] ~= nil then
      M.config[key] = opts[key]
    end
  end
  attached = {}
  completion.debounce_ms = M.config.debounce_ms
  completion.forward = M.config.forward_definitions ~= false
  vim.cmd("highlight default link " .. ghost.highlight .. " Comment")
  group = vim.api.nvim_create_augroup("ninetyten", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    callback = function(args)
      if matches(vim.api.nvim_buf_get_option(args.buf, "filetype")) then
        M.start(args.buf)
      end
    end,
  })
  vim.api.nvim_create_autocmd("ColorScheme", {
    group = group,
    callback = function()
      vim.cmd("highlight default link " .. ghost.highlight .. " Comment")
    end,
  })
  user_commands()
  -- Loaded lazily (lazy.nvim's `ft`/`event`), the buffers that triggered the load are open already.
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) and matches(vim.api.nvim_buf_get_option(buf, "filetype")) then
      M.start(buf)
    end
  end
  return M
end

return M
