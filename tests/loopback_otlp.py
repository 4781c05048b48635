"""A loopback OTLP/HTTP receiver for metrics: what an OpenTelemetry collector would get.

Speaks the protocol as the OTLP specification describes it for HTTP with binary protobuf:
`POST /v1/metrics` with an `ExportMetricsServiceRequest` body (gzip when the exporter
compresses), answered with an `ExportMetricsServiceResponse`. Keeps the raw bodies (to look
for content that must never be there) and the decoded requests.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)


@dataclass
class OtlpReceiver:
    url: str
    raw: list[bytes] = field(default_factory=list)
    requests: list[ExportMetricsServiceRequest] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, list[Any]]:
        """Metric name -> every Metric message received under it."""
        found: dict[str, list[Any]] = {}
        for request in self.requests:
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        found.setdefault(metric.name, []).append(metric)
        return found

    def resource_attributes(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for request in self.requests:
            for resource_metrics in request.resource_metrics:
                for attribute in resource_metrics.resource.attributes:
                    found[attribute.key] = attribute.value.string_value
        return found


def attributes(point: Any) -> dict[str, str]:
    return {a.key: a.value.string_value for a in point.attributes}


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver: OtlpReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            receiver.paths.append(self.path)
            if self.path != "/v1/metrics" or self.headers.get("Content-Type") != "application/x-protobuf":
                self.send_error(404)
                return
            request = ExportMetricsServiceRequest()
            request.ParseFromString(body)
            receiver.raw.append(body)
            receiver.requests.append(request)
            answer = ExportMetricsServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = OtlpReceiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
