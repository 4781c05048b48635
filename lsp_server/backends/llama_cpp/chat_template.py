"""Chat prompts for the local model, from the GGUF's own chat template.

A model file's template is untrusted input: it is rendered in jinja2's immutable sandbox,
in a child process with time, memory and output limits (template_sandbox.py), never on
the event loop. Message contents never pass through the template as text: each is
replaced by a sentinel, and the rendered template is split at the sentinels so that the
template's own markup is tokenized with special tokens enabled and the contents with
special tokens disabled — a diff containing `<start_of_turn>` stays text.

Because the contents are sentinels, a layout depends only on the template, the roles in
order and the BOS/EOS texts: it is rendered once per such shape and then reused.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lsp_server.backends.base import CancelToken, ChatMessage, ChatRequest, Generation, GenerationRequest, StopCheck
from lsp_server.backends.llama_cpp.template_sandbox import (
    DEFAULT_LIMITS,
    RenderFailed,
    RenderLimits,
    TemplateError,
    render_untrusted,
)
from lsp_server.backends.portable import portable

if TYPE_CHECKING:
    from lsp_server.backends.local import LocalBackend

__all__ = [
    "PLAIN",
    "PLAIN_STOPS",
    "Piece",
    "RenderedChat",
    "StopAtBlankLine",
    "StopAtStrings",
    "StopOnRepetition",
    "TemplateError",
    "chat_prompt",
    "render_pieces",
    "run_chat",
    "stop_at_blank_line",
    "stop_at_strings",
    "stop_on_repetition",
]

log = logging.getLogger(__name__)

# Private-use code points: they cannot come from a template's own text.
_SENTINEL = "\ue000{index}\ue001"
_SENTINEL_RE = re.compile("\ue000(\\d+)\ue001")
_LIST_MARKER = re.compile(r"^(?:[-*•]|\d+[.)])\s*")

# Used when a model has no template, or its template fails to render.
PLAIN = (
    "{% for message in messages %}{{ message.role | capitalize }}: {{ message.content }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant: {% endif %}"
)


def _plain_layout(roles: Sequence[str]) -> str:
    """What PLAIN renders to, written out in Python: our own layout needs no template engine,
    so a process that never meets a model's template never imports jinja2."""
    turns = "".join(f"{role.capitalize()}: {_SENTINEL.format(index=index)}\n\n" for index, role in enumerate(roles))
    return turns + "Assistant: "


@dataclass(frozen=True)
class Piece:
    text: str
    is_content: bool  # True: user/editor text, tokenize with special tokens disabled


# A plain transcript has no end-of-turn token: stop where the model starts a new turn.
PLAIN_STOPS = ("\nUser:", "\nSystem:", "\nAssistant:")


@dataclass(frozen=True)
class RenderedChat:
    pieces: list[Piece]
    stop_strings: tuple[str, ...] = ()


_Shape = tuple[str, tuple[str, ...], str, str, RenderLimits]  # template, roles, bos, eos, limits


