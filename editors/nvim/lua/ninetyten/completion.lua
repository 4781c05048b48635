-- Inline completion for Neovim < 0.12 (and for 0.12 unless `native` is set): debounced
-- textDocument/inlineCompletion requests, ghost text, accept and dismiss.
local ghost = require("ninetyten.ghost")
local lsp = require("ninetyten.lsp")
local position = require("ninetyten.position")
local ids = require("ninetyten.ids")

local uv = vim.uv or vim.loop -- vim.loop is deprecated from 0.10 on

local M = {}

M.debounce_ms = 150
M.forward = true -- forward definitions from the buffer's other language servers
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
    s.item, s.items, s.index, s.explored = nil, nil, nil, nil
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
  return {
    row = row,
    col = col,
    end_row = end_row,
    end_col = end_col,
    lines = lines,
    command = raw.command,
    line = line,
    shown = table.concat(lines, "\n"), -- all of it as first shown: partial accepts count against it
    kept = "",
  }
end

function M.show(buf, item)
  ghost.clear(buf)
  item.extmark = ghost.show(buf, item.row, item.col, item.lines)
  state(buf).item = item
end

local function on_result(buf, client, result, row, col, tick, select)
  if vim.api.nvim_get_current_buf() ~= buf or not in_insert_mode() then
    return
  end
  local now_row, now_col = cursor()
  if vim.api.nvim_buf_get_changedtick(buf) ~= tick or now_row ~= row or now_col ~= col then
    return -- the user moved on; a newer request is on its way
  end
  -- Several items: the server's alternatives, best first (cycled with next / previous).
  local items = {}
  for _, raw in ipairs(result.items or result) do
    local item = M.make_item(buf, raw, row, col, client.offset_encoding)
    if item then
      item.client_id = client.id
      items[#items + 1] = item
    end
  end
  if #items == 0 then
    return
  end
  local index = select and select(#items) or 1
  local s = state(buf)
  s.items, s.index = items, index
  M.show(buf, items[index])
end

-- Ask the server for a completion at the cursor now; an older request is cancelled.
-- `opts.invoked`: an explicit request (the server then adds alternatives where the model is
-- unsure); `opts.select(count)` picks which of the items to show (default the first).
function M.request(buf, opts)
  opts = opts or {}
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
    context = { triggerKind = opts.invoked and 1 or 2 }, -- Invoked / Automatic
  }
  local id
  local ok, request_id = lsp.request(client, "textDocument/inlineCompletion", params, function(err, result)
    if not s.pending or s.pending.id ~= id then
      return -- superseded or dismissed
    end
    s.pending = nil
    if err == nil and type(result) == "table" then
      on_result(buf, client, result, row, col, tick, opts.select)
    end
  end, buf)
  if ok and request_id then
    id = request_id
    s.pending = { client_id = client.id, id = request_id }
  end
end

-- Definitions from the buffer's other language servers ------------------------------------

-- Where to ask for definitions on the cursor line: the function being called (the name before
-- the innermost unclosed "(") and the last complete name before the cursor; byte columns
-- (0-based), innermost call first, at most two. A cheap scan, strings and comments included:
-- a wrong guess costs one definition request that finds nothing.
function M.definition_targets(prefix)
  local names = {}
  local init = 1
  while true do
    local first, last = prefix:find("[%a_][%w_]*", init)
    if not first then
      break
    end
    names[#names + 1] = { first - 1, last } -- 0-based start, 1-based end (= 0-based end + 1)
    init = last + 1
  end
  local stack = {}
  for i = 1, #prefix do
    local ch = prefix:sub(i, i)
    if ch == "(" or ch == "[" or ch == "{" then
      stack[#stack + 1] = i
    elseif (ch == ")" or ch == "]" or ch == "}") and #stack > 0 then
      stack[#stack] = nil
    end
  end
  local targets = {}
  for k = #stack, 1, -1 do
    local open = stack[k]
    if prefix:sub(open, open) == "(" then
      for n = #names, 1, -1 do
        local name = names[n]
        if name[2] < open and prefix:sub(name[2] + 1, open - 1):match("^%s*$") then
          targets[1] = name[1]
          break
        end
      end
      break
    end
  end
  for n = #names, 1, -1 do
    if names[n][2] < #prefix then -- the name at the cursor is unfinished
      if names[n][1] ~= targets[1] then
        targets[#targets + 1] = names[n][1]
      end
      break
    end
  end
  return targets
end

-- Asks the other clients where the symbols at the cursor are defined and forwards the answers
-- to the ninetyten server (`ninetyten/definitions`); an optional extra, sent without waiting.
function M.forward_definitions(buf)
  if not M.forward then
    return
  end
  local client = lsp.client_for(buf)
  local others = client and lsp.definition_clients(buf) or {}
  if #others == 0 then
    return
  end
  local s = state(buf)
  local row, col = cursor()
  local line = line_at(buf, row)
  local prefix = line:sub(1, col)
  local targets = M.definition_targets(prefix)
  local key = row .. ":" .. table.concat(vim.tbl_map(function(t)
    return prefix:match("^[%w_]+", t + 1) or ""
  end, targets), ",")
  if #targets == 0 or key == s.forwarded then
    return
  end
  s.forwarded = key
  local uri = vim.uri_from_bufnr(buf)
  local found, waiting = {}, 0
  local function done()
    waiting = waiting - 1
    if waiting > 0 or #found == 0 then
      return
    end
    local ours = lsp.client_for(buf)
    if ours then
      lsp.notify(ours, ids.methods.definitions, { textDocument = { uri = uri }, definitions = found })
    end
  end
  for _, other in ipairs(others) do
    for _, target in ipairs(targets) do
      waiting = waiting + 1
      local params = {
        textDocument = { uri = uri },
        position = { line = row, character = position.to_lsp(line, target, other.offset_encoding) },
      }
      local ok = pcall(lsp.request, other, "textDocument/definition", params, function(err, result)
        if err == nil and type(result) == "table" then
          local list = (result.uri or result.targetUri) and { result } or result -- one, or a list
          for _, loc in ipairs(list) do
            local target_uri = loc.targetUri or loc.uri
            local range = loc.targetSelectionRange or loc.targetRange or loc.range
            if target_uri and range and #found < 8 then
              found[#found + 1] = { uri = target_uri, range = range }
            end
          end
        end
        done()
      end, buf)
      if not ok then
        done()
      end
    end
  end
end

-- The buffer got the focus: the server reads the prompt at the cursor into the model's cache
-- before the first keystroke.
function M.warm(buf)
  buf = buf or vim.api.nvim_get_current_buf()
  local client = lsp.client_for(buf)
  if not client or buf ~= vim.api.nvim_get_current_buf() then
    return
  end
  local row, col = cursor()
  lsp.notify(client, ids.methods.warm, {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    position = { line = row, character = position.to_lsp(line_at(buf, row), col, client.offset_encoding) },
  })
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
  -- Asked now, answered (usually) before the debounced request goes out.
  pcall(M.forward_definitions, buf)
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
        s.items, s.index, s.explored = { item }, 1, nil
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

-- Shows the next (delta 1) or previous (-1) suggestion. The first time, it asks the server
-- explicitly, which adds the alternatives where the model is unsure (as VS Code does).
function M.cycle(buf, delta)
  buf = buf or vim.api.nvim_get_current_buf()
  local s = states[buf]
  if not (s and s.item) then
    M.request(buf, { invoked = true })
    return false
  end
  if s.items and s.explored then
    local count = #s.items
    s.index = ((s.index or 1) - 1 + delta) % count + 1
    M.show(buf, s.items[s.index])
    return true
  end
  M.request(buf, {
    invoked = true,
    select = function(count)
      return (delta % count) + 1 -- 1 -> the second, -1 -> the last
    end,
  })
  s.explored = true
  return true
end

-- Words in `text` (runs of letters, digits and underscores), as partial accepts count them.
function M.count_words(text)
  local count = 0
  for _ in text:gmatch("[%w_]+") do
    count = count + 1
  end
  return count
end

-- The accept command's arguments for a partial accept: how much of the suggestion was kept so
-- far, in characters and words, of how much was shown. Counts only, never the text.
function M.partial_arguments(command, item)
  local args = vim.deepcopy((command.arguments or {})[1] or {})
  args.keptChars, args.shownChars = vim.fn.strchars(item.kept), vim.fn.strchars(item.shown)
  args.keptWords, args.shownWords = M.count_words(item.kept), M.count_words(item.shown)
  return vim.tbl_extend("force", command, { arguments = { args } })
end

local function run_command(buf, item, partial)
  local command = item.command
  if type(command) == "table" and command.command and partial then
    command = M.partial_arguments(command, item)
  end
  if type(command) == "table" and command.command then
    -- The item's command runs after the insertion (LSP 3.18); ninetyten uses it to learn
    -- which completions were accepted.
    local client = vim.lsp.get_client_by_id(item.client_id)
    local local_handler = vim.lsp.commands and vim.lsp.commands[command.command]
    if local_handler then
      local_handler(command, { bufnr = buf, client_id = item.client_id })
    elseif client then
      lsp.execute(client, command, buf, function(err, result)
        M.last_accept = { command = command.command, arguments = command.arguments, err = err, result = result }
      end)
    end
  end
end

-- The next word of `lines` (leading spaces, then a run of word characters or of other
-- characters), or the line break when the first line is used up; as a list of lines to insert.
function M.next_word(lines)
  local first = lines[1] or ""
  if first == "" then
    return #lines > 1 and { "", "" } or nil
  end
  local word = first:match("^%s*[%w_]+") or first:match("^%s*[^%w_%s]+") or first:match("^%s+")
  return { word }
end

-- The rest of the current line of `lines`, or the line break and the next line when the
-- first line is used up.
function M.next_line(lines)
  local first = lines[1] or ""
  if first ~= "" then
    return { first }
  end
  return #lines > 1 and { "", lines[2] } or nil
end

-- Inserts part of the shown completion (`pick(lines)` says which) and keeps showing the rest;
-- false when there is nothing to accept.
function M.accept_part(buf, pick)
  buf = buf or vim.api.nvim_get_current_buf()
  local s = states[buf]
  local item = s and s.item
  if not item then
    return false
  end
  local part = pick(item.lines)
  if not part then
    return false
  end
  local rest = vim.deepcopy(item.lines)
  if #part == 1 then
    rest[1] = rest[1]:sub(#part[1] + 1)
  else
    table.remove(rest, 1)
    rest[1] = rest[1]:sub(#part[2] + 1)
  end
  stop_timer(s)
  cancel_pending(s)
  local win = vim.api.nvim_get_current_win()
  local row, col = ghost.insert(buf, win, item.row, item.col, item.end_row, item.end_col, part)
  item.kept = item.kept .. table.concat(part, "\n")
  if #rest == 1 and rest[1] == "" then
    M.clear(buf)
    run_command(buf, item, true) -- all of it was taken, a part at a time
    return true
  end
  run_command(buf, item, true) -- the server's ledger counts what was kept so far
  -- The rest stays on screen and in hand: the change this insertion causes is not a new edit.
  item.row, item.col, item.end_row, item.end_col = row, col, row, col
  item.line = line_at(buf, row)
  item.lines = rest
  s.items, s.index, s.explored = { item }, 1, nil
  M.show(buf, item)
  return true
end

function M.accept_word(buf)
  return M.accept_part(buf, M.next_word)
end

function M.accept_line(buf)
  return M.accept_part(buf, M.next_line)
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
  run_command(buf, item)
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
