"""textDocument/didClose through a real session: what the server kept for a document goes away."""

from __future__ import annotations

import asyncio
from typing import Any

from lsprotocol import types

from tests.lsp_session import inline, lsp_session, open_document, served_notifications

OPTIONS = {"completion": {"max_tokens": 8, "time_limit_ms": 60_000}}
# Thirty distinct lines: edited, a context snippet of a hundred tokens or more, impossible to miss in a prompt.
HELPERS = "".join(f"def helper_{n}(value):\n    return value * {n} + {n * 7}\n" for n in range(15))


async def stats(client: Any) -> dict[str, Any]:
    result = await client.protocol.send_request_async("ninetyten/stats", {})
    return result if isinstance(result, dict) else result._asdict()


async def served_after(client: Any, count: int) -> dict[str, Any]:
    served = served_notifications(client)
    for _ in range(6000):
        if len(served) >= count:
            return served[count - 1]
        await asyncio.sleep(0.01)
    raise AssertionError(f"no ninetyten/served notification number {count}")


async def test_a_closed_document_no_longer_feeds_context_or_the_cache(endless_model_path, session_home, tmp_path):
    async with lsp_session(model=endless_model_path, home=session_home, options=OPTIONS) as client:
        helpers = open_document(client, tmp_path / "helpers.py", HELPERS)
        main = open_document(client, tmp_path / "main.py", "value = \n")
        # Lines edited in helpers.py are context for the other files.
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=helpers, version=2),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(types.Position(0, 0), types.Position(30, 0)), text=HELPERS
                    )
                ],
            )
        )
        assert (await inline(client, helpers, 30, 0)).items  # a suggestion cached for helpers.py
        assert (await inline(client, main, 0, 8)).items[0].insert_text == "x" * 8
        with_helpers = (await served_after(client, 2))["prompt_tokens"]
        before = await stats(client)
        assert (before["cache_entries"], before["context_chunks"]) == (2, 1)

        client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=helpers))
        )
        after = await stats(client)  # answered after the notification: the close has been handled
        assert (after["cache_entries"], after["context_chunks"]) == (1, 0)

        # The same request in main.py (edited below the cursor, so not served from the cache)
        # no longer carries helpers.py in its prompt.
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=main, version=2),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text="value = \n\n")],
            )
        )
        assert (await inline(client, main, 0, 8)).items[0].insert_text == "x" * 8
        without_helpers = (await served_after(client, 3))["prompt_tokens"]
        assert without_helpers < with_helpers - 60, (with_helpers, without_helpers)

        # And the document itself is gone: a request for it is empty, not an error.
        assert list((await inline(client, helpers, 30, 0)).items) == []
