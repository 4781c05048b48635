-- Finding and starting the server, and the few client calls whose shape changed across
-- Neovim versions (0.7 has no vim.lsp.start; 0.11 turned client functions into methods).
local uv = vim.uv or vim.loop -- vim.loop is deprecated from 0.10 on
local ids = require("ninetyten.ids") -- the server's method and command ids (generated)

local M = {}

local METHOD_CALLS = vim.fn.has("nvim-0.11") == 1

function M.request(client, method, params, handler, bufnr)
  if METHOD_CALLS then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

function M.notify(client, method, params)
  if METHOD_CALLS then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

function M.cancel(client, id)
  if METHOD_CALLS then
    return client:cancel_request(id)
  end
  return client.cancel_request(id)
end

function M.execute(client, command, bufnr, handler)
  local params = { command = command.command, arguments = command.arguments }
  return M.request(client, "workspace/executeCommand", params, handler or function() end, bufnr)
end

-- The project root: the nearest directory above `path` holding one of `markers`.
function M.find_root(path, markers)
  local dir = vim.fn.fnamemodify(path, ":p:h")
  while true do
    for _, marker in ipairs(markers) do
      if uv.fs_stat(dir .. "/" .. marker) then
        return dir
      end
    end
    local parent = vim.fn.fnamemodify(dir, ":h")
    if parent == dir then
      return nil
    end
    dir = parent
  end
end

M.NOT_FOUND = table.concat({
  "ninetyten: the language server was not found.",
  "Install it so that `ninetyten` is on your PATH (e.g. `pipx install <path to a ninetyten checkout>`),",
  "or run `make setup` in the project to get .venv/bin/ninetyten,",
  "or point the plugin at it: require('ninetyten').setup({ cmd = { '/path/to/ninetyten', 'serve' } })",
}, "\n")

local function is_executable(path)
  return vim.fn.executable(path) == 1
end

-- The server command: `cmd` from the options, else `ninetyten` on PATH, else the project's
-- own virtualenv. Returns nil when none is found. `executable` is injectable for tests.
function M.resolve_cmd(opts, root, executable)
  executable = executable or is_executable
  local cmd
  if type(opts.cmd) == "table" then
    cmd = vim.deepcopy(opts.cmd)
  elseif type(opts.cmd) == "string" then
    cmd = { opts.cmd, "serve" }
  elseif executable("ninetyten") then
    cmd = { "ninetyten", "serve" }
  else
    local candidates = {}
    if root then
      candidates = { root .. "/.venv/bin/ninetyten", root .. "/.venv/Scripts/ninetyten.exe" }
    end
    for _, candidate in ipairs(candidates) do
      if executable(candidate) then
        cmd = { candidate, "serve" }
        break
      end
    end
  end
  if not cmd then
    return nil
  end
  -- The command runs without a shell, so "~/models/x.gguf" has to be expanded here.
  local function home(path)
    return (path:gsub("^~/", (vim.env.HOME or "~") .. "/"))
  end
  if opts.model then
    vim.list_extend(cmd, { "--model", home(opts.model) })
  end
  if opts.policy then
    vim.list_extend(cmd, { "--policy", home(opts.policy) })
  end
  return cmd
end

M.progress = {} -- token -> { title, message, percentage, done }, for status() and tests
M.served = nil -- the last ninetyten/served summary
M.policy_trust = nil -- the last ninetyten/policyTrust state (the repository policy's trust)

local function progress_handler(echo)
  return function(err, result, ctx, config)
    -- Keep Neovim's own bookkeeping (and with it fidget.nvim & co.) working.
    local default = vim.lsp.handlers["$/progress"]
    if default then
      pcall(default, err, result, ctx, config)
    end
    local value = result and result.value
    if type(value) ~= "table" or not value.kind then
      return
    end
    local token = tostring(result.token)
    local entry = M.progress[token] or {}
    M.progress[token] = entry
    entry.title = value.title or entry.title or "ninetyten"
    entry.message = value.message or entry.message
    entry.percentage = value.percentage or entry.percentage
    entry.done = value.kind == "end"
    if echo then
      local text = entry.title
      if not text:find("^ninetyten") then
        text = "ninetyten: " .. text
      end
      if entry.message then
        text = text .. ": " .. entry.message
      end
      if entry.percentage and not entry.done then
        text = text .. string.format(" (%d%%)", entry.percentage)
      end
      vim.api.nvim_echo({ { text, entry.done and "None" or "MoreMsg" } }, false, {})
    end
  end
end

local function served_handler(_, result)
  M.served = result
end

local function policy_trust_handler(_, result)
  M.policy_trust = result
end

local function capabilities()
  local caps = vim.lsp.protocol.make_client_capabilities()
  caps.textDocument = caps.textDocument or {}
  -- Neovim < 0.12 does not know inline completion; the plugin does the client side itself.
  caps.textDocument.inlineCompletion = { dynamicRegistration = false }
  return caps
end

local clients = {} -- "root\0cmd" -> client id (for 0.7, which has no vim.lsp.start)

local function same_cmd(a, b)
  return table.concat(a or {}, "\0") == table.concat(b or {}, "\0")
end

-- Starts (or reuses) the client for `root` and attaches `buf`; returns the client id.
function M.attach(buf, root, cmd, opts)
  local config = {
    name = "ninetyten",
    cmd = cmd,
    root_dir = root,
    capabilities = capabilities(),
    handlers = {
      ["$/progress"] = progress_handler(opts.progress ~= false),
      [ids.methods.served] = served_handler,
      [ids.methods.policyTrust] = policy_trust_handler,
    },
  }
  if opts.settings and next(opts.settings) ~= nil then
    config.init_options = { ninetyten = opts.settings }
  end
  if vim.lsp.start then
    return vim.lsp.start(config, {
      bufnr = buf,
      reuse_client = function(client, conf)
        return client.name == conf.name and client.config.root_dir == conf.root_dir
          and same_cmd(client.config.cmd, conf.cmd)
      end,
    })
  end
  local key = (root or "") .. "\0" .. table.concat(cmd, "\0")
  local id = clients[key]
  if not (id and vim.lsp.get_client_by_id(id)) then
    id = vim.lsp.start_client(config)
    clients[key] = id
  end
  if id then
    vim.lsp.buf_attach_client(buf, id)
  end
  return id
end

local function attached_clients(buf)
  if vim.lsp.get_clients then
    return vim.lsp.get_clients({ bufnr = buf })
  end
  return vim.lsp.buf_get_clients(buf) -- 0.7-0.9; initialized clients only
end

-- Our client attached to `buf`, if any.
function M.client_for(buf)
  for _, client in pairs(attached_clients(buf)) do
    if client.name == "ninetyten" then
      return client
    end
  end
  return nil
end

-- The other clients attached to `buf` that answer textDocument/definition.
function M.definition_clients(buf)
  local out = {}
  for _, client in pairs(attached_clients(buf)) do
    local caps = client.server_capabilities
    local resolved = client.resolved_capabilities -- 0.7
    local ok = (caps and caps.definitionProvider) or (resolved and resolved.goto_definition)
    if client.name ~= "ninetyten" and ok then
      out[#out + 1] = client
    end
  end
  return out
end

return M
