"""Metrics export over OTLP/HTTP to a loopback receiver: names, attributes and values follow
the GenAI semantic conventions, match the ledger, and carry no content."""

from __future__ import annotations

import getpass
from pathlib import Path

import pytest

from lsp_server.completion.complete import Completer
from lsp_server.completion.prompt import CompletionInput
from lsp_server.config import ServerConfig
from lsp_server.engine.core import Engine
from lsp_server.ledger import Ledger, LedgerRow
from lsp_server.ledger.otel import OtelMetrics, metrics_endpoint
from lsp_server.ledger.outlets import attach
from lsp_server.ledger.settings import OtelSettings, UserSettings
from lsp_server.routing.policy import LoadedPolicy, Policy
from tests.loopback_otlp import attributes, otlp_receiver

CANARY = "zqCANARYotel7"
SOURCE = f"def {CANARY}_total(values):\n    result = 0\n    for value in values:\n        \n"


def _points(receiver, name: str) -> list:  # type: ignore[no-untyped-def]
    metrics = receiver.metrics()[name]
    # Cumulative temporality: the last export holds the totals.
    last = metrics[-1]
    data = last.histogram if last.HasField("histogram") else last.sum
    return list(data.data_points)


def test_engine_requests_reach_the_collector_as_genai_metrics(tmp_path: Path, tiny_model_path: Path):
    with otlp_receiver() as receiver:
        ledger = Ledger(tmp_path / "ledger.sqlite3")
        engine = Engine(
            ServerConfig(model=str(tiny_model_path), completion={"max_tokens": 6}),
            policy=LoadedPolicy(Policy(), "builtin", None),
            ledger=ledger,
        )
        attach(
            engine.sink,
            workspace=None,
            settings=UserSettings(otel=OtelSettings(enabled=True, endpoint=receiver.url, export_interval_s=3600)),
        )
        try:
            for column in (8, 8, 4):
                Completer(engine).complete_blocking(
                    CompletionInput(path=f"{CANARY}/module_{CANARY}.py", text=SOURCE, line=3, character=column)
                )
        finally:
            engine.close()
        rows: list[LedgerRow] = ledger.rows()
        ledger.close()
    assert len(rows) == 3 and receiver.paths and set(receiver.paths) == {"/v1/metrics"}
    names = set(receiver.metrics())
    assert {
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.duration",
        "ninetyten.client.cost",
        "ninetyten.client.frontier_cost",
    } == names
    usage = receiver.metrics()["gen_ai.client.token.usage"][-1]
    assert usage.unit == "{token}" and receiver.metrics()["gen_ai.client.operation.duration"][-1].unit == "s"

    by_type = {attributes(p)["gen_ai.token.type"]: p for p in _points(receiver, "gen_ai.client.token.usage")}
    assert set(by_type) == {"input", "output"}
    for point in by_type.values():
        attrs = attributes(point)
        assert attrs["gen_ai.operation.name"] == "text_completion"
        assert attrs["gen_ai.provider.name"] == "llama.cpp"
        assert attrs["gen_ai.request.model"] == rows[0].model
        assert attrs["ninetyten.tier"] == "local" and attrs["ninetyten.task"] == "completion"
        assert point.count == 3
    assert by_type["input"].sum == sum(r.prompt_tokens for r in rows)
    assert by_type["output"].sum == sum(r.completion_tokens for r in rows)
    (duration,) = _points(receiver, "gen_ai.client.operation.duration")
    assert duration.count == 3 and duration.sum == pytest.approx(sum(r.latency_ms for r in rows) / 1000)
    (frontier,) = _points(receiver, "ninetyten.client.frontier_cost")
    assert frontier.as_double == pytest.approx(sum(r.frontier_cost_usd for r in rows)) and frontier.as_double > 0
    assert receiver.resource_attributes()["service.name"] == "ninetyten"

    # Never any content: not the code, not the path, not the user.
    everything = b"".join(receiver.raw)
    for secret in (CANARY, "result = 0", "module_", getpass.getuser()):
        assert secret.encode() not in everything


def test_failures_carry_error_type(tmp_path: Path):
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: F401 (SDK present)

    with otlp_receiver() as receiver:
        metrics = OtelMetrics(OtelSettings(enabled=True, endpoint=receiver.url, export_interval_s=3600))
        metrics(
            LedgerRow(
                request_id="r1",
                task="refactor",
                tier="frontier",
                backend="anthropic",
                model="claude-sonnet-4-6",
                outcome="failed",
                error_kind="timeout",
                latency_ms=2000.0,
            )
        )
        metrics.close()
    (point,) = _points(receiver, "gen_ai.client.operation.duration")
    attrs = attributes(point)
    assert attrs["error.type"] == "timeout" and attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "anthropic" and point.sum == pytest.approx(2.0)


def test_off_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("NINETYTEN_OTEL_ENDPOINT", "NINETYTEN_TEAM_LEDGER_URL"):
        monkeypatch.delenv(name, raising=False)
    from lsp_server.ledger.sink import LedgerSink

    sink = LedgerSink(Ledger(tmp_path / "ledger.sqlite3"))
    attach(sink, workspace=None)
    assert sink.observers == [] and sink.team is None
    sink.close()


def test_endpoint_url():
    assert metrics_endpoint("http://127.0.0.1:4318") == "http://127.0.0.1:4318/v1/metrics"
    assert metrics_endpoint("http://c:4318/v1/metrics/") == "http://c:4318/v1/metrics"
    assert metrics_endpoint(None) is None
