"""LSP handlers grouped by feature: each translates the protocol to a feature call and back.

Every module has `register(server)`; a handler fetches the document, calls, converts.
"""
