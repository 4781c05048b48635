"""Chat prompts for the local model, from the GGUF's own chat template.

The template is rendered in jinja2's immutable sandbox (a model file is untrusted
input). Message contents never pass through the template as text: each is replaced
by a sentinel, and the rendered template is split at the sentinels so that the
template's own markup is tokenized with special tokens enabled and the contents
with special tokens disabled — a diff containing `<start_of_turn>` stays text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .base import ChatMessage, StopCheck

# Private-use code points: they cannot come from a template's own text.
_SENTINEL = "\ue000{index}\ue001"
_SENTINEL_RE = re.compile("\ue000(\\d+)\ue001")
_LIST_MARKER = re.compile(r"^(?:[-*•]|\d+[.)])\s*")

# Used when a model has no template, or its template fails to render.
PLAIN = (
    "{% for message in messages %}{{ message.role | capitalize }}: {{ message.content }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant: {% endif %}"
)


@dataclass(frozen=True)
class Piece:
    text: str
    is_content: bool  # True: user/editor text, tokenize with special tokens disabled


class TemplateError(Exception):
    pass


def _raise(message: str) -> None:
    raise TemplateError(message)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals["raise_exception"] = _raise
    return env


# A plain transcript has no end-of-turn token: stop where the model starts a new turn.
PLAIN_STOPS = ("\nUser:", "\nSystem:", "\nAssistant:")


@dataclass(frozen=True)
class RenderedChat:
    pieces: list[Piece]
    stop_strings: tuple[str, ...] = ()


def render_pieces(
    template: str | None, messages: Sequence[ChatMessage], *, bos_token: str = "", eos_token: str = ""
) -> RenderedChat:
    """The prompt as alternating template markup and message contents."""
    placeholders = [{"role": m.role, "content": _SENTINEL.format(index=i)} for i, m in enumerate(messages)]
    rendered = None
    stops: tuple[str, ...] = ()
    for candidate in (template, PLAIN):
        if not candidate:
            continue
        try:
            output = _environment().from_string(candidate).render(
                messages=placeholders, add_generation_prompt=True, bos_token=bos_token, eos_token=eos_token
            )
        except Exception:  # a broken or hostile template: fall back to plain text
            continue
        if sorted(int(found) for found in _SENTINEL_RE.findall(output)) != list(range(len(messages))):
            continue  # it rendered, but lost or repeated a message: not a usable chat layout
        rendered = output
        stops = PLAIN_STOPS if candidate is PLAIN else ()
        break
    assert rendered is not None
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


def stop_on_repetition(inner: StopCheck | None = None, *, times: int = 3) -> StopCheck:
    """Cut at the start of a line that repeats an earlier one `times` times: small models loop."""

    def key(line: str) -> str:
        # "2. Explain it" and "3. Explain it" are the same line, numbered.
        return _LIST_MARKER.sub("", line.strip())

    def check(text: str) -> int | None:
        if text.endswith("\n"):
            lines = text.split("\n")[:-1]
            last = key(lines[-1]) if lines else ""
            if last and sum(1 for line in lines if key(line) == last) >= times:
                first_repeat = [i for i, line in enumerate(lines) if key(line) == last][1]
                return len("\n".join(lines[:first_repeat]))
        return inner(text) if inner is not None else None

    return check


def stop_at_strings(stops: Sequence[str], inner: StopCheck | None = None) -> StopCheck | None:
    """A stop check that cuts before the first stop string, then defers to `inner`."""
    if not stops:
        return inner

    def check(text: str) -> int | None:
        cuts = [index for stop in stops if (index := text.find(stop)) >= 0]
        if cuts:
            return min(cuts)
        return inner(text) if inner is not None else None

    return check
