"""Logging for the server and the commands: what happened, never what was in it.

At any verbosity (`-v`, `-vv`, `--log-file`) a log line may name a method, an id, a size,
a timing, a tier or an error kind; it never holds content — document text, prompts,
completions, explanations, refactors, questions, provider answers. Our own log calls are
written that way. Two sources are not ours and are rewritten by a filter on every handler
before anything is written:

- pygls logs whole messages (`Sending data: {...}` at INFO, params and results at DEBUG, the
  params of a request whose handler failed at ERROR). Its records keep their wording and
  the arguments known to be metadata (ids, method names); everything else becomes a size.
- Exceptions: a message can quote its input (a validation error, a syntax error in model
  output). Tracebacks keep their frames and exception types; the message is kept only
  for exceptions whose messages are written to be shown (our backend errors, OS errors).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import traceback
from types import TracebackType
from typing import Any

# pygls's message formats whose arguments are all metadata (ids, method names, our own
# capabilities): written as they are.
_PYGLS_METADATA = frozenset(
    {
        'Exception occurred for message "%s"',
        'Cancel notification for unknown message id "%s"',
        'Cancelled request with id "%s"',
        "Ignoring notification for unknown method %r",
        "Failed to handle request %r, unknown method %r",
        'Received response to unknown message id "%s"',
        "Request %r received",
        "Notification %r received",
        "Content length: %s",
        "Server capabilities: %s",
        "Ignoring work done progress cancel for unknown token %s",
        "Registered builtin feature %s",
        'Command "%s" is successfully registered.',
        'Registered "%s" with options "%s"',
        'Command "%s" is already registered.',
        'Feature "%s" is already registered.',
        "Ignoring metadata for '%s': not in notebook.",
    }
)

# Formats with some content-bearing arguments: per argument, keep it, or describe it by
# size ("size"), or summarise a JSON-RPC body ("body").
_PYGLS_MIXED: dict[str, tuple[str, ...]] = {
    "Sending data: %s": ("body",),
    "Sending notification: '%s' %s": ("keep", "size"),
    'Sending request with id "%s": %s %s': ("keep", "keep", "size"),
    "Failed to handle request %s %s %s": ("keep", "keep", "size"),
    "Failed to handle notification %r: %s": ("keep", "size"),
    'Received error response to message "%s": %s': ("keep", "size"),
    'Received result for message "%s": %s': ("keep", "size"),
    "Client response for %s received: %s": ("size", "size"),
    "Language server initialized %s": ("size",),
    "Workspace folders changed: %s": ("size",),
    'Unknown message "%s"': ("size",),
}

# pygls logs a traceback for every message it cannot structure; the server answers those
# with InvalidParams and logs one line of its own.
_PYGLS_DROPPED = ("Unable to deserialize message",)

_CLEAN = "_ninetyten_clean"


@functools.cache
def _safe_exceptions() -> tuple[type[BaseException], ...]:
    """Exceptions whose messages are written for people and never quote content."""
    from pygls.exceptions import (
        JsonRpcContentModified,
        JsonRpcMethodNotFound,
        JsonRpcRequestCancelled,
        JsonRpcServerNotInitialized,
    )

    from lsp_server.backends.base import BackendError

    return (
        BackendError,
        OSError,
        JsonRpcMethodNotFound,
        JsonRpcRequestCancelled,
        JsonRpcServerNotInitialized,
        JsonRpcContentModified,
    )


def describe_exception(error: BaseException) -> str:
    name = type(error).__name__
    if isinstance(error, _safe_exceptions()):
        text = str(error)
        return f"{name}: {text}" if text else name
    text = str(error)
    return f"{name} (message withheld, {len(text)} characters)" if text else name


def describe_size(value: Any) -> str:
    if isinstance(value, (str, bytes)):
        return f"<{len(value)} {'bytes' if isinstance(value, bytes) else 'characters'}>"
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    try:
        size = len(repr(value))
    except Exception:
        return f"<{type(value).__name__}>"
    return f"<{type(value).__name__}, {size} characters>"


def describe_body(body: Any) -> str:
    """A JSON-RPC message by its kind, method, id and size."""
    if not isinstance(body, (str, bytes)):
        return describe_size(body)
    size = len(body.encode("utf-8") if isinstance(body, str) else body)
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return f"<{size} bytes>"
    parts: list[str] = []
    if isinstance(message, dict):
        method = message.get("method")
        if isinstance(method, str):
            parts.append(("request " if "id" in message else "notification ") + method[:100])
        elif "result" in message:
            parts.append("result")
        elif isinstance(message.get("error"), dict):
            parts.append(f"error {message['error'].get('code')}")
        msg_id = message.get("id")
        if isinstance(msg_id, (int, str)) and not isinstance(msg_id, bool):
            parts.append(f"id={str(msg_id)[:64]}")
    parts.append(f"{size} bytes")
    return " ".join(parts)


def _traceback_text(exc_info: tuple[type[BaseException], BaseException, TracebackType | None]) -> str:
    """A traceback with its frames and exception types, each message judged by describe_exception."""
    chain: list[tuple[BaseException, str]] = []  # each error, and how it relates to the one before it
    error: BaseException | None = exc_info[1]
    link = ""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        chain.append((error, link))
        if error.__cause__ is not None:
            error, link = error.__cause__, "The above exception was the direct cause of the following exception:"
        elif error.__context__ is not None and not error.__suppress_context__:
            error, link = error.__context__, "During handling of the above exception, another exception occurred:"
        else:
            error = None
    lines: list[str] = []
    for error, link in reversed(chain):  # oldest first, each followed by how it led to the next
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.format_tb(error.__traceback__))
        lines.append(describe_exception(error) + "\n")
        if link:
            lines.append(f"\n{link}\n\n")
    return "".join(lines).rstrip("\n")


class NoContentFilter(logging.Filter):
    """Rewrites every record that reaches a handler so that it holds metadata only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _CLEAN, False):
            return True
        if record.name.startswith("pygls"):
            if isinstance(record.msg, str) and record.msg.startswith(_PYGLS_DROPPED):
                return False
            record.args = _pygls_args(record)
        elif record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(describe_exception(a) if isinstance(a, BaseException) else a for a in args)
        if isinstance(record.msg, BaseException):
            record.msg = describe_exception(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = _traceback_text(record.exc_info)
            record.exc_info = None
        setattr(record, _CLEAN, True)
        return True


def _pygls_args(record: logging.LogRecord) -> tuple[Any, ...]:
    if not record.args:
        return ()
    args = record.args if isinstance(record.args, tuple) else (record.args,)
    fmt = record.msg if isinstance(record.msg, str) else ""
    if fmt in _PYGLS_METADATA:
        return tuple(describe_exception(a) if isinstance(a, BaseException) else a for a in args)
    rules = _PYGLS_MIXED.get(fmt)
    out: list[Any] = []
    for index, arg in enumerate(args):
        rule = rules[index] if rules is not None and index < len(rules) else None
        if isinstance(arg, BaseException):
            out.append(describe_exception(arg))
        elif rule == "keep":
            out.append(arg)
        elif rule == "body":
            out.append(describe_body(arg))
        elif isinstance(arg, (bool, int, float)) or arg is None:
            out.append(arg)  # an unknown format (a newer pygls): numbers are safe, the rest is a size
        else:
            out.append(describe_size(arg))
    return tuple(out)


_installed: list[logging.Handler] = []


def configure(verbosity: int, log_file: str | None = None) -> None:
    """Log to stderr (and `log_file`): warnings; -v: info; -vv: debug. Content never, at any level.

    Called again (a command with its own log options), it replaces what it installed before.
    """
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    # pygls logs every message at INFO; keep that (as metadata) for -vv.
    logging.getLogger("pygls").setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    root = logging.getLogger()
    for handler in _installed:
        root.removeHandler(handler)
        handler.close()
    _installed.clear()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(NoContentFilter())
        root.addHandler(handler)
        _installed.append(handler)
    root.setLevel(level)
