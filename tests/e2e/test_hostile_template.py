"""A model file whose chat template would never finish rendering, through a real LSP session:
the server keeps answering other requests meanwhile, and the chat falls back to the plain layout."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from local_models.tiny import CHAT_TEMPLATE, build_tiny_model
from tests.e2e.test_routing_server import _as_dict
from tests.lsp_session import inline, lsp_session, open_document

# 10^10 empty loop steps: hours of pure CPU inside a template that is otherwise normal.
SLOW = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


@pytest.fixture(scope="module")
def hostile_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(
        tmp_path_factory.mktemp("hostile") / "tiny-slow-template.gguf", favour="x", chat_template=SLOW + CHAT_TEMPLATE
    )


async def test_the_server_answers_while_a_hostile_template_renders(hostile_model: Path, tmp_path: Path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    options = {"completion": {"max_tokens": 3}, "assist": {"max_tokens": 4}}
    async with lsp_session(model=hostile_model, home=tmp_path / "home", options=options, root=workspace) as client:
        uri = open_document(client, workspace / "a.py", "def f():\n    return 1\n")
        explain = asyncio.ensure_future(
            client.protocol.send_request_async("ninetyten/explain", {"textDocument": {"uri": uri}})
        )
        await asyncio.sleep(0.3)  # the template is rendering now
        stats = await asyncio.wait_for(client.protocol.send_request_async("ninetyten/stats", {}), 30)
        completion = await asyncio.wait_for(inline(client, uri, 1, 4), 30)
        assert _as_dict(stats)["requests"] >= 0
        assert completion is not None  # answered (its text depends on the time box, not on the template)
        assert not explain.done()  # still waiting for the template's CPU limit, yet the rest was served
        answer = _as_dict(await asyncio.wait_for(explain, 60))
        assert answer["tier"] == "local" and answer["text"]  # answered on the plain chat layout
        # And it goes on serving chats.
        again = _as_dict(
            await asyncio.wait_for(
                client.protocol.send_request_async(
                    "ninetyten/ask", {"textDocument": {"uri": uri}, "question": "what does f return?"}
                ),
                60,
            )
        )
        assert again["tier"] == "local" and again["text"]
