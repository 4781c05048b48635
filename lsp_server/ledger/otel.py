"""OpenTelemetry metrics: the ledger's content-free facts, for an existing observability stack.

Off by default; the user turns it on in their own settings (settings.py), never a repository.
Needs the `otel` extra (the OpenTelemetry SDK and its OTLP/HTTP exporter). Each stored row
is recorded on the ledger thread as the GenAI semantic conventions' client metrics:

- `gen_ai.client.token.usage` (histogram, `{token}`), once per token type (`input`, `output`);
- `gen_ai.client.operation.duration` (histogram, `s`), with `error.type` on failures;

with `gen_ai.operation.name` (`text_completion` for completions, `chat` otherwise),
`gen_ai.provider.name`, `gen_ai.request.model`, and `ninetyten.tier` / `ninetyten.task`;
plus the money as counters, `ninetyten.client.cost` and `ninetyten.client.frontier_cost`
(USD). The SDK exports them every `export_interval_s` and on close. Nothing else: no
prompts, completions, paths, reasons or user names.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from lsp_server import __version__
from lsp_server.ledger.row import FAILURE_OUTCOMES, LedgerRow
from lsp_server.ledger.settings import OtelSettings

# The semantic conventions' advice for these two histograms.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_PROVIDERS = {"llama_cpp": "llama.cpp", "openai": "openai", "anthropic": "anthropic"}


def metrics_endpoint(base: str | None) -> str | None:
    """The OTLP/HTTP metrics URL for a collector's base URL; None lets the exporter read the
    standard OTEL_EXPORTER_OTLP_* variables."""
    if base is None:
        return None
    base = base.rstrip("/")
    return base if base.endswith("/v1/metrics") else f"{base}/v1/metrics"


def attributes(row: LedgerRow) -> dict[str, str]:
    found = {
        "gen_ai.operation.name": "text_completion" if row.task == "completion" else "chat",
        "gen_ai.provider.name": _PROVIDERS.get(row.backend, row.backend),
        "gen_ai.request.model": row.model,
        "ninetyten.tier": row.tier,
        "ninetyten.task": row.task,
    }
    if row.outcome in FAILURE_OUTCOMES:
        found["error.type"] = row.error_kind or row.outcome
    return found


class OtelMetrics:
    """A ledger observer (sink.py) that records each row as metrics."""

    def __init__(self, settings: OtelSettings, exporter: Any = None) -> None:
        exporter = exporter or OTLPMetricExporter(endpoint=metrics_endpoint(settings.endpoint))
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=settings.export_interval_s * 1000)
        resource = Resource.create({"service.name": "ninetyten", "service.version": __version__})
        # A provider of our own, not the global one: the host program may have its own.
        self._provider = MeterProvider(metric_readers=[reader], resource=resource)
        meter = self._provider.get_meter("ninetyten.ledger", __version__)
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._cost = meter.create_counter(
            "ninetyten.client.cost", unit="USD", description="What the attempt cost on its tier."
        )
        self._frontier = meter.create_counter(
            "ninetyten.client.frontier_cost",
            unit="USD",
            description="What the same tokens would have cost on the frontier.",
        )

    def __call__(self, row: LedgerRow) -> None:
        attrs = attributes(row)
        self._tokens.record(row.prompt_tokens, {**attrs, "gen_ai.token.type": "input"})
        self._tokens.record(row.completion_tokens, {**attrs, "gen_ai.token.type": "output"})
        self._duration.record(row.latency_ms / 1000, attrs)
        self._cost.add(row.cost_usd, attrs)
        self._frontier.add(row.frontier_cost_usd, attrs)

    def close(self) -> None:
        """Export what is left and stop (bounded by the exporter's timeout)."""
        self._provider.shutdown()


__all__ = ["DURATION_BUCKETS", "TOKEN_BUCKETS", "OtelMetrics", "attributes", "metrics_endpoint"]
