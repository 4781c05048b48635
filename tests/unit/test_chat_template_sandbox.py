"""A GGUF file's chat template is untrusted input: it is rendered in Jinja's sandbox, in a
child process with CPU, memory, output and wall-clock limits."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from local_models.tiny import CHAT_TEMPLATE, build_tiny_model
from lsp_server.backends.base import ChatMessage, ChatRequest
from lsp_server.backends.llama_cpp import chat_template
from lsp_server.backends.llama_cpp.backend import LlamaCppBackend, LlamaSettings
from lsp_server.backends.llama_cpp.chat_template import PLAIN, Piece, render_pieces
from lsp_server.backends.llama_cpp.template_sandbox import RenderLimits

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


@pytest.mark.parametrize("roles", [("user",), ("system", "user"), ("system", "user", "assistant", "user")])
def test_the_plain_layout_is_what_the_plain_template_renders(roles: tuple[str, ...]):
    # The plain layout is written out in Python (no jinja2 in processes that never meet a
    # model's template); it must stay exactly what PLAIN renders in the sandbox.
    from lsp_server.backends.llama_cpp.template_sandbox import render_limited

    messages = [ChatMessage(role, f"text {number}") for number, role in enumerate(roles)]
    by_jinja = render_limited(PLAIN, chat_template._context(roles, "", ""), 10_000)
    assert chat_template._plain_layout(roles) == by_jinja
    expected = "".join(f"{role.capitalize()}: text {number}\n\n" for number, role in enumerate(roles))
    assert "".join(piece.text for piece in render_pieces(None, messages).pieces) == expected + "Assistant: "


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
    template = (
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    rendered = render_pieces(template, MESSAGES)
    assert [(p.text, p.is_content) for p in rendered.pieces][:3] == [
        ("<|system|>", False),
        ("be brief", True),
        ("<|end|><|user|>", False),
    ]
    assert rendered.pieces[-1].text.endswith("<|assistant|>")


# -- work, not access: templates that would freeze or exhaust the process that renders them --

# A normal layout around each bomb, so that only the limits can make it fall back.
_LAYOUT = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

BOMBS = {
    "memory": "{{ 'a' * 10**10 }}",
    "memory-600mb": "{{ 'a' * 600000000 }}",
    "output": "{% for i in range(100000) %}{{ 'ab' * 100 }}{% endfor %}",
    "slow-loop": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "lipsum": "{{ lipsum(n=100000, min=100, max=100) }}",
    "format-width": "{{ '{:>10000000000}'.format('a') }}",
}

# Each bomb is rendered by a separate Python process that stands for the server: capped at
# 3 GB and given a deadline, so that even a renderer without limits cannot hurt the machine
# running the tests. It reports whether the plain layout came back and how much its own
# peak memory grew.
_HARNESS = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    from lsp_server.backends.base import ChatMessage
    from lsp_server.backends.llama_cpp.chat_template import PLAIN, render_pieces
    messages = [ChatMessage("system", "be brief"), ChatMessage("user", "hello")]
    plain = render_pieces(PLAIN, messages)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rendered = render_pieces(sys.stdin.read(), messages)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"fell_back": rendered == plain, "grown_kib": grown}))
""")


def render_as_a_server_would(template: str) -> dict[str, object]:
    try:
        done = subprocess.run(
            [sys.executable, "-c", _HARNESS],
            input=template,
            capture_output=True,
            text=True,
            timeout=90,
            cwd=Path(__file__).parents[2],
        )
    except subprocess.TimeoutExpired:
        raise AssertionError("rendering the template froze the process that rendered it") from None
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_a_template_that_would_freeze_or_exhaust_the_server_falls_back(bomb: str):
    outcome = render_as_a_server_would(_LAYOUT + BOMBS[bomb])
    assert outcome["fell_back"] is True
    assert isinstance(outcome["grown_kib"], int) and outcome["grown_kib"] < 100 * 1024  # the child took the blow


def test_the_output_limit_applies_to_what_a_template_writes():
    long = _LAYOUT + "{{ 'x' * 5000 }}"
    assert render_pieces(long, MESSAGES, limits=RenderLimits(output_chars=1000)) == render_pieces(PLAIN, MESSAGES)
    assert "x" * 5000 in "".join(p.text for p in render_pieces(long, MESSAGES).pieces)


def test_a_layout_is_rendered_once_per_shape(monkeypatch: pytest.MonkeyPatch):
    calls: list[tuple[str, ...]] = []
    real = chat_template.render_untrusted

    def counting(template: str, context: dict, limits: RenderLimits) -> str:  # type: ignore[type-arg]
        calls.append(tuple(m["role"] for m in context["messages"]))
        return real(template, context, limits)

    monkeypatch.setattr(chat_template, "render_untrusted", counting)
    template = _LAYOUT + "{# shape test #}"
    for _ in range(3):
        render_pieces(template, MESSAGES)
        render_pieces(template, [ChatMessage("user", "only one")])
    failing = _LAYOUT + "{{ raise_exception('no') }}"
    for _ in range(3):
        assert render_pieces(failing, MESSAGES) == render_pieces(PLAIN, MESSAGES)
    assert calls == [("system", "user"), ("user",), ("system", "user")]


def test_a_render_cut_short_by_the_clock_is_tried_again_later():
    """A busy machine is no reason to give up on a good template for the rest of the session."""
    template = _LAYOUT + "{# clock test #}"
    assert render_pieces(template, MESSAGES, limits=RenderLimits(wall_s=0.001)) == render_pieces(PLAIN, MESSAGES)
    assert render_pieces(template, MESSAGES).pieces[0] == Piece("<|system|>", False)


def test_the_renderer_ignores_python_settings_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A PYTHONPATH (say, from a repository's .envrc) must not swap jinja2 in the renderer."""
    marker = tmp_path / "imported"
    (tmp_path / "jinja2.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    rendered = render_pieces(_LAYOUT + "{# environment test #}", MESSAGES)
    assert not marker.exists()
    assert rendered.pieces[0] == Piece("<|system|>", False)


# -- loading: a model file's template must not decide whether the model loads --------


@pytest.mark.parametrize("broken", ["{% for %}", "{{" + "(" * 5000 + "1" + ")" * 5000 + "}}"])
async def test_a_model_whose_template_does_not_compile_still_loads_and_chats(broken: str, tmp_path: Path):
    model = build_tiny_model(tmp_path / "broken-template.gguf", favour="x", chat_template=broken + CHAT_TEMPLATE)
    backend = LlamaCppBackend(LlamaSettings(model=model, n_ctx=512))
    try:
        await backend.wait_ready()
        prompt, stops = await backend.chat_tokens_async(MESSAGES)
        assert stops  # the plain layout's stop strings: the template was not used
        assert backend.detokenize(prompt).startswith("System: be brief")
        answer = await backend.chat(ChatRequest(MESSAGES, max_tokens=3))
        assert answer.text == "xxx"
    finally:
        backend.close()


def test_a_known_shape_never_waits_behind_the_render_of_another():
    template = _LAYOUT + "{% if messages | length == 1 %}" + BOMBS["slow-loop"] + "{% endif %}"
    render_pieces(template, MESSAGES)  # two messages: renders quickly, and is remembered
    slow = threading.Thread(target=render_pieces, args=(template, [ChatMessage("user", "one")]))
    slow.start()
    try:
        rendered = render_pieces(template, MESSAGES)
        assert slow.is_alive()  # the one-message render is still burning its CPU limit
        assert rendered.pieces[0] == Piece("<|system|>", False)
    finally:
        slow.join()
