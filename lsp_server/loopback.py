"""Which host names and addresses stay on this machine.

Decided from the text alone, never by resolving a name: a resolver (or /etc/hosts, or a
DNS answer) could say anything, and the answer could change between the check and the
connection. So only `localhost` and literal loopback addresses count.
"""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str) -> bool:
    """True for `localhost`, 127.0.0.0/8, ::1 (bracketed or not) and IPv4-mapped 127.x."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback
