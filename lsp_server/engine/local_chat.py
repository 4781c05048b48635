"""Chat on the local model: fit the messages into its context, or continue a document.

A base model without a chat template (the embedded Gemma 3 270M) echoes chat-style
instructions back; it is given the start of a document to continue instead.
"""

from __future__ import annotations

from lsp_server.backends.base import CancelToken, ChatMessage, Generation, GenerationRequest
from lsp_server.backends.llama_cpp.chat_template import stop_at_blank_line, stop_on_repetition
from lsp_server.backends.local import LocalBackend
from lsp_server.engine.document import DocumentPrompt


async def continue_document(
    backend: LocalBackend,
    document: DocumentPrompt,
    max_tokens: int,
    time_limit_s: float | None,
    cancel: CancelToken | None,
) -> Generation:
    """A base model (no chat template) continues a document instead of following a chat."""
    max_tokens = min(max_tokens, document.max_tokens or max_tokens)
    budget = backend.n_ctx - max_tokens - 8
    head = [backend.bos] if backend.bos is not None else []
    tokens = head + backend.tokenize_text(document.text)
    if len(tokens) > budget:  # keep the end: it holds the cue the model continues from
        tokens = head + tokens[len(tokens) - budget + len(head) :]
    generation = await backend.generate(
        GenerationRequest(
            prompt_tokens=tokens,
            max_tokens=max_tokens,
            time_limit_s=time_limit_s,
            stop=stop_on_repetition(stop_at_blank_line(document.stops)),
            speculate=True,  # drafts where the local model checks them exactly
        ),
        cancel,
    )
    generation.text = document.answer_prefix + generation.text
    return generation


async def fit_messages(backend: LocalBackend, messages: list[ChatMessage], max_tokens: int) -> list[ChatMessage]:
    """Shorten the longest message (its middle) until the prompt fits the local context."""
    budget = backend.n_ctx - max_tokens - 8
    for _ in range(8):
        prompt, _stops = await backend.chat_tokens_async(messages)
        if len(prompt) <= budget:
            return messages
        longest = max(range(len(messages)), key=lambda i: len(messages[i].content))
        content = messages[longest].content
        keep = max(int(len(content) * budget / len(prompt) * 0.9) - 40, 0)
        head, tail = content[: keep // 2], content[len(content) - keep // 2 :] if keep else ""
        shortened = f"{head}\n[... {len(content) - keep} characters left out to fit the local model ...]\n{tail}"
        messages = [*messages[:longest], ChatMessage(messages[longest].role, shortened), *messages[longest + 1 :]]
    return messages
