"""Addresses of this machine for tests that must reach a server that is not on loopback."""

from __future__ import annotations

import ipaddress
import socket


def non_loopback_ipv4() -> str | None:
    """An IPv4 address of this machine outside 127.0.0.0/8, if it has one.

    Connecting a UDP socket sends nothing; it only makes the kernel pick the source address
    it would use towards a documentation-only network (RFC 5737), i.e. the default route's.
    """
    for probe in ("192.0.2.1", "198.51.100.1", "203.0.113.1"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect((probe, 9))
            except OSError:
                continue
            address = sock.getsockname()[0]
        if not ipaddress.ip_address(address).is_loopback and address != "0.0.0.0":
            return address
    return None


def own_hostname() -> tuple[str, str] | None:
    """This machine's host name and the IPv4 address it resolves to (often a loopback one).

    The name itself is not `localhost` or a loopback literal, so a check that goes by the
    URL's text must treat it as another machine even when it resolves to 127.0.x.x.
    """
    name = socket.gethostname()
    if not name or name.lower() == "localhost":
        return None
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return None
    return (name, infos[0][4][0]) if infos else None
