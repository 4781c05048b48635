-- Alternatives, partial accepts and forwarded definitions against a real `ninetyten serve`,
-- driven by tests/e2e/test_neovim.py:
--   $NINETYTEN_TEST_SETUP  JSON options for require("ninetyten").setup()
--   $NINETYTEN_TEST_FILE   the Python file to edit (its last line is "total =")
--   $NINETYTEN_TEST_DEFS   JSON: the command of a second language server that answers definitions
--   $NINETYTEN_TEST_OUT    where the observations go (JSON)
local here = debug.getinfo(1, "S").source:sub(2):match("(.*)/")
package.path = here .. "/?.lua;" .. package.path
local H = require("harness")
local ninetyten = require("ninetyten")
local completion = require("ninetyten.completion")
local ghost = require("ninetyten.ghost")
local lsp = require("ninetyten.lsp")

vim.o.showmode = false
vim.cmd("filetype on")

local options = vim.fn.json_decode(assert(os.getenv("NINETYTEN_TEST_SETUP")))
local defs_cmd = vim.fn.json_decode(assert(os.getenv("NINETYTEN_TEST_DEFS")))
local file = assert(os.getenv("NINETYTEN_TEST_FILE"))
local LOAD_TIMEOUT = 40000
local buf

local function ghost_text()
  local marks = vim.api.nvim_buf_get_extmarks(buf, ghost.namespace, 0, -1, { details = true })
  return #marks > 0 and marks[1][4].virt_text[1][1] or nil
end

local function wait_ghost(text, what)
  return H.wait_for(what, function() return ghost_text() == text end, LOAD_TIMEOUT)
end

local function last_line()
  local count = vim.api.nvim_buf_line_count(buf)
  return vim.api.nvim_buf_get_lines(buf, count - 1, count, false)[1]
end

local FIRST = string.rep(" x", 6)
local SECOND = " y" .. string.rep(" x", 5)

H.run({
  { "the server starts", function()
    ninetyten.setup(options)
    vim.cmd("edit " .. vim.fn.fnameescape(file))
    buf = vim.api.nvim_get_current_buf()
    H.wait_for("the client", function() return lsp.client_for(buf) end, LOAD_TIMEOUT)
  end },

  -- One test: the runner leaves insert mode between tests, which would end the suggestion.
  { "cycling through alternatives, then accepting a word at a time and the line", function()
    vim.api.nvim_win_set_cursor(0, { vim.api.nvim_buf_line_count(buf), 0 })
    vim.api.nvim_input("A")
    H.wait_for("insert mode", function() return vim.api.nvim_get_mode().mode == "i" end)
    wait_ghost(FIRST, "the first suggestion")
    H.record("first", ghost_text())
    vim.api.nvim_input("<M-]>") -- asks explicitly: the server adds the runner-up branch
    wait_ghost(SECOND, "the second suggestion")
    H.record("second", ghost_text())
    vim.api.nvim_input("<M-]>")
    wait_ghost(FIRST, "around to the first")
    vim.api.nvim_input("<M-[>")
    wait_ghost(SECOND, "back to the second")
    H.record("cycled_back", ghost_text())

    vim.api.nvim_input("<M-Right>")
    wait_ghost(string.rep(" x", 5), "the rest after a word")
    H.record("after_word", { line = last_line(), ghost = ghost_text() })
    local function accepted(how)
      return function()
        local last = completion.last_accept
        return last and last.result and last.result.accepted == how and last or nil
      end
    end
    H.record("partial_accept", H.wait_for("the partial accept recorded", accepted("partly"), 10000))
    H.sleep(400) -- longer than the debounce: the rest stays, nothing is asked again
    H.record("after_wait", ghost_text())
    vim.api.nvim_input("<M-Right>")
    wait_ghost(string.rep(" x", 4), "the rest after another word")
    vim.api.nvim_input("<M-C-Right>")
    H.wait_for("the line accepted", function() return ghost_text() == nil end)
    H.record("after_line", last_line())
    H.record("cursor", vim.api.nvim_win_get_cursor(0))
    H.record("accept_command", H.wait_for("the acceptance command", accepted(true), 10000))
  end },

  { "definitions from another language server reach the prompt", function()
    local other = vim.lsp.start_client({ name = "definition-stub", cmd = defs_cmd, root_dir = vim.fn.getcwd() })
    vim.lsp.buf_attach_client(buf, other)
    H.wait_for("the second server", function() return #lsp.definition_clients(buf) == 1 end, LOAD_TIMEOUT)
    vim.api.nvim_input("o")
    H.wait_for("insert mode", function() return vim.api.nvim_get_mode().mode == "i" end)
    vim.api.nvim_input("crc = checksum(")
    local ours = lsp.client_for(buf)
    local uri = vim.uri_from_bufnr(buf)
    local found = H.wait_for("a forwarded definition in the prompt's context", function()
      local row, col = unpack(vim.api.nvim_win_get_cursor(0))
      local answer
      lsp.request(ours, "ninetyten/context", {
        textDocument = { uri = uri }, position = { line = row - 1, character = col },
      }, function(err, result)
        answer = err == nil and result or false
      end, buf)
      H.wait_for("the context answer", function() return answer ~= nil end, 10000)
      for _, snippet in ipairs(answer and answer.snippets or {}) do
        if snippet.kind == "forwarded" then
          return snippet
        end
      end
      H.sleep(200)
      return nil
    end, LOAD_TIMEOUT)
    H.record("forwarded", found)
    vim.api.nvim_input("<Esc>")
  end },
}, 180000)
