"""Rendering a chat template that came with a model file: in a child process, within limits.

A GGUF file's chat template is untrusted input. Jinja's sandbox stops it from reaching
Python objects, but not from working: `{{ 'a' * 10**10 }}`, loops nested to billions of
steps, runaway macro recursion and huge outputs all render "safely" while the process
that renders them freezes or runs out of memory. So a model's template is rendered in a
separate Python process that has a CPU-time limit, an address-space limit and an output
limit, and that the parent kills after a wall-clock deadline. The parent only waits
(callers do that off the event loop).

This file is also the child's program. Run as a script with `python -I` it sees neither
the environment's Python settings nor the working directory (a repository could hold a
`jinja2.py`), and it imports only the standard library and jinja2.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # jinja2 is imported where a template is rendered: the child, and tests
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateError(Exception):
    """A template raised an error on purpose (`raise_exception`), or could not be rendered."""


class OutputTooLarge(Exception):
    pass


def _raise(message: str) -> None:
    raise TemplateError(message)


def sandbox_environment() -> ImmutableSandboxedEnvironment:
    """The environment chat templates expect (Hugging Face's conventions), sandboxed."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(
        loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.globals["raise_exception"] = _raise
    return env


def render_limited(template: str | jinja2.Template, context: dict[str, Any], max_chars: int) -> str:
    """Render, stopping as soon as the output passes `max_chars` (in this process: trusted templates only)."""
    compiled = sandbox_environment().from_string(template) if isinstance(template, str) else template
    pieces: list[str] = []
    total = 0
    for piece in compiled.generate(**context):
        total += len(piece)
        if total > max_chars:
            raise OutputTooLarge(f"more than {max_chars} characters")
        pieces.append(piece)
    return "".join(pieces)


@dataclass(frozen=True)
class RenderLimits:
    cpu_s: int = 2  # CPU seconds: does not depend on how busy the machine is
    wall_s: float = 10.0  # a backstop for a child that is starved or stuck
    memory_bytes: int = 512 * 1024 * 1024  # address space of the child
    output_chars: int = 256 * 1024  # a chat layout without its messages is a few kilobytes
    template_chars: int = 256 * 1024  # larger "templates" are not rendered at all


DEFAULT_LIMITS = RenderLimits()


class RenderFailed(Exception):
    """The template did not render within the limits; `lasting` if trying again would fail again."""

    def __init__(self, reason: str, *, lasting: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.lasting = lasting


# What the child needs to start Python at all; nothing else (no keys) is passed on.
_CHILD_ENV = ("PATH", "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "SYSTEMROOT", "TMPDIR", "TEMP", "TMP")


def render_untrusted(template: str, context: dict[str, Any], limits: RenderLimits = DEFAULT_LIMITS) -> str:
    """Render `template` in a child process within `limits`; raise RenderFailed otherwise.

    Blocks for up to `limits.wall_s`: never call it on the event loop.
    """
    if len(template) > limits.template_chars:
        raise RenderFailed(f"template longer than {limits.template_chars} characters")
    request = json.dumps(
        {
            "template": template,
            "context": context,
            "limits": {"cpu_s": limits.cpu_s, "memory_bytes": limits.memory_bytes, "output_chars": limits.output_chars},
        }
    )
    env = {name: os.environ[name] for name in _CHILD_ENV if name in os.environ}
    try:
        done = subprocess.run(
            [sys.executable, "-I", os.path.abspath(__file__)],
            input=request.encode("utf-8"),
            capture_output=True,
            timeout=limits.wall_s,
            env=env,
            cwd=os.path.dirname(__file__),
        )
    except subprocess.TimeoutExpired:  # killed by run(); the machine may just be busy
        raise RenderFailed(f"no answer within {limits.wall_s:g}s", lasting=False) from None
    except OSError as error:
        raise RenderFailed(f"could not start the renderer: {error.strerror}", lasting=False) from None
    if done.returncode != 0:
        killed = -done.returncode if done.returncode < 0 else None
        if killed in (getattr(signal, "SIGXCPU", -1), signal.SIGKILL):
            raise RenderFailed(f"used more than {limits.cpu_s}s of CPU")
        raise RenderFailed(f"the renderer ended with status {done.returncode}")
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        raise RenderFailed("the renderer's answer is not JSON") from None
    if not isinstance(answer, dict) or not answer.get("ok"):
        reason = answer.get("error") if isinstance(answer, dict) else None
        raise RenderFailed(f"the template failed ({reason if isinstance(reason, str) else 'unknown error'})")
    text = answer.get("text")
    if not isinstance(text, str) or len(text) > limits.output_chars:
        raise RenderFailed("the renderer's answer is unusable")
    return text


def _child() -> int:
    """Read one request on stdin, answer on stdout. Errors are reported by type only."""
    request = json.loads(sys.stdin.buffer.read())
    limits = request["limits"]
    try:
        import resource
    except ImportError:  # no rlimits on this platform: the parent's deadline still applies
        resource = None  # type: ignore[assignment]
    if resource is not None:
        memory = int(limits["memory_bytes"])
        cpu = int(limits["cpu_s"])
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    try:
        text = render_limited(request["template"], request["context"], int(limits["output_chars"]))
        answer = json.dumps({"ok": True, "text": text})
    except BaseException as error:  # MemoryError and RecursionError included: the answer is "no"
        answer = json.dumps({"ok": False, "error": type(error).__name__})
    sys.stdout.write(answer)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child())
