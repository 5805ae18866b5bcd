"""Which upstream base URLs operators may configure. Clients can never supply one.

Link-local and cloud-metadata addresses are always refused; loopback and private ranges only when the platform
allows them (TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS / TOLLWAY_ALLOW_PRIVATE_UPSTREAMS). Host names are resolved,
and every address they resolve to must pass.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

_METADATA_HOSTS = {"metadata.google.internal", "metadata", "metadata.azure.com", "instance-data"}


class UnsafeUpstream(ValueError):
    pass


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        # An unresolvable name cannot reach an internal address today; it is checked again when it is saved.
        return []
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check_base_url(url: str, *, allow_loopback: bool, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise UnsafeUpstream(f"base_url must be http or https, not {parts.scheme or 'empty'!r}")
    if not parts.hostname:
        raise UnsafeUpstream("base_url has no host")
    if parts.username or parts.password:
        raise UnsafeUpstream("base_url must not carry credentials; use api_key")
    host = parts.hostname.lower().rstrip(".")
    if host in _METADATA_HOSTS:
        raise UnsafeUpstream(f"base_url host {host!r} is a cloud metadata service")
    for address in _addresses(host):
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if address.is_link_local or str(address) in {"169.254.169.254", "fd00:ec2::254"}:
            raise UnsafeUpstream(f"base_url resolves to link-local/metadata address {address}")
        if address.is_unspecified or address.is_multicast or address.is_reserved:
            raise UnsafeUpstream(f"base_url resolves to unusable address {address}")
        if address.is_loopback:
            if not allow_loopback:
                raise UnsafeUpstream(
                    f"base_url resolves to loopback address {address}, which this platform refuses"
                    " (TOLLWAY_ALLOW_LOOPBACK_UPSTREAMS=1 allows it)"
                )
        elif address.is_private and not allow_private:
            raise UnsafeUpstream(
                f"base_url resolves to private address {address}, which this platform refuses"
                " (TOLLWAY_ALLOW_PRIVATE_UPSTREAMS=1 allows it)"
            )
