"""What runs: the engines of this user, their clients and crashes, and the models marked bad
(for `ninetyten engine status` and `ninetyten doctor`)."""

from __future__ import annotations

import socket
from datetime import datetime
from pathlib import Path
from typing import Any

from lsp_server.engine_host.protocol import FrameReader, Status, encode, parse_incoming
from lsp_server.engine_host.runtime import BadModels, EngineStatus, ModelIdentity, running_engines, runtime_dir


def query(status: EngineStatus) -> dict[str, Any] | None:
    """Ask a running engine for its clients and slots (a short-lived client of its own)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(2.0)
    try:
        sock.connect(status.socket)
        sock.sendall(encode(Status(id=1)))
        body = FrameReader(sock).read()
        reply = parse_incoming(body) if body else None
        return getattr(reply, "status", None)
    except (OSError, ValueError):
        return None
    finally:
        sock.close()


def status_lines() -> list[str]:
    lines: list[str] = []
    directory = runtime_dir()
    engines = running_engines(directory)
    if not engines:
        lines.append(f"engine         not running (socket directory {directory})")
    for status in engines:
        pids = f"pid {status.worker_pid or '-'} (supervisor {status.supervisor_pid})"
        lines.append(f"engine         {status.state}, {pids}, model {status.model_path}")
        lines.append(f"  socket       {status.socket}")
        details = query(status) if status.state == "ready" else None
        if details:
            clients = details.get("clients") or []
            lines.append(f"  clients      {len(clients)}" + (f": {', '.join(clients)}" if clients else ""))
            lines.append(
                f"  served       {details.get('served', 0)} generations; warmed {details.get('warmed_tokens', 0)} "
                f"prompt tokens ahead of requests"
            )
            offloaded = details.get("gpu_layers_offloaded")
            lines.append(
                "  gpu          " + (f"{offloaded} layers offloaded" if offloaded else "none (all on the CPU)")
            )
        for crash in status.crashes[-3:]:
            when = datetime.fromtimestamp(crash.at).strftime("%Y-%m-%d %H:%M:%S")
            lines.append(f"  crashed      {when}: {crash.describe()}")
    for bad in BadModels().entries():
        lines.append(f"  PROBLEM: model marked bad: {bad.describe()}; `ninetyten engine reset` tries it again")
    return lines


def doctor_lines(model: Path | None) -> tuple[list[str], bool]:
    """For `ninetyten doctor`: the running engine(s), models marked bad, and whether the
    model doctor checks is one of them (then it is not ok)."""
    try:
        lines = status_lines()
    except Exception as error:  # the runtime dir itself may be the problem
        return [f"engine         PROBLEM: {error}"], False
    if model is None:
        return lines, True
    try:
        bad = BadModels().find(ModelIdentity.of(model))
    except OSError:
        bad = None
    return lines, bad is None
