-- Unit tests of the plugin's helpers, no server involved:
--   NINETYTEN_TEST_OUT=out.json nvim --headless -u NONE -i NONE \
--     --cmd "set rtp^=editors/nvim" -c "luafile editors/nvim/tests/test_helpers.lua"
local here = debug.getinfo(1, "S").source:sub(2):match("(.*)/")
package.path = here .. "/?.lua;" .. package.path
local H = require("harness")
local position = require("ninetyten.position")
local ghost = require("ninetyten.ghost")
local lsp = require("ninetyten.lsp")
local completion = require("ninetyten.completion")
local commands = require("ninetyten.commands")

vim.o.showmode = false
local EMOJI_LINE = 'a = "😀😀" + xx' -- each emoji: 4 bytes, 2 UTF-16 units, 1 UTF-32 unit

local tests = {}
local function test(name, fn)
  tests[#tests + 1] = { name, fn }
end

test("positions: byte columns to LSP characters per encoding", function()
  H.eq(13, position.to_lsp(EMOJI_LINE, 17, "utf-16"), "utf-16 before xx")
  H.eq(11, position.to_lsp(EMOJI_LINE, 17, "utf-32"), "utf-32 before xx")
  H.eq(17, position.to_lsp(EMOJI_LINE, 17, "utf-8"), "utf-8 before xx")
  H.eq(15, position.to_lsp(EMOJI_LINE, #EMOJI_LINE, "utf-16"), "utf-16 end of line")
  H.eq(0, position.to_lsp(EMOJI_LINE, 0, "utf-16"), "start")
  H.eq(2, position.to_lsp("é=1", 3, "utf-16"), "two-byte character counts one unit")
  H.eq(1, position.to_lsp("中文", 3, "utf-16"), "three-byte character counts one unit")
  H.eq(15, position.to_lsp(EMOJI_LINE, 999, nil), "clamped, and nil means utf-16")
end)

test("positions: LSP characters to byte columns per encoding", function()
  H.eq(17, position.from_lsp(EMOJI_LINE, 13, "utf-16"), "utf-16")
  H.eq(17, position.from_lsp(EMOJI_LINE, 11, "utf-32"), "utf-32")
  H.eq(17, position.from_lsp(EMOJI_LINE, 17, "utf-8"), "utf-8")
  H.eq(5, position.from_lsp(EMOJI_LINE, 6, "utf-16"), "inside a surrogate pair rounds down")
  H.eq(5, position.from_lsp(EMOJI_LINE, 7, "utf-8"), "inside a UTF-8 sequence rounds down")
  H.eq(#EMOJI_LINE, position.from_lsp(EMOJI_LINE, 500, "utf-16"), "clamped to the line")
  for col = 0, #EMOJI_LINE do
    local ok = EMOJI_LINE:byte(col + 1) == nil or EMOJI_LINE:byte(col + 1) < 0x80 or EMOJI_LINE:byte(col + 1) >= 0xC0
    if ok then
      for _, enc in ipairs({ "utf-8", "utf-16", "utf-32" }) do
        H.eq(col, position.from_lsp(EMOJI_LINE, position.to_lsp(EMOJI_LINE, col, enc), enc), "round trip " .. enc)
      end
    end
  end
  H.eq(2, position.char_end("ab😀", 2), "end of an ASCII character")
  H.eq(6, position.char_end("ab😀", 3), "end of an emoji")
end)

test("ghost: splitting completion text into lines", function()
  H.eq({ "a", "b", "" }, ghost.split("a\nb\n"), "\\n")
  H.eq({ "a", "b" }, ghost.split("a\r\nb"), "\\r\\n")
  H.eq({ "a", "b" }, ghost.split("a\rb"), "\\r")
  H.eq({ "x" }, ghost.split("x"), "one line")
end)

test("ghost: display plans for single and multi-line items", function()
  local plan = ghost.plan({ "xxx" }, "", { inline = false })
  H.eq("overlay", plan.pos, "end of line overlays")
  H.eq({ { "xxx", "NinetyTenGhost" } }, plan.virt_text, "eol text")
  H.eq({}, plan.virt_lines, "no virtual lines")

  plan = ghost.plan({ "xxx" }, ")", { inline = false })
  H.eq("overlay", plan.pos, "mid-line without inline support")
  H.eq({ { "xxx", "NinetyTenGhost" }, { ")", "Normal" } }, plan.virt_text, "suffix redrawn after the ghost")

  plan = ghost.plan({ "xxx" }, ")", { inline = true })
  H.eq("inline", plan.pos, "mid-line with inline support")
  H.eq({ { "xxx", "NinetyTenGhost" } }, plan.virt_text, "inline text")

  plan = ghost.plan({ "if x:", "\treturn 1" }, "", { tabstop = 4 })
  H.eq({ { "if x:", "NinetyTenGhost" } }, plan.virt_text, "first line")
  H.eq({ { { "    return 1", "NinetyTenGhost" } } }, plan.virt_lines, "tab expanded in later lines")

  plan = ghost.plan({ "a(", "  b" }, "))", {})
  H.eq({ { "a(  ", "NinetyTenGhost" } }, plan.virt_text, "suffix blanked on the cursor line")
  H.eq({ { { "  b", "NinetyTenGhost" }, { "))", "Normal" } } }, plan.virt_lines, "suffix after the last line")
end)

test("ghost: typing into the completion", function()
  H.eq({ "llo" }, ghost.consume({ "hello" }, "he"), "prefix typed")
  H.eq(nil, ghost.consume({ "hello" }, "hx"), "diverged")
  H.eq(nil, ghost.consume({ "hello" }, "hello"), "typed out")
  H.eq({ "", "next" }, ghost.consume({ "ab", "next" }, "ab"), "first line typed out, more to come")
  H.eq({ "hello" }, ghost.consume({ "hello" }, ""), "nothing typed")
end)

test("ghost: end position after inserting", function()
  H.eq({ 3, 9 }, { ghost.end_position(3, 5, { "abcd" }) }, "one line")
  H.eq({ 5, 2 }, { ghost.end_position(3, 5, { "ab", "", "cd" }) }, "three lines")
end)

test("lsp: server command lookup order", function()
  local found = {}
  local function exe(path)
    return found[path] == true
  end
  H.eq(nil, lsp.resolve_cmd({}, "/p", exe), "nothing installed")
  found["/p/.venv/bin/ninetyten"] = true
  H.eq({ "/p/.venv/bin/ninetyten", "serve" }, lsp.resolve_cmd({}, "/p", exe), "project virtualenv")
  found["ninetyten"] = true
  H.eq({ "ninetyten", "serve" }, lsp.resolve_cmd({}, "/p", exe), "PATH wins over the virtualenv")
  H.eq({ "/opt/nt", "serve", "--model", "m.gguf", "--policy", "p.toml" },
    lsp.resolve_cmd({ cmd = "/opt/nt", model = "m.gguf", policy = "p.toml" }, "/p", exe), "cmd as a path")
  H.eq({ "nt", "serve", "--x" }, lsp.resolve_cmd({ cmd = { "nt", "serve", "--x" } }, "/p", exe), "cmd as a list")
  H.ok(lsp.NOT_FOUND:find("cmd =", 1, true), "the message says how to point at the server")
end)

test("lsp: project root", function()
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir .. "/proj/pkg/sub", "p")
  vim.fn.writefile({}, dir .. "/proj/pyproject.toml")
  H.eq(dir .. "/proj", lsp.find_root(dir .. "/proj/pkg/sub/mod.py", { "pyproject.toml" }), "marker above")
  H.eq(nil, lsp.find_root(dir .. "/proj/pkg/sub/mod.py", { "no-such-marker-here" }), "no marker")
end)

test("completion: items are placed relative to the cursor", function()
  local buf = vim.api.nvim_create_buf(true, false)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, { "x = 1", EMOJI_LINE })
  local item = completion.make_item(buf, { insertText = "yz", range = {
    start = { line = 1, character = 13 }, ["end"] = { line = 1, character = 13 } } }, 1, 17, "utf-16")
  H.eq({ row = 1, col = 17, end_row = 1, end_col = 17, lines = { "yz" } },
    { row = item.row, col = item.col, end_row = item.end_row, end_col = item.end_col, lines = item.lines },
    "range at the cursor, UTF-16")
  item = completion.make_item(buf, { insertText = "+ xxq", range = {
    start = { line = 1, character = 11 }, ["end"] = { line = 1, character = 13 } } }, 1, 17, "utf-16")
  H.eq({ "xxq" }, item and item.lines, "a range starting before the cursor shows what is not typed yet")
  H.eq(nil, completion.make_item(buf, { insertText = "zzz", range = {
    start = { line = 1, character = 11 }, ["end"] = { line = 1, character = 13 } } }, 1, 17, "utf-16"),
    "text that does not continue the typed text is dropped")
  H.eq(nil, completion.make_item(buf, { insertText = "" }, 1, 17, "utf-16"), "empty text")
  H.eq({ "a", "b" }, completion.make_item(buf, { insertText = "a\nb" }, 0, 5, "utf-16").lines, "no range: at the cursor")
  H.eq({ "s" }, completion.make_item(buf, { insertText = { kind = "snippet", value = "s" } }, 0, 5, "utf-16").lines,
    "snippet strings are shown as text")
  vim.api.nvim_buf_delete(buf, { force = true })
end)

test("completion: a multi-line item is drawn, then inserted by the accept key", function()
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir, "p")
  vim.cmd("edit " .. dir .. "/m.py")
  local buf = vim.api.nvim_get_current_buf()
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, { "def f(a):", "    return g(a)", "" })
  require("ninetyten").setup({ cmd = { "false" }, filetypes = {} })
  require("ninetyten")._setup_buffer(buf) -- what attaching does, without a server
  vim.api.nvim_win_set_cursor(0, { 2, 13 }) -- between "g(" and "a)"
  vim.api.nvim_input("i")
  H.wait_for("insert mode", function() return vim.api.nvim_get_mode().mode == "i" end)
  local lines = { "b, c", "        + d, " }
  completion.show(buf, { row = 1, col = 13, end_row = 1, end_col = 13, lines = lines, line = "    return g(a)" })
  local marks = vim.api.nvim_buf_get_extmarks(buf, ghost.namespace, 0, -1, { details = true })
  H.eq(1, #marks, "one extmark")
  H.eq(1, marks[1][2], "on the cursor row")
  H.eq(13, marks[1][3], "at the cursor column")
  H.eq({ { { "        + d, ", "NinetyTenGhost" }, { "a)", "Normal" } } }, marks[1][4].virt_lines, "second line below")
  local screen = H.screen(1, 4)
  H.eq("    return g(b, c", screen[2], "first line drawn at the cursor, the suffix blanked")
  H.eq("        + d, a)", screen[3], "the last line carries the suffix")
  vim.api.nvim_input("<Tab>")
  H.wait_for("the insertion", function() return not completion.visible() end)
  H.eq({ "def f(a):", "    return g(b, c", "        + d, a)", "" }, vim.api.nvim_buf_get_lines(buf, 0, -1, false), "inserted")
  H.eq({ 3, 13 }, vim.api.nvim_win_get_cursor(0), "cursor after the inserted text")
  H.eq(0, #vim.api.nvim_buf_get_extmarks(buf, ghost.namespace, 0, -1, {}), "ghost text gone")
  vim.api.nvim_input("<Tab>")
  H.sleep(30)
  H.eq("        + d, \ta)", vim.api.nvim_buf_get_lines(buf, 2, 3, false)[1], "without ghost text the key is a Tab again")
  vim.cmd("stopinsert")
  vim.cmd("bwipeout!")
end)

test("completion: a newer request cancels the one in flight", function()
  vim.cmd("enew")
  local buf = vim.api.nvim_get_current_buf()
  vim.api.nvim_buf_set_name(buf, vim.fn.tempname() .. ".py")
  local calls = { requests = {}, cancelled = {} }
  local next_id = 0
  -- Called as functions up to 0.10 and as methods (client:request) from 0.11 on.
  local fake
  local function args_of(...)
    local args = { ... }
    if args[1] == fake then
      table.remove(args, 1)
    end
    return unpack(args)
  end
  fake = {
    id = 4242, name = "ninetyten", offset_encoding = "utf-16",
    request = function(...)
      local method, params, handler = args_of(...)
      next_id = next_id + 1
      calls.requests[#calls.requests + 1] = { method = method, params = params, handler = handler, id = next_id }
      return true, next_id
    end,
    cancel_request = function(...)
      local id = args_of(...)
      calls.cancelled[#calls.cancelled + 1] = id
    end,
  }
  local real_client_for, real_get = lsp.client_for, vim.lsp.get_client_by_id
  lsp.client_for = function() return fake end
  vim.lsp.get_client_by_id = function(id) return id == fake.id and fake or real_get(id) end
  local ok, err = pcall(function()
    require("ninetyten")._setup_buffer(buf)
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, { "é = 1" })
    vim.api.nvim_win_set_cursor(0, { 1, 6 })
    vim.api.nvim_input("A")
    H.wait_for("insert mode", function() return vim.api.nvim_get_mode().mode == "i" end)
    completion.request(buf)
    completion.request(buf)
    H.eq(2, #calls.requests, "two requests")
    H.eq({ 1 }, calls.cancelled, "the first was cancelled when the second started")
    H.eq("textDocument/inlineCompletion", calls.requests[2].method, "method")
    H.eq({ line = 0, character = 5 }, calls.requests[2].params.position, "UTF-16 position after é")
    -- The answer to the cancelled request arrives anyway: it must not be shown.
    calls.requests[1].handler(nil, { items = { { insertText = "old" } } })
    H.eq(false, completion.visible(buf), "stale answer ignored")
    calls.requests[2].handler(nil, { items = { { insertText = "new" } } })
    H.eq({ "new" }, completion.current(buf).lines, "current answer shown")
    -- Typing the ghost text's next character keeps the rest; anything else clears it.
    vim.api.nvim_input("n")
    H.wait_for("the typed character", function() return vim.api.nvim_buf_get_lines(buf, 0, 1, false)[1] == "é = 1n" end)
    H.sleep(20)
    H.eq({ "ew" }, completion.current(buf) and completion.current(buf).lines, "typed into the ghost text")
    vim.api.nvim_input("q")
    H.wait_for("the ghost text to go", function() return not completion.visible(buf) end)
    H.wait_for("the debounced request", function() return #calls.requests == 3 end, 2000)
    H.eq({ line = 0, character = 7 }, calls.requests[3].params.position, "requested at the new cursor")
    vim.api.nvim_input("<Esc>")
    H.wait_for("normal mode", function() return vim.api.nvim_get_mode().mode == "n" end)
    H.eq({ 3 }, { calls.cancelled[2] }, "leaving insert mode cancels the request in flight")
  end)
  lsp.client_for, vim.lsp.get_client_by_id = real_client_for, real_get
  vim.cmd("bwipeout!")
  if not ok then
    error(err, 0)
  end
end)

test("completion: where to ask other servers for definitions", function()
  H.eq({ 13 }, completion.definition_targets("    digest = checksum_for_payload("), "the call being written")
  H.eq({ 10, 16 }, completion.definition_targets("x = outer(inner(a, "), "innermost call, then the last name")
  H.eq({ 4, 16 }, completion.definition_targets("x = outer(inner(a), "), "a closed call is not the one written")
  H.eq({ 0 }, completion.definition_targets("value = compu"), "the name being typed is unfinished")
  H.eq({}, completion.definition_targets("    "), "nothing")
end)

test("completion: the next word and the next line of a suggestion", function()
  H.eq({ " x" }, completion.next_word({ " x x" }), "spaces and a word")
  H.eq({ "(" }, completion.next_word({ "(a, b)" }), "punctuation")
  H.eq({ "foo_1" }, completion.next_word({ "foo_1.bar" }), "a word")
  H.eq({ "", "" }, completion.next_word({ "", "    y = 2" }), "the line break first")
  H.eq(nil, completion.next_word({ "" }), "nothing left")
  H.eq({ "a + b" }, completion.next_line({ "a + b", "c" }), "the rest of the line")
  H.eq({ "", "    c = 3" }, completion.next_line({ "", "    c = 3", "d" }), "the break and the next line")
end)

test("completion: partial accepts keep the rest; cycling asks for alternatives once", function()
  vim.cmd("enew")
  local buf = vim.api.nvim_get_current_buf()
  vim.api.nvim_buf_set_name(buf, vim.fn.tempname() .. ".py")
  local requests = {}
  local fake
  local function args_of(...)
    local args = { ... }
    if args[1] == fake then
      table.remove(args, 1)
    end
    return unpack(args)
  end
  fake = {
    id = 4343, name = "ninetyten", offset_encoding = "utf-16",
    request = function(...)
      local method, params, handler = args_of(...)
      requests[#requests + 1] = { method = method, params = params, handler = handler }
      return true, #requests
    end,
    cancel_request = function() end,
  }
  local real_client_for, real_get = lsp.client_for, vim.lsp.get_client_by_id
  lsp.client_for = function() return fake end
  vim.lsp.get_client_by_id = function(id) return id == fake.id and fake or real_get(id) end
  local ok, err = pcall(function()
    require("ninetyten").setup({ cmd = { "false" }, filetypes = {} })
    require("ninetyten")._setup_buffer(buf)
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, { "v = " })
    vim.api.nvim_win_set_cursor(0, { 1, 4 })
    vim.api.nvim_input("A")
    H.wait_for("insert mode", function() return vim.api.nvim_get_mode().mode == "i" end)
    completion.request(buf)
    H.eq(2, requests[1].params.context.triggerKind, "typing: an automatic request")
    requests[1].handler(nil, { items = { { insertText = "foo(a, b)" } } })
    H.eq({ "foo(a, b)" }, completion.current(buf).lines, "shown")
    -- Cycling: an explicit request, whose alternatives are then cycled without asking again.
    require("ninetyten").cycle(1)
    H.eq(1, requests[2].params.context.triggerKind, "cycling: an explicit request")
    requests[2].handler(nil, { items = { { insertText = "foo(a, b)" }, { insertText = "bar()" } } })
    H.eq({ "bar()" }, completion.current(buf).lines, "the second suggestion")
    require("ninetyten").cycle(1)
    H.eq({ "foo(a, b)" }, completion.current(buf).lines, "around to the first")
    require("ninetyten").cycle(-1)
    H.eq({ "bar()" }, completion.current(buf).lines, "back")
    H.eq(2, #requests, "no third request")
    require("ninetyten").cycle(-1)
    -- Accept by word: "foo", then "(", then the rest of the line.
    H.eq(true, require("ninetyten").accept_word(), "a word accepted")
    H.eq("v = foo", vim.api.nvim_buf_get_lines(buf, 0, 1, false)[1], "the word inserted")
    H.eq({ "(a, b)" }, completion.current(buf).lines, "the rest still shown")
    H.sleep(60)
    H.eq({ "(a, b)" }, completion.current(buf) and completion.current(buf).lines, "and kept: no new request")
    H.eq(2, #requests, "nothing asked")
    require("ninetyten").accept_word()
    H.eq("v = foo(", vim.api.nvim_buf_get_lines(buf, 0, 1, false)[1], "punctuation")
    require("ninetyten").accept_line()
    H.eq("v = foo(a, b)", vim.api.nvim_buf_get_lines(buf, 0, 1, false)[1], "the rest of the line")
    H.eq({ 1, 13 }, vim.api.nvim_win_get_cursor(0), "cursor after it")
    H.eq(false, completion.visible(buf), "nothing left to show")
    vim.cmd("stopinsert")
  end)
  lsp.client_for, vim.lsp.get_client_by_id = real_client_for, real_get
  vim.cmd("bwipeout!")
  if not ok then
    error(err, 0)
  end
end)

test("commands: LSP range of a command range", function()
  vim.cmd("enew")
  local buf = vim.api.nvim_get_current_buf()
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, { "one", EMOJI_LINE, "three" })
  H.eq({ start = { line = 0, character = 0 }, ["end"] = { line = 1, character = 15 } },
    commands.selection_range(buf, { range = 2, line1 = 1, line2 = 2 }, "utf-16"), "whole lines")
  -- Charwise visual selection of "😀😀" (bytes 6..13, 1-based): exact characters.
  vim.api.nvim_win_set_cursor(0, { 2, 5 })
  vim.cmd("normal! v")
  vim.api.nvim_win_set_cursor(0, { 2, 9 })
  vim.cmd("normal! \27")
  H.eq({ start = { line = 1, character = 5 }, ["end"] = { line = 1, character = 9 } },
    commands.selection_range(buf, { range = 2, line1 = 2, line2 = 2 }, "utf-16"), "charwise, UTF-16")
  H.eq({ start = { line = 1, character = 5 }, ["end"] = { line = 1, character = 13 } },
    commands.selection_range(buf, { range = 2, line1 = 2, line2 = 2 }, "utf-8"), "charwise, UTF-8")
  vim.cmd("bwipeout!")
end)

test("commands: scratch buffer", function()
  local buf = commands.show_scratch("t", { "# Title", "", "text" })
  H.eq("markdown", vim.api.nvim_buf_get_option(buf, "filetype"), "markdown")
  H.eq("nofile", vim.api.nvim_buf_get_option(buf, "buftype"), "scratch")
  H.eq(buf, vim.api.nvim_get_current_buf(), "focused")
  H.eq(buf, commands.show_scratch("t", { "again" }), "reused")
  H.eq({ "again" }, vim.api.nvim_buf_get_lines(buf, 0, -1, false), "replaced")
  vim.cmd("close")
end)

H.run(tests, 30000)
