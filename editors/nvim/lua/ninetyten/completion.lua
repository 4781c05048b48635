-- Inline completion for Neovim < 0.12 (and for 0.12 unless `native` is set): debounced
-- textDocument/inlineCompletion requests, ghost text, accept and dismiss.
local ghost = require("ninetyten.ghost")
local lsp = require("ninetyten.lsp")
local position = require("ninetyten.position")

local uv = vim.uv or vim.loop -- vim.loop is deprecated from 0.10 on

local M = {}

M.debounce_ms = 150
M.last_accept = nil -- { command, err, result } of the last acceptance command, for tests

local states = {} -- buf -> { timer, pending = { client_id, id }, item }

local function state(buf)
  local s = states[buf]
  if not s then
    s = {}
    states[buf] = s
  end
  return s
end

local function in_insert_mode()
  return vim.api.nvim_get_mode().mode:sub(1, 1) == "i"
end

local function line_at(buf, row)
  return vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ""
end

local function cursor()
  local pos = vim.api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

local function cancel_pending(s)
  local pending = s.pending
  s.pending = nil
  if pending then
    local client = vim.lsp.get_client_by_id(pending.client_id)
    if client then
      pcall(lsp.cancel, client, pending.id)
    end
  end
end

local function stop_timer(s)
  if s.timer then
    s.timer:stop()
  end
end

function M.clear(buf)
  local s = states[buf]
  if s then
    s.item = nil
  end
  ghost.clear(buf)
end

-- Hide the ghost text and forget any request in flight.
function M.dismiss(buf)
  buf = buf or vim.api.nvim_get_current_buf()
  local s = states[buf]
  if s then
    stop_timer(s)
    cancel_pending(s)
  end
  M.clear(buf)
end

function M.visible(buf)
  local s = states[buf or vim.api.nvim_get_current_buf()]
  return s ~= nil and s.item ~= nil
end

function M.current(buf)
  local s = states[buf or vim.api.nvim_get_current_buf()]
  return s and s.item
end

-- An item from the server made relative to the cursor: what to draw at (row, col) and which
-- buffer range the accepted text replaces. nil when it does not continue what is typed.
function M.make_item(buf, raw, row, col, encoding)
  local text = raw.insertText
  if type(text) == "table" then
    text = text.value -- a snippet string; ninetyten sends plain text, so show it as such
  end
  if type(text) ~= "string" or text == "" then
    return nil
  end
  local start_row, start_col, end_row, end_col = row, col, row, col
  if type(raw.range) == "table" then
    start_row, end_row = raw.range.start.line, raw.range["end"].line
    start_col = position.from_lsp(line_at(buf, start_row), raw.range.start.character, encoding)
    end_col = position.from_lsp(line_at(buf, end_row), raw.range["end"].character, encoding)
  end
  if start_row ~= row or start_col > col or end_row < row or (end_row == row and end_col < col) then
    return nil
  end
  local line = line_at(buf, row)
  -- A range that starts before the cursor covers text already typed: show only the rest.
  local lines = ghost.consume(ghost.split(text), line:sub(start_col + 1, col))
  if not lines or (#lines == 1 and lines[1] == "") then
    return nil
  end
  return { row = row, col = col, end_row = end_row, end_col = end_col, lines = lines, command = raw.command, line = line }
end

function M.show(buf, item)
  ghost.clear(buf)
  item.extmark = ghost.show(buf, item.row, item.col, item.lines)
  state(buf).item = item
end

local function on_result(buf, client, result, row, col, tick)
  if vim.api.nvim_get_current_buf() ~= buf or not in_insert_mode() then
    return
  end
  local now_row, now_col = cursor()
  if vim.api.nvim_buf_get_changedtick(buf) ~= tick or now_row ~= row or now_col ~= col then
    return -- the user moved on; a newer request is on its way
  end
  for _, raw in ipairs(result.items or result) do
    local item = M.make_item(buf, raw, row, col, client.offset_encoding)
    if item then
      item.client_id = client.id
      M.show(buf, item)
      return
    end
  end
end

-- Ask the server for a completion at the cursor now; an older request is cancelled.
function M.request(buf)
  buf = buf or vim.api.nvim_get_current_buf()
  if buf ~= vim.api.nvim_get_current_buf() or not in_insert_mode() then
    return
  end
  local client = lsp.client_for(buf)
  if not client then
    return
  end
  local s = state(buf)
  cancel_pending(s)
  local row, col = cursor()
  local tick = vim.api.nvim_buf_get_changedtick(buf)
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    position = { line = row, character = position.to_lsp(line_at(buf, row), col, client.offset_encoding) },
    context = { triggerKind = 2 }, -- Automatic
  }
  local id
  local ok, request_id = lsp.request(client, "textDocument/inlineCompletion", params, function(err, result)
    if not s.pending or s.pending.id ~= id then
      return -- superseded or dismissed
    end
    s.pending = nil
    if err == nil and type(result) == "table" then
      on_result(buf, client, result, row, col, tick)
    end
  end, buf)
  if ok and request_id then
    id = request_id
    s.pending = { client_id = client.id, id = request_id }
  end
end

function M.schedule(buf)
  local s = state(buf)
  if not s.timer then
    s.timer = uv.new_timer()
  end
  s.timer:stop()
  s.timer:start(M.debounce_ms, 0, vim.schedule_wrap(function()
    if vim.api.nvim_buf_is_valid(buf) then
      M.request(buf)
    end
  end))
end

-- Text changed or the cursor moved in insert mode. Typing the ghost text's own next
-- characters keeps the rest on screen; anything else starts over (asks again unless
-- `retrigger` is false).
function M.on_change(buf, retrigger)
  local s = state(buf)
  local item = s.item
  if item then
    local row, col = cursor()
    local line = line_at(buf, row)
    if row == item.row and col == item.col and line == item.line then
      return -- nothing happened from the completion's point of view (e.g. CursorMovedI after TextChangedI)
    end
    if row == item.row and col > item.col and item.end_row == item.row and item.end_col == item.col then
      local typed = line:sub(item.col + 1, col)
      local rest = ghost.consume(item.lines, typed)
      if rest and line == item.line:sub(1, item.col) .. typed .. item.line:sub(item.col + 1) then
        item.lines, item.col, item.end_col, item.line = rest, col, col, line
        M.show(buf, item)
        return
      end
    end
  end
  M.clear(buf)
  cancel_pending(s)
  if retrigger ~= false then
    M.schedule(buf)
  end
end

-- Inserts the shown completion; false when there is none (the caller falls back).
function M.accept(buf)
  buf = buf or vim.api.nvim_get_current_buf()
  local s = states[buf]
  local item = s and s.item
  if not item then
    return false
  end
  M.dismiss(buf)
  ghost.insert(buf, vim.api.nvim_get_current_win(), item.row, item.col, item.end_row, item.end_col, item.lines)
  local command = item.command
  if type(command) == "table" and command.command then
    -- The item's command runs after the insertion (LSP 3.18); ninetyten uses it to learn
    -- which completions were accepted.
    local client = vim.lsp.get_client_by_id(item.client_id)
    local local_handler = vim.lsp.commands and vim.lsp.commands[command.command]
    if local_handler then
      local_handler(command, { bufnr = buf, client_id = item.client_id })
    elseif client then
      lsp.execute(client, command, buf, function(err, result)
        M.last_accept = { command = command.command, err = err, result = result }
      end)
    end
  end
  return true
end

function M.detach(buf)
  local s = states[buf]
  if s then
    cancel_pending(s)
    if s.timer then
      s.timer:stop()
      s.timer:close()
    end
  end
  states[buf] = nil
end

return M
