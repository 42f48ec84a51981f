"""What the downloader may fetch and how politely: one frozen policy plus the checks that enforce it.

Kept apart from the downloader so the rules (schemes, private addresses, publisher opt-outs, Retry-After)
can be read, tested and reused without any network code.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

DEFAULT_DISALLOWED_DIRECTIVES = ("noai", "noimageai", "noindex", "noimageindex")
DEFAULT_RECORDED_HEADERS = (
    "content-type",
    "content-length",
    "content-encoding",
    "x-robots-tag",
    "last-modified",
    "etag",
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class FetchPolicy:
    """Limits and manners of one download run. Defaults suit crawling the public web politely.

    Timeouts are per attempt: `total_timeout_s` is a hard deadline over connect, every redirect hop and the
    whole body, so a server that trickles bytes cannot hold a slot for longer than that.
    """

    allowed_schemes: frozenset[str] = frozenset({"http", "https"})
    allow_files: bool = False  # `file://` refs (folder source); also needs `file_roots` to be set or empty
    file_roots: tuple[Path, ...] = ()  # when non-empty, file refs must resolve inside one of these
    allow_private: bool = False  # private, loopback, link-local, reserved... addresses
    allowed_networks: tuple[str, ...] = ()  # CIDRs allowed even when private (an internal mirror)
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 5
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 20.0  # between two reads
    total_timeout_s: float = 60.0  # whole attempt, all hops and the body
    max_retries: int = 2  # extra attempts after a transient failure
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    retry_after_cap_s: float = 60.0
    max_in_flight: int = 64  # refs being fetched at once, all domains together
    max_connections: int = 100  # TCP connection pool size
    per_domain_concurrency: int = 8
    per_domain_rate: float = 10.0  # requests per second per host; 0 disables the rate limit
    per_domain_burst: int = 5
    respect_robots_tags: bool = True  # honour X-Robots-Tag opt-outs (noai, noindex, ...)
    disallowed_directives: tuple[str, ...] = DEFAULT_DISALLOWED_DIRECTIVES
    user_agent_tokens: tuple[str, ...] = ("synsetforge", "img2dataset")
    user_agent: str = "synsetforge/0.1 (dataset builder; +https://github.com/synsetforge/synsetforge)"
    recorded_headers: tuple[str, ...] = DEFAULT_RECORDED_HEADERS
    extra_headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_in_flight <= 0 or self.per_domain_concurrency <= 0:
            raise ValueError("max_bytes, max_in_flight and per_domain_concurrency must be positive")
        if self.max_redirects < 0 or self.max_retries < 0:
            raise ValueError("max_redirects and max_retries must be >= 0")
        for net in self.allowed_networks:
            ipaddress.ip_network(net, strict=False)  # raises ValueError on a typo

    def schemes(self) -> frozenset[str]:
        """Schemes allowed, with `file` added when files are allowed."""
        return self.allowed_schemes | {"file"} if self.allow_files else self.allowed_schemes


def is_forbidden_ip(ip: IPAddress, policy: FetchPolicy) -> bool:
    """True when `ip` is not a public unicast address and the policy does not allow it."""
    if policy.allow_private:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for net in policy.allowed_networks:
        if ip in ipaddress.ip_network(net, strict=False):
            return False
    return bool(
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def literal_ip(host: str) -> IPAddress | None:
    """The address when `host` is an IP literal (brackets allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class ForbiddenAddressError(OSError):
    """A host resolved to an address the policy forbids (raised from inside the resolver)."""


class GuardedResolver(AbstractResolver):
    """Resolver that refuses hosts resolving to a forbidden address.

    Checking at resolve time, inside the connector, covers every redirect hop and closes the gap between
    a separate look-up and the connection (DNS rebinding). IP literals bypass resolvers in aiohttp, so the
    downloader checks those itself.
    """

    def __init__(self, policy: FetchPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for res in results:
            ip = literal_ip(str(res["host"]))
            if ip is None or is_forbidden_ip(ip, self._policy):
                raise ForbiddenAddressError(f"{host} resolves to forbidden address {res['host']}")
        return results

    async def close(self) -> None:
        await self._inner.close()


def robots_directive(values: Iterable[str], tokens: Iterable[str], disallowed: Iterable[str]) -> str | None:
    """The first disallowed X-Robots-Tag directive that applies to us, else None.

    Same reading as img2dataset: each header value is `[user-agent:] directive[, directive...]`; a value
    without a user agent applies to everyone, one with a user agent only when it names one of our tokens.
    """
    tokens_l = {t.strip().lower() for t in tokens}
    disallowed_l = {d.strip().lower() for d in disallowed}
    for value in values:
        parts = value.split(":", 1)
        ua = parts[0].strip().lower() if len(parts) == 2 else None
        if ua is not None and ua not in tokens_l:
            continue
        for directive in parts[-1].split(","):
            d = directive.strip().lower()
            if d in disallowed_l:
                return d
    return None


def parse_retry_after(value: str | None, cap_s: float, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped; None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return min(float(value), cap_s)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delta, 0.0), cap_s)


def pick_headers(headers: Any, names: Iterable[str]) -> dict[str, str]:
    """The recorded subset of response headers, lower-case names, repeated values joined with ', '."""
    out: dict[str, str] = {}
    for name in names:
        values = headers.getall(name, []) if hasattr(headers, "getall") else [headers.get(name)]
        values = [v for v in values if v is not None]
        if values:
            out[name.lower()] = ", ".join(values)
    return out
