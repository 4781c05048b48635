"""One client's connection to the engine, on the engine's side.

A thread per connection reads its requests: tokenizing is answered at once, generations and
warm-ups go to the queue, a cancel flips the job's flag. Only this user may connect
(`SO_PEERCRED`, where the platform has it; the directory's 0700 and the socket's 0600
everywhere).
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from typing import TYPE_CHECKING, Any

from lsp_server.engine_host.jobs import REAL, Job
from lsp_server.engine_host.protocol import (
    PROTOCOL_VERSION,
    Cancel,
    Detokenize,
    Event,
    Forget,
    FrameReader,
    Generate,
    Hello,
    ProtocolError,
    Reply,
    Status,
    Tokenize,
    Warm,
    encode,
    parse_request,
    request_id,
)

if TYPE_CHECKING:
    from lsp_server.engine_host.daemon import Daemon

log = logging.getLogger(__name__)


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a unix socket, where the platform says."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", raw)
    return uid


class Connection:
    def __init__(self, sock: socket.socket, daemon: Daemon, number: int) -> None:
        self.sock = sock
        self.daemon = daemon
        self.client_id = f"client-{number}"
        self.label = ""
        self._write = threading.Lock()
        self.jobs: dict[int, Job] = {}

    def send(self, message: Reply | Event) -> None:
        data = encode(message)
        try:
            with self._write:
                self.sock.sendall(data)
        except OSError:
            pass  # the client is gone; its reader thread cleans up

    def serve(self) -> None:
        reader = FrameReader(self.sock)
        try:
            while True:
                body = reader.read()
                if body is None:
                    break
                try:
                    request = parse_request(body)
                except ProtocolError as error:
                    self.send(Reply(id=request_id(body) or 0, error=str(error)))
                    continue
                self.handle(request)
        except (OSError, ProtocolError) as error:
            log.info("%s: connection ended: %s", self.client_id, error)
        finally:
            self.daemon.closed(self)
            try:
                self.sock.close()
            except OSError:
                pass

    def handle(self, request: Any) -> None:
        daemon = self.daemon
        if isinstance(request, Hello):
            self.label = request.client
            if request.protocol != PROTOCOL_VERSION:
                error = f"protocol {request.protocol} is not this engine's {PROTOCOL_VERSION}"
                self.send(Reply(id=request.id, error=error))
                return
            self.send(Reply(id=request.id, info=daemon.info()))
        elif isinstance(request, Cancel):
            job = self.jobs.get(request.target)
            if job is not None:
                job.cancel.cancel()
        elif isinstance(request, (Generate, Warm, Forget)):
            self.queue(request)
        elif isinstance(request, Tokenize):
            self.send(daemon.tokenize(request))
        elif isinstance(request, Detokenize):
            self.send(daemon.detokenize(request))
        elif isinstance(request, Status):
            self.send(Reply(id=request.id, status=daemon.status()))

    def queue(self, request: Generate | Warm | Forget) -> None:
        daemon = self.daemon
        if not isinstance(request, Generate) or not request.background:
            # A newer warm-up replaces an older one, and a request makes this client's pending
            # warm-ups stale: run after it, they would only push its prompt out of the cache.
            for job in list(self.jobs.values()):
                if isinstance(job.request, Warm):
                    job.cancel.cancel()
        job = self.jobs[request.id] = daemon.queue.put(self, request)
        running = daemon.current
        if job.priority == REAL and running is not None and running.priority != REAL:
            running.cancel.cancel()  # a warm-up or a speculation steps aside for a request

    def finished(self, job: Job) -> None:
        self.jobs.pop(job.request.id, None)
