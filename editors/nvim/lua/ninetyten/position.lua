-- LSP positions <-> byte columns. Neovim columns are bytes; an LSP character offset counts
-- units of the negotiated encoding (UTF-16 unless client and server agreed on UTF-8/UTF-32).
-- Pure Lua on purpose: vim.str_utfindex changed its signature in 0.11, and this must run on 0.7.
local M = {}

-- Bytes in the UTF-8 sequence that starts with `byte`; a stray byte counts as one character,
-- the way Neovim displays it.
local function sequence_length(byte)
  if byte < 0xC0 then
    return 1
  elseif byte < 0xE0 then
    return 2
  elseif byte < 0xF0 then
    return 3
  elseif byte < 0xF8 then
    return 4
  end
  return 1
end

local function units(length, encoding)
  if encoding == "utf-8" then
    return length
  elseif encoding == "utf-32" then
    return 1
  end
  return length == 4 and 2 or 1 -- UTF-16: astral characters are surrogate pairs
end

function M.normalize(encoding)
  encoding = type(encoding) == "string" and encoding:lower() or "utf-16"
  if encoding == "utf-8" or encoding == "utf-32" then
    return encoding
  end
  return "utf-16"
end

-- LSP character offset of the 0-based byte column `col` in `line`.
function M.to_lsp(line, col, encoding)
  encoding = M.normalize(encoding)
  col = math.max(0, math.min(col, #line))
  local i, count = 1, 0
  while i <= col do
    local length = math.min(sequence_length(line:byte(i)), #line - i + 1)
    count = count + units(length, encoding)
    i = i + length
  end
  return count
end

-- 0-based byte column of an LSP character offset; clamped to the line, and an offset that
-- falls inside a character rounds down to its start (the server does the same).
function M.from_lsp(line, character, encoding)
  encoding = M.normalize(encoding)
  local i, count = 1, 0
  while i <= #line do
    local length = math.min(sequence_length(line:byte(i)), #line - i + 1)
    local next_count = count + units(length, encoding)
    if next_count > character then
      break
    end
    count = next_count
    i = i + length
  end
  return i - 1
end

-- 0-based exclusive end byte of the character whose first byte is at 1-based `index`.
function M.char_end(line, index)
  if index < 1 or index > #line then
    return math.max(0, math.min(index, #line))
  end
  return math.min(index - 1 + sequence_length(line:byte(index)), #line)
end

return M
