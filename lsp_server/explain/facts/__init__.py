"""Facts about a change, from the diff and tree-sitter, for grounded explanations and commit
messages: what files and symbols were added, removed, renamed or changed, what kind of change
it is, the commit type that follows, a subject built from the facts alone, and a check of a
model's subject against them.

    changes = parse_diff(staged_diff(repo))
    facts = extract_facts(changes, GitTexts.staged(repo))
    facts.lines()                       # for the prompt (prompt_facts: cut to a budget)
    check = grounded_subject(model_subject, facts)
    grounded = ground_message(model_message, facts)   # subject checked, body filtered

`FactsBuilder` collects the same facts one file at a time from a streamed diff.
"""

from lsp_server.explain.facts.categories import Category, category
from lsp_server.explain.facts.claims import anchored, contradictions, states_a_change
from lsp_server.explain.facts.dependencies import DependencyChange
from lsp_server.explain.facts.edits import EditNature, file_nature, function_details
from lsp_server.explain.facts.facts import ChangeFacts, FactsBuilder, FileFact, commit_types, extract_facts
from lsp_server.explain.facts.message import GroundedMessage, fact_bullets, ground_message, prompt_facts
from lsp_server.explain.facts.names import named_things, ungrounded_names
from lsp_server.explain.facts.sources import GitTexts, TextSource
from lsp_server.explain.facts.subject import SubjectCheck, factual_subject, grounded_subject
from lsp_server.explain.facts.symbols import SymbolChange

__all__ = [
    "Category",
    "ChangeFacts",
    "DependencyChange",
    "EditNature",
    "FactsBuilder",
    "FileFact",
    "GitTexts",
    "GroundedMessage",
    "SubjectCheck",
    "SymbolChange",
    "TextSource",
    "anchored",
    "category",
    "commit_types",
    "contradictions",
    "extract_facts",
    "fact_bullets",
    "factual_subject",
    "file_nature",
    "function_details",
    "ground_message",
    "grounded_subject",
    "named_things",
    "prompt_facts",
    "states_a_change",
    "ungrounded_names",
]
