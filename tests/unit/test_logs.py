"""The log filter: records keep their metadata and lose their content, whoever logged them."""

from __future__ import annotations

import ast
import io
import json
import logging
from collections.abc import Iterator

import pytest

from lsp_server.backends.base import BackendError
from lsp_server.backends.llama_cpp.backend import native_log_line
from lsp_server.cli.logs import NoContentFilter, describe_body

CANARY = "CANARY-log-unit-91c2"


@pytest.fixture
def written() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Two real handlers (like stderr and --log-file) on the root logger, each with the filter."""
    outputs = (io.StringIO(), io.StringIO())
    handlers = [logging.StreamHandler(out) for out in outputs]
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    for handler in handlers:
        handler.addFilter(NoContentFilter())
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    try:
        yield outputs
    finally:
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(old_level)


def text_of(outputs: tuple[io.StringIO, io.StringIO]) -> str:
    first, second = (out.getvalue() for out in outputs)
    assert first == second  # both handlers write the same cleaned record
    return first


def test_pygls_message_bodies_become_kind_method_id_and_size(written):
    log = logging.getLogger("pygls.protocol.json_rpc")
    body = json.dumps({"jsonrpc": "2.0", "id": 12, "result": {"text": CANARY}})
    log.info("Sending data: %s", body)
    log.info(
        "Sending data: %s",
        json.dumps({"jsonrpc": "2.0", "method": "workspace/applyEdit", "id": "a1", "params": {"edit": CANARY}}),
    )
    log.debug('Sending request with id "%s": %s %s', "a1", "workspace/applyEdit", {"edit": CANARY})
    log.debug("Request %r received", "ninetyten/refactor")
    out = text_of(written)
    assert CANARY not in out
    assert f"Sending data: result id=12 {len(body)} bytes" in out
    assert "request workspace/applyEdit id=a1" in out
    assert 'Sending request with id "a1": workspace/applyEdit <dict, ' in out
    assert "Request 'ninetyten/refactor' received" in out


def test_a_failed_handler_logs_its_method_and_a_traceback_without_params_or_message(written):
    log = logging.getLogger("pygls.protocol.json_rpc")
    try:
        raise ValueError(f"bad value {CANARY}")
    except ValueError:
        log.exception("Failed to handle request %s %s %s", 7, "ninetyten/ask", {"question": CANARY})
    out = text_of(written)
    assert CANARY not in out
    assert "Failed to handle request 7 ninetyten/ask <dict," in out
    assert "Traceback (most recent call last):" in out and "test_logs.py" in out
    assert "ValueError (message withheld," in out


def test_exception_messages_are_kept_only_when_written_for_people(written):
    log = logging.getLogger("lsp_server.completion.service")
    log.error("completion failed: %s", BackendError("the local model is not loaded yet"))
    log.error("completion failed: %s", KeyError(CANARY))
    log.warning(RuntimeError(CANARY))
    out = text_of(written)
    assert "completion failed: BackendError: the local model is not loaded yet" in out
    assert CANARY not in out and "KeyError (message withheld" in out and "RuntimeError (message withheld" in out


def test_syntax_errors_and_chained_exceptions_lose_their_quoted_text(written):
    log = logging.getLogger("lsp_server.engine.core")
    try:
        try:
            ast.parse(f"def {CANARY}(:\n")
        except SyntaxError as error:
            raise RuntimeError(f"verification of {CANARY} failed") from error
    except RuntimeError:
        log.exception("checking an answer failed")
    out = text_of(written)
    assert CANARY not in out
    assert "SyntaxError (message withheld" in out and "RuntimeError (message withheld" in out
    assert "The above exception was the direct cause of the following exception:" in out
    assert out.index("SyntaxError") < out.index("RuntimeError (message")


def test_unknown_pygls_formats_keep_numbers_and_describe_the_rest(written):
    logging.getLogger("pygls.somewhere_new").info("New message %s with %d parts", CANARY, 3)
    out = text_of(written)
    assert CANARY not in out and f"New message <{len(CANARY)} characters> with 3 parts" in out


def test_pygls_deserialize_tracebacks_are_dropped(written):
    logging.getLogger("pygls.protocol.json_rpc").error("Unable to deserialize message\n%s", CANARY)
    assert text_of(written) == ""


@pytest.mark.parametrize(
    "body, described",
    [
        ('{"jsonrpc": "2.0", "method": "window/logMessage", "params": {}}', "notification window/logMessage 63 bytes"),
        ('{"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "x"}}', "error -32700 73 bytes"),
        ("not json " + CANARY, "<29 bytes>"),
    ],
)
def test_describe_body(body: str, described: str):
    assert describe_body(body) == described


def test_native_llama_lines_pass_while_loading_and_are_withheld_after():
    line = "llama_model_loader: - kv   0: general.architecture str = qwen2\n"
    assert native_log_line(line, loading=True) == line.rstrip()
    assert (
        native_log_line(f"decode: cannot decode {CANARY}", loading=False)
        == f"decode: ({len(CANARY) + 22} characters withheld)"
    )
    assert native_log_line(f"~weird {CANARY}", loading=False).startswith("llama.cpp: (")


def test_configure_again_replaces_its_own_handlers_and_leaves_others(tmp_path):
    from lsp_server.cli.logs import configure

    root = logging.getLogger()
    foreign = logging.NullHandler()
    root.addHandler(foreign)
    before = list(root.handlers)
    level = root.level
    try:
        configure(0)
        configure(2, str(tmp_path / "server.log"))
        ours = [h for h in root.handlers if h not in before]
        assert len(ours) == 2 and all(any(isinstance(f, NoContentFilter) for f in h.filters) for h in ours)
        assert foreign in root.handlers and root.level == logging.DEBUG
        logging.getLogger("pygls.protocol.json_rpc").info("Sending data: %s", json.dumps({"id": 1, "result": CANARY}))
        written = (tmp_path / "server.log").read_text()
        assert "result id=1" in written and CANARY not in written
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
            handler.close()
        root.removeHandler(foreign)
        root.setLevel(level)
        logging.getLogger("pygls").setLevel(logging.NOTSET)
