"""A GGUF file's chat template is untrusted input: it is rendered in Jinja's sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_server.backends.base import ChatMessage
from lsp_server.backends.chat_template import PLAIN, render_pieces

MESSAGES = [ChatMessage("system", "be brief"), ChatMessage("user", "hello")]


def hostile_templates(marker: Path) -> list[str]:
    return [
        # reach os through a function's globals and write a file
        "{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}",
        "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.popen('touch " + str(marker) + "') }}",
        # walk from a string to every class in the interpreter
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        # mutate what the renderer passes in
        "{% set _ = messages.append({'role': 'user', 'content': 'injected'}) %}{{ messages }}",
        # call a method on a format string to read attributes
        "{{ '{0.__class__}'.format(messages) }}",
    ]


@pytest.mark.parametrize("index", range(5))
def test_hostile_templates_fall_back_to_the_plain_template(tmp_path: Path, index: int):
    marker = tmp_path / "pwned"
    template = hostile_templates(marker)[index]
    rendered = render_pieces(template, MESSAGES)
    plain = render_pieces(PLAIN, MESSAGES)
    assert not marker.exists()
    assert rendered == plain  # the sandbox refused it; the plain chat layout is used instead
    text = "".join(piece.text for piece in rendered.pieces)
    assert "injected" not in text and "subclasses" not in text


def test_a_normal_template_renders_and_keeps_message_text_apart():
    template = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}"
                "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    rendered = render_pieces(template, MESSAGES)
    assert [(p.text, p.is_content) for p in rendered.pieces][:3] == [("<|system|>", False), ("be brief", True),
                                                                      ("<|end|><|user|>", False)]
    assert rendered.pieces[-1].text.endswith("<|assistant|>")
