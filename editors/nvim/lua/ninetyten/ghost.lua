-- Ghost text: how an inline completion is drawn with extmarks, and how it is inserted.
local M = {}

M.namespace = vim.api.nvim_create_namespace("ninetyten_ghost")
M.highlight = "NinetyTenGhost"

-- Lines of a completion; LSP text may end lines with \r\n or \r.
function M.split(text)
  text = text:gsub("\r\n", "\n"):gsub("\r", "\n")
  local lines = {}
  for piece in (text .. "\n"):gmatch("(.-)\n") do
    lines[#lines + 1] = piece
  end
  return lines
end

-- Virtual text shows a tab as a single cell; expand it so the preview lines up with the result.
local function expand_tabs(text, tabstop)
  if not text:find("\t", 1, true) then
    return text
  end
  local out, width = {}, 0
  for char in text:gmatch("[%z\1-\127\194-\244][\128-\191]*") do
    if char == "\t" then
      local pad = tabstop - (width % tabstop)
      out[#out + 1] = string.rep(" ", pad)
      width = width + pad
    else
      out[#out + 1] = char
      width = width + 1
    end
  end
  return table.concat(out)
end

-- What to draw for `lines` inserted before `suffix` (the rest of the cursor line).
-- Returns { pos = "inline"|"overlay", virt_text = chunks, virt_lines = list of chunks }.
-- Before 0.10 there is no inline virtual text, so mid-line ghost text overlays the line and
-- redraws the suffix after itself; a multi-line completion moves the suffix to its last line,
-- which the preview shows by blanking the suffix on the cursor line.
function M.plan(lines, suffix, opts)
  local hl = opts.hl or M.highlight
  local tabstop = opts.tabstop or 8
  local first = expand_tabs(lines[1] or "", tabstop)
  local shown_suffix = expand_tabs(suffix or "", tabstop)
  local plan = { virt_lines = {} }
  if #lines == 1 then
    if shown_suffix == "" or opts.inline then
      plan.pos = (shown_suffix ~= "" and "inline") or "overlay"
      plan.virt_text = { { first, hl } }
    else
      plan.pos = "overlay"
      plan.virt_text = { { first, hl }, { shown_suffix, opts.suffix_hl or "Normal" } }
    end
    return plan
  end
  plan.pos = "overlay"
  plan.virt_text = { { first .. string.rep(" ", vim.fn.strdisplaywidth(shown_suffix)), hl } }
  for index = 2, #lines do
    local chunks = { { expand_tabs(lines[index], tabstop), hl } }
    if index == #lines and shown_suffix ~= "" then
      chunks[#chunks + 1] = { shown_suffix, opts.suffix_hl or "Normal" }
    end
    plan.virt_lines[#plan.virt_lines + 1] = chunks
  end
  return plan
end

M.has_inline = vim.fn.has("nvim-0.10") == 1

-- Draws `lines` at (row, col) (0-based, byte column); returns the extmark id.
function M.show(buf, row, col, lines)
  local line = vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ""
  local plan = M.plan(lines, line:sub(col + 1), {
    inline = M.has_inline,
    tabstop = vim.api.nvim_buf_get_option(buf, "tabstop"),
  })
  local opts = {
    virt_text = plan.virt_text,
    virt_text_pos = plan.pos,
    hl_mode = "combine",
    priority = 1000,
  }
  if #plan.virt_lines > 0 then
    opts.virt_lines = plan.virt_lines
  end
  return vim.api.nvim_buf_set_extmark(buf, M.namespace, row, col, opts)
end

function M.clear(buf)
  if vim.api.nvim_buf_is_valid(buf) then
    vim.api.nvim_buf_clear_namespace(buf, M.namespace, 0, -1)
  end
end

-- Where the cursor ends up after inserting `lines` at (row, col): right after the text.
function M.end_position(row, col, lines)
  if #lines == 1 then
    return row, col + #lines[1]
  end
  return row + #lines - 1, #lines[#lines]
end

-- Replaces (row, col)-(end_row, end_col) with `lines` and puts the cursor after them.
function M.insert(buf, win, row, col, end_row, end_col, lines)
  vim.api.nvim_buf_set_text(buf, row, col, end_row, end_col, lines)
  local new_row, new_col = M.end_position(row, col, lines)
  vim.api.nvim_win_set_cursor(win, { new_row + 1, new_col })
  return new_row, new_col
end

-- The completion left after the user typed `typed` at its start, or nil if they diverged.
function M.consume(lines, typed)
  if typed == "" then
    return lines
  end
  local first = lines[1]
  if #typed > #first or first:sub(1, #typed) ~= typed then
    return nil
  end
  if #typed == #first and #lines == 1 then
    return nil -- typed out completely: nothing left to show
  end
  local rest = { first:sub(#typed + 1) }
  for index = 2, #lines do
    rest[#rest + 1] = lines[index]
  end
  return rest
end

return M
