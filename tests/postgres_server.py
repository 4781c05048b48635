"""A real PostgreSQL server for the tests, from Debian's `postgresql` package binaries.

`initdb` and `pg_ctl` in a temporary directory; the server listens on a unix socket in its
data directory and on a loopback port. PostgreSQL refuses to run as root, so when the tests
run as root the cluster belongs to an unprivileged user (`nobody`, or NINETYTEN_TEST_PG_USER)
and its commands run through `runuser`.

Local (socket) connections are trusted; TCP connections need the superuser's password
(scram-sha-256), so the tests that go over TCP exercise libpq's password handling.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

SUPERUSER = "postgres"


def postgres_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb, or the one on PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    def __init__(self, bin_dir: Path, root: Path | None = None) -> None:
        self.bin_dir = bin_dir
        self.root = Path(root or tempfile.mkdtemp(prefix="ninetyten-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sockets"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.password = uuid.uuid4().hex
        self.os_user = os.environ.get("NINETYTEN_TEST_PG_USER", "nobody") if os.geteuid() == 0 else None

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.os_user is not None:
            command = ["runuser", "-u", self.os_user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}): {done.stderr or done.stdout}\n"
                f"{self.log.read_text() if self.log.exists() else ''}"
            )
        return done

    def init(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.os_user is not None:
            shutil.chown(self.root, self.os_user)
            for path in (self.socket_dir, pwfile):
                shutil.chown(path, self.os_user)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--no-instructions",
        )
        pwfile.unlink()
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\nmax_connections = 200\n"
                "shared_buffers = 64MB\nlog_min_messages = warning\n"
            )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def socket_url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@/{dbname}?host={self.socket_dir}&port={self.port}"

    def tcp_url(self, dbname: str = "postgres", port: int | None = None) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{port or self.port}/{dbname}"

    def create_database(self, name: str | None = None) -> str:
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.socket_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (Debian: apt install postgresql; `make system-deps`)")
    server = PostgresServer(bin_dir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.cleanup()


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
