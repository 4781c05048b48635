"""What kind of edit a file or a function had: code, documentation (comments, docstrings) or
formatting only; and for a changed function, which parts changed (signature, return value,
body, docstring, comments).

These facts let a commit subject say "document total" or "change what total returns"
instead of "change total", and let the commit type be `docs` or `style` when a source file
changed only in its comments or layout. Files are compared as tree-sitter token streams, so
a change of indentation or of a comment is not a change of code.
"""

from __future__ import annotations

import difflib
import re
import textwrap
from collections.abc import Iterator
from typing import Literal

from tree_sitter import Node, Tree

from lsp_server.context.outline import Definition, FileOutline, parse

EditNature = Literal["code", "docs", "format"]

# Token comparison walks every leaf: bigger files are left as "code" rather than slowing the hook.
MAX_COMPARE_BYTES = 400_000

# The details a changed function can have, in the order a subject mentions them.
SIGNATURE = "signature changed"
RETURN = "return value changed"
BODY = "body changed"
DOC_ADDED = "docstring added"
DOC_REMOVED = "docstring removed"
DOC_CHANGED = "docstring changed"
COMMENTS = "comments changed"
FORMAT = "formatting changed"
RENAMED_USES = "follows a rename"  # changed only where it uses a renamed name
DETAIL_ORDER = (SIGNATURE, RETURN, BODY, DOC_ADDED, DOC_CHANGED, DOC_REMOVED, COMMENTS, FORMAT)
DOC_DETAILS = frozenset({DOC_ADDED, DOC_REMOVED, DOC_CHANGED, COMMENTS})

_HASH_COMMENTS = frozenset({"python"})
_RETURN = re.compile(r"^return\b")
_PY_DOCSTRING = re.compile(r"""\A\s*(?:#[^\n]*\n\s*)*[rRuU]?(\"\"\"|'''|"|')(?P<doc>.*?)(?<!\\)\1""", re.S)


def _is_docstring(node: Node) -> bool:
    """A Python string statement that opens a module, class or function body."""
    if node.type != "expression_statement" or node.named_child_count != 1:
        return False
    if node.named_children[0].type not in ("string", "concatenated_string"):
        return False
    parent = node.parent
    if parent is None or parent.type not in ("module", "block"):
        return False
    first = next((c for c in parent.named_children if c.type != "comment"), None)
    return first is not None and first.id == node.id


def _leaves(node: Node, language: str) -> Iterator[bytes]:
    stack = [node]
    while stack:
        current = stack.pop()
        if "comment" in current.type:
            continue
        if language == "python" and _is_docstring(current):
            continue
        if current.child_count == 0:
            yield current.text or b""
            continue
        stack.extend(reversed(current.children))


def code_tokens(text: str, language: str, tree: Tree | None = None) -> list[bytes] | None:
    """The file's tokens without comments (and Python docstrings), or None if it cannot be parsed.
    `tree`: the text already parsed (as UTF-8 with surrogatepass), so it is not parsed again."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) > MAX_COMPARE_BYTES:
        return None
    if tree is None:
        tree = parse(data, language)
    if tree is None:
        return None
    return list(_leaves(tree.root_node, language))


def file_nature(
    old_text: str,
    new_text: str,
    language: str,
    *,
    old_tree: Tree | None = None,
    new_tree: Tree | None = None,
) -> EditNature:
    """Whether a modified source file changed in its code, only in comments and docstrings, or
    only in layout. The trees, when given, are the texts already parsed (see `code_tokens`)."""
    if "".join(old_text.split()) == "".join(new_text.split()):
        return "format"
    old_tokens = code_tokens(old_text, language, old_tree)
    new_tokens = code_tokens(new_text, language, new_tree)
    if old_tokens is None or new_tokens is None or old_tokens != new_tokens:
        return "code"
    return "docs"


def _docstring(body: str) -> tuple[str | None, str]:
    m = _PY_DOCSTRING.match(body)
    if m is None:
        return None, body
    return " ".join(m["doc"].split()), body[: m.start(1)] + body[m.end() :]


def _comment(line: str, language: str) -> bool:
    if language in _HASH_COMMENTS:
        return line.startswith("#")
    return line.startswith(("//", "/*", "*", "*/"))


def _header(signature: str, language: str) -> tuple[str, str]:
    """A header's code (whitespace collapsed) and its comment lines."""
    code: list[str] = []
    notes: list[str] = []
    for line in signature.split("\n"):
        (notes if _comment(line.strip(), language) else code).append(line)
    return " ".join(" ".join(code).split()), "".join(f"{n}\n" for n in notes)


def _has_comment(line: str, language: str) -> bool:
    return ("#" if language in _HASH_COMMENTS else "//") in line or "/*" in line


def _same_code(old_text: str, new_text: str, language: str) -> bool:
    """Whether two versions of a definition have the same tokens once comments (and Python
    docstrings) are set aside."""
    old_tokens = code_tokens(textwrap.dedent(old_text), language)
    new_tokens = code_tokens(textwrap.dedent(new_text), language)
    return old_tokens is not None and old_tokens == new_tokens


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


def function_details(old: FileOutline, before: Definition, new: FileOutline, after: Definition) -> tuple[str, ...]:
    """Which parts of a function that changed between two versions did change."""
    language = new.language
    found: set[str] = set()
    old_header, old_notes = _header(old.signature(before), language)
    new_header, new_notes = _header(new.signature(after), language)
    if old_header != new_header:
        found.add(SIGNATURE)
    # A comment above a body's first statement ends up in the header's span: it belongs to the body.
    old_body = old_notes + old.source[before.header_end : before.end_byte].decode("utf-8", "replace")
    new_body = new_notes + new.source[after.header_end : after.end_byte].decode("utf-8", "replace")
    if language == "python":
        old_doc, old_body = _docstring(old_body)
        new_doc, new_body = _docstring(new_body)
        if old_doc is None and new_doc is not None:
            found.add(DOC_ADDED)
        elif old_doc is not None and new_doc is None:
            found.add(DOC_REMOVED)
        elif old_doc != new_doc:
            found.add(DOC_CHANGED)
    a, b = _lines(old_body), _lines(new_body)
    changed: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag != "equal":
            changed += a[i1:i2] + b[j1:j2]
    same_code = _same_code(old.text(before), new.text(after), language)
    for line in changed:
        if _comment(line, language):
            found.add(COMMENTS)
        elif same_code:
            found.add(COMMENTS if _has_comment(line, language) else FORMAT)  # `return x  # why`: a comment
        elif _RETURN.match(line):
            found.add(RETURN)
        else:
            found.add(BODY)
    if same_code and COMMENTS in found:
        found.discard(FORMAT)
    if not found:
        found.add(FORMAT)  # the texts differ (that is why it is "changed"), only in layout
    return tuple(d for d in DETAIL_ORDER if d in found)
