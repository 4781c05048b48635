"""A real HTTP server on 127.0.0.1 that speaks the Hugging Face hub's download protocol.

What huggingface_hub's `hf_hub_download` / `get_hf_file_metadata` rely on (file_download.py):

- `HEAD|GET /{owner}/{name}/resolve/{revision}/{file}` on the hub answers an LFS file with
  `302 Found`, `Location` on another origin (the CDN; huggingface_hub does not follow it for
  the metadata and drops the Authorization header when it downloads from there),
  `X-Repo-Commit` (the commit the revision resolved to), `X-Linked-Etag` (the file's SHA-256,
  quoted), `X-Linked-Size` (its size), and `ETag` (the git blob id of the LFS pointer). The
  revision may be a branch or the 40-hex commit itself.
- Errors carry `X-Error-Code`: `RepoNotFound` (401, also for private repos without a token),
  `GatedRepo` (403), `RevisionNotFound` (404), `EntryNotFound` (404, with `X-Repo-Commit`).
- The CDN serves `GET /cdn/{sha256}/{file}` with `Content-Length`, `ETag`,
  `Accept-Ranges: bytes`, and `206 Partial Content` + `Content-Range` for `Range: bytes=N-`.

The hub and the CDN are two listening ports of one object, so they are different origins.
Both also accept absolute-form request targets (`GET http://host/path`), which is how a
client talks to a plain HTTP proxy: point HTTP_PROXY at either port and give the hub an
unresolvable endpoint to prove that the proxy was used.

Faults, per file: `cut_after` (send that many bytes of the body, then drop the connection,
for the next `cuts` GETs), `chunk_delay_s` (a slow link), `advertise_sha256` (publish a
digest the served bytes do not have), `gated_token` (403 GatedRepo unless that bearer token).
Every request is recorded.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import unquote, urlsplit

__all__ = ["HubFile", "LoopbackHub", "RecordedHubRequest", "loopback_hub"]

_CHUNK = 1024 * 1024
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<file>.+)$")
_CDN = re.compile(r"^/cdn/(?P<sha>[0-9a-f]{64})/(?P<file>.+)$")


@dataclass
class HubFile:
    content: bytes
    sha256: str
    advertise_sha256: str | None = None  # what X-Linked-Etag says, when it lies
    cut_after: int | None = None  # drop the connection after this many body bytes ...
    cuts: int = 0  # ... for this many more GETs
    chunk_delay_s: float = 0.0  # after every chunk of ...
    chunk_size: int = _CHUNK  # ... this many bytes
    gated_token: str | None = None

    @property
    def published_sha256(self) -> str:
        return self.advertise_sha256 or self.sha256


@dataclass(frozen=True)
class RecordedHubRequest:
    method: str
    path: str
    origin: str  # "hub" or "cdn": which handler answered
    headers: dict[str, str]  # lower-case names
    status: int
    via_proxy: bool
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Repo:
    commits: dict[str, str] = field(default_factory=dict)  # revision (branch) -> commit
    files: dict[tuple[str, str], HubFile] = field(default_factory=dict)  # (commit, file) -> file


def _commit_for(repo: str, revision: str) -> str:
    return hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()


def _pointer_etag(sha256: str, size: int) -> str:
    """The git blob id of the LFS pointer file, which is what the hub sends as ETag."""
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    return hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()


class LoopbackHub:
    def __init__(self) -> None:
        self.repos: dict[str, _Repo] = {}
        self.requests: list[RecordedHubRequest] = []
        self._lock = threading.Lock()
        self._hub = self._serve("hub")
        self._cdn = self._serve("cdn")
        self.cdn_base = f"http://127.0.0.1:{self._cdn.server_address[1]}"

    # --- setup -------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def proxy_url(self) -> str:
        return self.endpoint

    def add_file(self, repo: str, file_name: str, content: bytes, *, revision: str = "main", **faults: object) -> str:
        """Serve `content` as `file_name` of `repo` at `revision` (a branch, or a 40-hex commit that is then
        its own name); returns the commit it resolves to."""
        with self._lock:
            entry = self.repos.setdefault(repo, _Repo())
            own = revision if re.fullmatch(r"[0-9a-f]{40}", revision) else _commit_for(repo, revision)
            commit = entry.commits.setdefault(revision, own)
            entry.files[(commit, file_name)] = HubFile(
                content=content, sha256=hashlib.sha256(content).hexdigest(), **faults
            )  # type: ignore[arg-type]
            return commit

    def file(self, repo: str, file_name: str, revision: str = "main") -> HubFile:
        entry = self.repos[repo]
        return entry.files[(entry.commits.get(revision, revision), file_name)]

    def cdn_gets(self, path_contains: str = "") -> list[RecordedHubRequest]:
        """Downloads of file bodies (whichever port took them: through a proxy it is the proxy's)."""
        return [
            r for r in self.requests if r.path.startswith("/cdn/") and r.method == "GET" and path_contains in r.path
        ]

    # --- serving -----------------------------------------------------------------------

    def _serve(self, origin: str) -> ThreadingHTTPServer:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
                pass

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                hub._handle(self, origin, body=False)

            def do_GET(self) -> None:  # noqa: N802
                hub._handle(self, origin, body=True)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name=f"loopback-hub-{origin}", daemon=True).start()
        return server

    def _record(self, handler: BaseHTTPRequestHandler, origin: str, path: str, status: int, via_proxy: bool) -> None:
        with self._lock:
            self.requests.append(
                RecordedHubRequest(
                    method=handler.command,
                    path=path,
                    origin=origin,
                    status=status,
                    via_proxy=via_proxy,
                    headers={k.lower(): v for k, v in handler.headers.items()},
                )
            )

    def _handle(self, handler: BaseHTTPRequestHandler, origin: str, *, body: bool) -> None:
        target = handler.path
        via_proxy = target.startswith(("http://", "https://"))
        path = unquote(urlsplit(target).path if via_proxy else target.split("?", 1)[0])
        if (match := _CDN.match(path)) is not None:
            self._cdn_file(handler, origin, path, match["sha"], body=body, via_proxy=via_proxy)
        elif (match := _RESOLVE.match(path)) is not None:
            self._resolve(handler, origin, path, match["repo"], match["revision"], match["file"], via_proxy=via_proxy)
        else:
            self._error(handler, origin, path, 404, None, via_proxy=via_proxy)

    def _error(
        self,
        handler: BaseHTTPRequestHandler,
        origin: str,
        path: str,
        status: int,
        code: str | None,
        *,
        via_proxy: bool,
        commit: str | None = None,
        message: str = "",
    ) -> None:
        payload = f'{{"error": "{message or code or "Not Found"}"}}'.encode()
        handler.send_response(status)
        if code:
            handler.send_header("X-Error-Code", code)
            handler.send_header("X-Error-Message", message or code)
        if commit:
            handler.send_header("X-Repo-Commit", commit)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if handler.command == "GET":
            handler.wfile.write(payload)
        self._record(handler, origin, path, status, via_proxy)

    def _resolve(
        self,
        handler: BaseHTTPRequestHandler,
        origin: str,
        path: str,
        repo: str,
        revision: str,
        file_name: str,
        *,
        via_proxy: bool,
    ) -> None:
        entry = self.repos.get(repo)
        if entry is None:
            self._error(handler, origin, path, 401, "RepoNotFound", via_proxy=via_proxy, message="Repository not found")
            return
        commit = entry.commits.get(revision) or (revision if revision in entry.commits.values() else None)
        if commit is None:
            self._error(
                handler,
                origin,
                path,
                404,
                "RevisionNotFound",
                via_proxy=via_proxy,
                message="Invalid rev id: " + revision,
            )
            return
        hub_file = entry.files.get((commit, file_name))
        if hub_file is None:
            self._error(
                handler,
                origin,
                path,
                404,
                "EntryNotFound",
                via_proxy=via_proxy,
                commit=commit,
                message="Entry not found",
            )
            return
        if hub_file.gated_token is not None:
            if handler.headers.get("Authorization") != f"Bearer {hub_file.gated_token}":
                self._error(
                    handler,
                    origin,
                    path,
                    403,
                    "GatedRepo",
                    via_proxy=via_proxy,
                    message="Access to this model is restricted",
                )
                return
        sha = hub_file.published_sha256
        handler.send_response(302)
        handler.send_header("Location", f"{self.cdn_base}/cdn/{hub_file.sha256}/{file_name}?X-Amz-Signature=loopback")
        handler.send_header("X-Repo-Commit", commit)
        handler.send_header("X-Linked-Etag", f'"{sha}"')
        handler.send_header("X-Linked-Size", str(len(hub_file.content)))
        handler.send_header("ETag", f'"{_pointer_etag(sha, len(hub_file.content))}"')
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        self._record(handler, origin, path, 302, via_proxy)

    def _find_blob(self, sha: str) -> HubFile | None:
        for entry in self.repos.values():
            for hub_file in entry.files.values():
                if hub_file.sha256 == sha:
                    return hub_file
        return None

    def _cdn_file(
        self, handler: BaseHTTPRequestHandler, origin: str, path: str, sha: str, *, body: bool, via_proxy: bool
    ) -> None:
        hub_file = self._find_blob(sha)
        if hub_file is None:
            self._error(handler, origin, path, 404, None, via_proxy=via_proxy)
            return
        content = hub_file.content
        start = 0
        status = 200
        wanted = handler.headers.get("Range")
        if wanted and (m := re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())):
            start = int(m[1])
            status = 206
        handler.send_response(status)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(content) - start))
        handler.send_header("ETag", f'"{hub_file.sha256}"')
        handler.send_header("Accept-Ranges", "bytes")
        if status == 206:
            handler.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        handler.end_headers()
        self._record(handler, origin, path, status, via_proxy)
        if not body:
            return
        cut = None
        with self._lock:
            if hub_file.cut_after is not None and hub_file.cuts > 0:
                hub_file.cuts -= 1
                cut = hub_file.cut_after
        position = start
        end = len(content) if cut is None else min(len(content), max(cut, start))
        try:
            while position < end:
                step = min(hub_file.chunk_size, end - position)
                handler.wfile.write(content[position : position + step])
                position += step
                if hub_file.chunk_delay_s:
                    handler.wfile.flush()
                    time.sleep(hub_file.chunk_delay_s)
            handler.wfile.flush()
            if cut is not None and position < len(content):
                # A link that drops mid-body: the client sees fewer bytes than Content-Length.
                handler.close_connection = True
                handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            handler.close_connection = True  # the client went away

    # --- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def loopback_hub() -> Iterator[LoopbackHub]:
    """Body of a pytest fixture: `hub = pytest.fixture(loopback_hub)`."""
    with LoopbackHub() as hub:
        yield hub
