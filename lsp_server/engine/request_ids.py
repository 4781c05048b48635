"""Request ids: unique across processes, cheap enough to make one per keystroke."""

from __future__ import annotations

import itertools
import uuid

_REQUEST_PREFIX = uuid.uuid4().hex[:12]
_request_counter = itertools.count(1)


def new_request_id() -> str:
    """Unique across processes without a syscall per request (uuid4 reads the OS's entropy)."""
    return f"{_REQUEST_PREFIX}-{next(_request_counter):x}"
