"""Tree-sitter outlines across languages: definitions with kinds, parents, lines and headers,
and imports, as the index and the change facts read them."""

from __future__ import annotations

import pytest

from lsp_server.context.languages import LANGUAGES, grammar, language_for_path
from lsp_server.context.outline import FileOutline, outline


def table(parsed: FileOutline) -> dict[str, tuple[str, str]]:
    return {d.qualified_name: (d.kind, parsed.signature(d).strip()) for d in parsed.definitions}


def test_every_grammar_loads_and_its_queries_compile() -> None:
    # A grammar release that renames a node type would make this language silently unindexed.
    for spec in LANGUAGES:
        assert grammar(spec.name) is not None, spec.name


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("a/b.py", "python"),
        ("x.PYI", "python"),
        ("web/app.tsx", "tsx"),
        ("lib/x.mjs", "javascript"),
        ("main.go", "go"),
        ("src/lib.rs", "rust"),
        ("A.java", "java"),
        ("x.h", "c"),
        ("y.hpp", "cpp"),
        ("Makefile", None),
        ("notes.md", None),
        ("dir.py/file", None),
    ],
)
def test_language_from_path(path: str, language: str | None) -> None:
    assert language_for_path(path) == language


def test_python_definitions_members_and_locals() -> None:
    source = '''import os
X = 1

@dataclass
class A(B):
    """Doc."""
    f: int = 0

    def m(self, x: int,
          y: str) -> str:
        def inner():
            pass
        return x

    class N:
        def n(self): ...


def top(a, b=2):
    v = 3
'''
    parsed = outline(source, "python")
    got = table(parsed)
    assert got == {
        "X": ("constant", "X = 1"),
        "A": ("class", "@dataclass\nclass A(B):"),
        "A.f": ("field", "f: int = 0"),
        "A.m": ("method", "def m(self, x: int,\n          y: str) -> str:"),
        "A.N": ("class", "class N:"),
        "N.n": ("method", "def n(self):"),
        "top": ("function", "def top(a, b=2):"),
    }
    # locals (a nested function, a variable in a body) are not definitions
    assert "inner" not in {d.name for d in parsed.definitions} and "v" not in got
    m = next(d for d in parsed.definitions if d.name == "m")
    assert (m.line, m.end_line, m.header_end_line) == (8, 12, 9)


def test_python_imports_absolute_relative_aliased_and_star() -> None:
    parsed = outline(
        "import os, a.b as c\nfrom .x import y as z, w\nfrom .. import q\nfrom pkg.mod import *\n"
        "try:\n    import fast\nexcept ImportError:\n    fast = None\n",
        "python",
    )
    got = [(i.module, i.names, i.alias, i.level, i.line) for i in parsed.imports]
    assert got == [
        ("os", (), None, 0, 0),
        ("a.b", (), "c", 0, 0),
        ("x", (("y", "z"), ("w", "w")), None, 1, 1),
        ("", (("q", "q"),), None, 2, 2),
        ("pkg.mod", (("*", "*"),), None, 0, 3),
        ("fast", (), None, 0, 5),
    ]


def test_typescript_classes_interfaces_arrow_functions_and_imports() -> None:
    source = """import { a, b as c } from './mod';
import * as ns from "../x/y";
import def from 'pkg';
const { join, sep: s } = require('path');
export class Foo<T> extends Bar implements Baz {
  private x: number = 1;
  method(y: number): string { return ''; }
}
export function f(a: number, b?: string): void { const inner = () => 1; }
export const g = (x: number) => x * 2;
interface I { m(x: number): string; p: number; }
type T = { a: number };
enum E { A, B }
"""
    parsed = outline(source, "typescript")
    got = table(parsed)
    assert got["Foo"] == ("class", "export class Foo<T> extends Bar implements Baz")
    assert got["Foo.x"][0] == "field" and got["Foo.method"] == ("method", "method(y: number): string")
    assert got["f"] == ("function", "export function f(a: number, b?: string): void")
    assert got["g"] == ("function", "export const g = (x: number) =>")
    assert got["I"][0] == "interface" and got["I.m"][0] == "method" and got["I.p"][0] == "field"
    assert got["T"] == ("type", "type T = { a: number };") and got["E"][0] == "enum"
    assert "inner" not in {d.name for d in parsed.definitions}
    assert [(i.module, i.names, i.alias) for i in parsed.imports] == [
        ("./mod", (("a", "a"), ("b", "c")), None),
        ("../x/y", (), "ns"),
        ("pkg", (("default", "def"),), None),
        ("path", (("join", "join"), ("sep", "s")), None),
    ]


def test_go_methods_belong_to_their_receiver_type() -> None:
    source = """package main
import (
  "fmt"
  u "example.com/proj/pkg/util"
)
type T struct { A int }
type I interface { M(x int) string }
func (t *T) M(x int) string { return "" }
func F(a, b int) (int, error) { return 0, nil }
const C = 2
"""
    parsed = outline(source, "go")
    got = table(parsed)
    assert got["T"] == ("struct", "type T struct") and got["T.A"] == ("field", "A int")
    assert got["I"] == ("interface", "type I interface") and got["I.M"][0] == "method"
    assert got["T.M"] == ("method", "func (t *T) M(x int) string")
    assert got["F"] == ("function", "func F(a, b int) (int, error)") and got["C"] == ("constant", "const C = 2")
    assert [(i.module, i.alias) for i in parsed.imports] == [("fmt", None), ("example.com/proj/pkg/util", "u")]


def test_rust_impl_blocks_give_methods_to_the_type() -> None:
    source = """use std::collections::HashMap;
use crate::a::{b::C, d as e};
pub struct S { a: i32 }
pub trait Tr { fn t(&self) -> i32; }
impl Tr for S { fn t(&self) -> i32 { 1 } }
impl S { pub fn new(a: i32) -> Self { S { a } } }
pub fn f<T: Clone>(x: T) -> T { x }
"""
    got = table(outline(source, "rust"))
    assert got["S"] == ("struct", "pub struct S") and got["S.a"][0] == "field"
    assert got["S.new"] == ("method", "pub fn new(a: i32) -> Self") and got["S.t"][0] == "method"
    assert got["Tr"][0] == "trait" and got["Tr.t"][0] == "method"
    assert got["f"] == ("function", "pub fn f<T: Clone>(x: T) -> T")
    imports = outline(source, "rust").imports
    assert [(i.module, i.names) for i in imports] == [
        ("std::collections", (("HashMap", "HashMap"),)),
        ("crate::a::b", (("C", "C"),)),
        ("crate::a", (("d", "e"),)),
    ]


def test_java_c_and_cpp() -> None:
    java = table(
        outline(
            """package com.foo;
import java.util.List;
public class A extends B {
  private int x;
  public A(int x) { this.x = x; }
  public List<String> m(int y) throws Exception { return null; }
}
""",
            "java",
        )
    )
    assert java["A"] == ("class", "public class A extends B") and java["A.x"][0] == "field"
    assert java["A.A"][0] == "method" and java["A.m"] == ("method", "public List<String> m(int y) throws Exception")
    c = outline(
        '#include <stdio.h>\n#include "foo.h"\nstruct S { int a; };\nint f(int a, char *b);\n'
        "static char *g(void) { return 0; }\n#define M(x) (x)\n",
        "c",
    )
    assert table(c) == {
        "S": ("struct", "struct S"),
        "S.a": ("field", "int a;"),
        "f": ("function", "int f(int a, char *b);"),
        "g": ("function", "static char *g(void)"),
        "M": ("macro", "#define M(x) (x)"),
    }
    assert [(i.module, i.level) for i in c.imports] == [("stdio.h", 0), ("foo.h", 1)]
    cpp = outline(
        "class A : public B {\n public:\n  int m(int y) const;\n};\nint A::m(int y) const { return y; }\n", "cpp"
    )
    assert [(d.qualified_name, d.kind) for d in cpp.definitions] == [
        ("A", "class"),
        ("A.m", "method"),
        ("A.m", "method"),
    ]


def test_broken_code_still_gives_what_parses() -> None:
    parsed = outline("def ok(a):\n    return a\n\ndef broken(:\n    pass\n\nclass K:\n    def k(self): ...\n", "python")
    names = {d.qualified_name for d in parsed.definitions}
    assert {"ok", "K", "K.k"} <= names
