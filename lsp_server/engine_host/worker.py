"""The engine process's entry point: `python -m lsp_server.engine_host.worker`, started by the
supervisor with the listening socket and a pipe to report on (see daemon.py)."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import socket
import sys
import threading

from lsp_server.engine_host.daemon import Daemon
from lsp_server.engine_host.jobs import Injection
from lsp_server.engine_host.runtime import EngineSpec
from lsp_server.engine_host.slots import DEFAULT_LIMIT_BYTES

log = logging.getLogger(__name__)

SLOT_LIMIT_ENV = "NINETYTEN_ENGINE_SLOT_MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lsp_server.engine_host.worker")
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--report-fd", type=int, required=True)
    parser.add_argument("--spec", required=True, help="the EngineSpec as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s engine[{os.getpid()}] %(levelname)s %(name)s: %(message)s",
    )
    faulthandler.enable()  # a native crash leaves its Python stack in the engine's log
    spec = EngineSpec.model_validate_json(args.spec)
    listener = socket.socket(fileno=args.listen_fd)
    report = os.fdopen(args.report_fd, "w", buffering=1)

    try:
        limit = int(os.environ.get(SLOT_LIMIT_ENV, DEFAULT_LIMIT_BYTES >> 20)) << 20
    except ValueError:
        limit = DEFAULT_LIMIT_BYTES
    daemon = Daemon(spec, listener, report, injection=Injection.from_env(), slot_limit_bytes=limit)

    def lifeline() -> None:
        # stdin is a pipe from the supervisor: when it ends, the supervisor is gone, and so are we.
        try:
            sys.stdin.buffer.read()
        finally:
            daemon.exit(0)

    threading.Thread(target=lifeline, name="engine-lifeline", daemon=True).start()
    # `ninetyten engine stop` reaches the engine as the supervisor's SIGTERM: leave nothing behind.
    signal.signal(signal.SIGTERM, lambda *_: daemon.exit(0))
    log.info("engine for %s (n_ctx %d, key %s)", spec.model.path, spec.n_ctx, spec.key())
    daemon.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
