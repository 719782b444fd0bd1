"""Who a DICOM peer is: AE title and host rules, and whether a connecting address is a node's.

A node's host is a host name, an IP address or a CIDR network (e.g. 10.1.2.0/24). An
association whose calling AE title is registered is only that node's when it comes from an
address the host stands for (RV_DICOM_CHECK_PEER_HOST, on by default).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time

from django.core.exceptions import ValidationError

# PS3.5 6.2 (AE): at most 16 characters of the default repertoire, no backslash, no control
# characters; leading and trailing spaces are not significant, so all spaces is no title.
_AE_TITLE = re.compile(r"^[ -\[\]-~]{1,16}$")
# RFC 1123 host names: labels of letters, digits and hyphens, not starting or ending in one.
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def validate_ae_title(value: str) -> None:
    if not _AE_TITLE.match(value or ""):
        raise ValidationError("An AE title is 1 to 16 printable ASCII characters without a "
                              "backslash.", code="ae_title")
    if not value.strip():
        raise ValidationError("An AE title cannot be all spaces.", code="ae_title")


def parse_network(host: str) -> IPNetwork | None:
    """The host as an IP network (an address is a network of one); None for a host name."""
    try:
        return ipaddress.ip_network(host.strip(), strict=False)
    except ValueError:
        return None


def validate_host(value: str) -> None:
    """A host name (RFC 1123), an IPv4/IPv6 address, or a CIDR network."""
    host = (value or "").strip()
    if "/" in host:
        try:
            ipaddress.ip_network(host, strict=True)
        except ValueError as exc:
            raise ValidationError(f"{value!r} is not a network (CIDR, e.g. 10.1.2.0/24): {exc}",
                                  code="host") from None
        return
    if parse_network(host) is not None:
        return
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if (not name or len(name) > 253 or not all(_LABEL.match(label) for label in labels)
            or labels[-1].isdigit()):
        raise ValidationError(f"{value!r} is not a host name, an IP address or a CIDR network.",
                              code="host")


def _address(text: str) -> IPAddress | None:
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    return addr


_resolved: dict[str, tuple[float, frozenset[IPAddress]]] = {}
_resolved_lock = threading.Lock()
_RESOLVE_TTL = 60.0


def _resolve(name: str) -> frozenset[IPAddress]:
    """The addresses a host name stands for, kept a minute (one look-up per minute, not per
    association); none when it does not resolve."""
    now = time.monotonic()
    with _resolved_lock:
        hit = _resolved.get(name)
    if hit is not None and now - hit[0] < _RESOLVE_TTL:
        return hit[1]
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        infos = []
    found = frozenset(a for a in (_address(str(info[4][0])) for info in infos) if a is not None)
    with _resolved_lock:
        _resolved[name] = (now, found)
    return found


def host_matches(host: str, peer_address: str) -> bool:
    """Whether a connection from peer_address comes from `host` (name, address or network)."""
    peer = _address(peer_address)
    if peer is None:
        return False
    network = parse_network(host)
    if network is not None:
        if isinstance(network, ipaddress.IPv6Network) and network.prefixlen == 128 \
                and network.network_address.ipv4_mapped is not None:
            network = ipaddress.ip_network(network.network_address.ipv4_mapped)
        return network.version == peer.version and peer in network
    return peer in _resolve(host.strip().rstrip(".").lower())
