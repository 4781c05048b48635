"""Facts about a change, from the diff and tree-sitter, for grounded explanations and commit
messages: what files and symbols were added, removed, renamed or changed, what kind of change
it is, the commit type that follows, a subject built from the facts alone, and a check of a
model's subject against them.

    changes = parse_diff(staged_diff(repo))
    facts = extract_facts(changes, GitTexts.staged(repo))
    facts.lines()                       # for the prompt
    check = grounded_subject(model_subject, facts)
"""

from lsp_server.explain.facts.categories import Category, category
from lsp_server.explain.facts.dependencies import DependencyChange
from lsp_server.explain.facts.facts import ChangeFacts, FileFact, commit_types, extract_facts
from lsp_server.explain.facts.sources import GitTexts, TextSource
from lsp_server.explain.facts.subject import (
    SubjectCheck,
    factual_subject,
    grounded_subject,
    named_things,
    ungrounded_names,
)
from lsp_server.explain.facts.symbols import SymbolChange

__all__ = [
    "Category",
    "ChangeFacts",
    "DependencyChange",
    "FileFact",
    "GitTexts",
    "SubjectCheck",
    "SymbolChange",
    "TextSource",
    "category",
    "commit_types",
    "extract_facts",
    "factual_subject",
    "grounded_subject",
    "named_things",
    "ungrounded_names",
]