class _Layouts:
    """Rendered layouts by shape; a template that failed for good is not rendered again."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._done: OrderedDict[_Shape, str | None] = OrderedDict()
        self._lock = threading.Lock()  # guards the two dicts, never held while rendering
        # One render per shape at a time: a hostile template costs its limit once, and a
        # chat whose shape is known never waits behind a render of another shape.
        self._gates: dict[_Shape, threading.Lock] = {}

    def get(self, shape: _Shape) -> str | None:
        with self._lock:
            if shape in self._done:
                self._done.move_to_end(shape)
                return self._done[shape]
            gate = self._gates.setdefault(shape, threading.Lock())
        with gate:
            with self._lock:
                if shape in self._done:  # rendered while this thread waited
                    return self._done[shape]
            layout, lasting = self._render(shape)
            with self._lock:
                self._gates.pop(shape, None)
                if lasting:
                    self._done[shape] = layout
                    while len(self._done) > self._size:
                        self._done.popitem(last=False)
            return layout

    @staticmethod
    def _render(shape: _Shape) -> tuple[str | None, bool]:
        """The layout (None: use the plain one), and whether that verdict holds for good."""
        template, roles, bos, eos, limits = shape
        try:
            layout = render_untrusted(template, _context(roles, bos, eos), limits)
        except RenderFailed as failure:
            log.warning("the model's chat template did not render (%s); using a plain chat layout", failure.reason)
            return None, failure.lasting
        if not _keeps_every_message(layout, len(roles)):
            return None, True  # it rendered, but lost or repeated a message: not a usable chat layout
        return layout, True


_LAYOUTS = _Layouts()


def _context(roles: Sequence[str], bos: str, eos: str) -> dict[str, object]:
    placeholders = [{"role": role, "content": _SENTINEL.format(index=i)} for i, role in enumerate(roles)]
    return {"messages": placeholders, "add_generation_prompt": True, "bos_token": bos, "eos_token": eos}


def _keeps_every_message(rendered: str, count: int) -> bool:
    return sorted(int(found) for found in _SENTINEL_RE.findall(rendered)) == list(range(count))


def render_pieces(
    template: str | None,
    messages: Sequence[ChatMessage],
    *,
    bos_token: str = "",
    eos_token: str = "",
    limits: RenderLimits = DEFAULT_LIMITS,
) -> RenderedChat:
    """The prompt as alternating template markup and message contents.

    May render the model's template in a child process (once per shape): blocks for up
    to `limits.wall_s`, so call it from a worker thread, not the event loop.
    """
    roles = tuple(m.role for m in messages)
    rendered = None
    stops: tuple[str, ...] = ()
    if template and template != PLAIN:
        rendered = _LAYOUTS.get((template, roles, bos_token, eos_token, limits))
    if rendered is None:
        rendered = _plain_layout(roles)
        stops = PLAIN_STOPS
    pieces: list[Piece] = []
    position = 0
    for match in _SENTINEL_RE.finditer(rendered):
        if match.start() > position:
            pieces.append(Piece(rendered[position : match.start()], False))
        pieces.append(Piece(messages[int(match.group(1))].content, True))
        position = match.end()
    if position < len(rendered):
        pieces.append(Piece(rendered[position:], False))
    return RenderedChat(pieces, stops)


# The stop checks are small frozen classes, not closures: what they are made of is data, so a
# generation can run in the engine process with the same rules (backends/portable.py).


# Tokenizes texts, each with special tokens on or off (one flag per text).
TokenizePieces = Callable[[list[str], list[bool]], list[list[int]]]


def chat_prompt(
    template: str | None,
    messages: Sequence[ChatMessage],
    tokenize: TokenizePieces,
    *,
    bos: int | None,
    bos_text: str,
    eos_text: str,
) -> tuple[list[int], tuple[str, ...]]:
    """The prompt's tokens (the template's markup with special tokens, the contents without;
    BOS first when the model wants one and the template did not write it) and its stop strings."""
    rendered = render_pieces(template, messages, bos_token=bos_text, eos_token=eos_text)
    pieces = tokenize([piece.text for piece in rendered.pieces], [not piece.is_content for piece in rendered.pieces])
    tokens = [token for piece in pieces for token in piece]
    if bos is not None and (not tokens or tokens[0] != bos):
        tokens.insert(0, bos)
    return tokens, rendered.stop_strings


async def run_chat(backend: LocalBackend, request: ChatRequest, cancel: CancelToken | None) -> Generation:
    """A chat request on a local model: the template's stop strings end it too, and so does a loop."""
    prompt, stops = await backend.chat_tokens_async(request.messages)
    return await backend.generate(
        GenerationRequest(
            prompt_tokens=prompt,
            max_tokens=request.max_tokens,
            time_limit_s=request.time_limit_s,
            stop=stop_on_repetition(stop_at_strings(stops, request.stop)),
            speculate=request.speculate,
        ),
        cancel,
    )


def _line_key(line: str) -> str:
    # "2. Explain it" and "3. Explain it" are the same line, numbered.
    return _LIST_MARKER.sub("", line.strip())


@portable
@dataclass(frozen=True)
class StopOnRepetition:
    """Cut at the start of a line that repeats an earlier one `times` times: small models loop."""

    inner: StopCheck | None = None
    times: int = 3

    def __call__(self, text: str) -> int | None:
        if text.endswith("\n"):
            lines = text.split("\n")[:-1]
            last = _line_key(lines[-1]) if lines else ""
            if last and sum(1 for line in lines if _line_key(line) == last) >= self.times:
                first_repeat = [i for i, line in enumerate(lines) if _line_key(line) == last][1]
                return len("\n".join(lines[:first_repeat]))
        return self.inner(text) if self.inner is not None else None


@portable
@dataclass(frozen=True)
class StopAtStrings:
    """Cut before the first stop string, then defer to `inner`."""

    stops: tuple[str, ...]
    inner: StopCheck | None = None

    def __call__(self, text: str) -> int | None:
        cuts = [index for stop in self.stops if (index := text.find(stop)) >= 0]
        if cuts:
            return min(cuts)
        return self.inner(text) if self.inner is not None else None


_BLANK_LINE = re.compile(r"\n[ \t]*\n")


@portable
@dataclass(frozen=True)
class StopAtBlankLine:
    """Stop strings, where "\\n\\n" also means a line holding only spaces (small models write those)."""

    stops: tuple[str, ...]

    def __call__(self, text: str) -> int | None:
        if "\n\n" in self.stops:
            match = _BLANK_LINE.search(text.lstrip("\n"))
            if match:
                return match.start() + (len(text) - len(text.lstrip("\n")))
        plain = [index for stop in self.stops if stop != "\n\n" and (index := text.find(stop)) >= 0]
        return min(plain) if plain else None


def stop_on_repetition(inner: StopCheck | None = None, *, times: int = 3) -> StopCheck:
    """Cut at the start of a line that repeats an earlier one `times` times: small models loop."""
    return StopOnRepetition(inner, times)


def stop_at_strings(stops: Sequence[str], inner: StopCheck | None = None) -> StopCheck | None:
    """A stop check that cuts before the first stop string, then defers to `inner`."""
    if not stops:
        return inner
    return StopAtStrings(tuple(stops), inner)


def stop_at_blank_line(stops: Sequence[str]) -> StopCheck | None:
    """Stop strings, where "\\n\\n" also means a line holding only spaces; None when there are none."""
    return StopAtBlankLine(tuple(stops)) if stops else None
