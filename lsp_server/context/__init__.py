"""Repository context for completions: a background index of the workspace (tree-sitter
definitions, imports and chunks) and retrieval of the snippets that matter at a cursor.

See `service.RepositoryContext` for the life cycle and docs/context-engine.md for how it works
and what it costs. Import from the modules: this package imports nothing, so that a caller
needing only `languages` (the git hook's facts) does not load numpy and the index.
"""
