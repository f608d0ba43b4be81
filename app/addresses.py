"""Whether the server may send a request to a URL a client named (webhooks, photos by URL): only to public
addresses, unless the operator allows private ones.

IPv6 has forms that carry an IPv4 address, and a translator, tunnel or dual-stack socket delivers to that
IPv4 address: so ``64:ff9b::7f00:1`` is 127.0.0.1 to a NAT64 gateway. Python's ``is_global`` judges such
forms by their IPv6 range alone (and differently from one Python version to the next), so they are
unwrapped here first."""
from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Tuple, Union
from urllib.parse import SplitResult, quote, urlsplit

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: an operator's own translators, never public
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated (RFC 4291), still routed by some stacks
URL_PUNCTUATION = "/?&=%:@!$'()*+,;[]"  # kept as they are in a request target (percent escapes included)
_TLS: List[ssl.SSLContext] = []  # made on first use: loading the CA store costs tens of milliseconds


def embedded_ipv4(address: ipaddress.IPv6Address) -> Optional[ipaddress.IPv4Address]:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo's client),
    or None when it carries none."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_WELL_KNOWN or address in IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _global(address: Address) -> bool:
    return address.is_global and not address.is_multicast


def is_public(address: Address) -> bool:
    """True when ``address`` and any IPv4 address it carries are global unicast addresses. An IPv4-mapped
    address is the IPv4 address itself (the socket speaks IPv4), so it is judged by that alone."""
    if isinstance(address, ipaddress.IPv4Address):
        return _global(address)
    if address.ipv4_mapped is not None:
        return _global(address.ipv4_mapped)
    if address in NAT64_LOCAL_USE:
        return False
    inner = embedded_ipv4(address)
    return _global(address) and (inner is None or _global(inner))


class AddressRefused(ValueError):
    """The server may not send a request to this URL; the message names the field and says what to do."""


def default_port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def checked_addresses(url: str, allow_private: bool, field: str) -> List[Address]:
    """The addresses the host of an http(s) ``url`` resolves to, every one of them public (or any, when
    ``allow_private``); raises AddressRefused naming ``field``. A caller connects to these addresses, not to
    the name again: a second lookup could answer differently (DNS rebinding). Blocks on DNS: call it off the
    event loop."""
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in url):
        raise AddressRefused("%s: a URL may hold no control characters; percent-encode them" % field)
    try:
        parts = urlsplit(url)
        port = default_port(parts)
    except ValueError:  # a port that is not a number, or a bracketed host that is no IPv6 address
        raise AddressRefused("%s: %r is not a valid URL" % (field, url[:100])) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused("%s: only http:// and https:// URLs with a host are accepted" % field)
    if parts.username or parts.password:
        raise AddressRefused("%s: put no credentials (user:password@) in the URL" % field)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, ValueError):
        raise AddressRefused("%s: the host %r does not resolve; check the URL" % (field, parts.hostname)) from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise AddressRefused("%s: %s resolves to a private or local address (%s); use a public URL"
                                     % (field, parts.hostname, address))
    return addresses


class LookupsBusy(Exception):
    """All the lookup threads are taken (by lookups that hang, most likely)."""


class BoundedLookups:
    """checked_addresses for the event loop, in threads of its own, at most ``threads`` at once: a lookup that
    hangs keeps its thread until the resolver gives up (long after its caller's deadline), so past that many
    a lookup is refused at once (LookupsBusy) rather than queued or given a shared thread. Each kind of caller
    holds its own (photo fetches, webhooks), so hung lookups of one kind never refuse the other's."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.slots = threading.BoundedSemaphore(threads)  # held until the lookup ends, not its caller
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="toonify-dns")

    async def checked(self, url: str, allow_private: bool, field: str) -> List[Address]:
        if not self.slots.acquire(blocking=False):
            raise LookupsBusy("the server is looking up %d hosts already" % self.threads)
        try:
            lookup = self._executor.submit(checked_addresses, url, allow_private, field)
        except BaseException:
            self.slots.release()
            raise
        lookup.add_done_callback(lambda _: self.slots.release())
        return await asyncio.wrap_future(lookup)

    def close(self) -> None:
        """No more lookups; one in flight ends in its thread when the resolver gives up."""
        self._executor.shutdown(wait=False)



def target_and_host(parts: SplitResult) -> Tuple[bytes, bytes]:
    """The request target and Host header in ASCII, as HTTP wants them: spaces and non-ASCII characters of the
    path percent-encoded (as browsers do), an international host name in IDNA; UnicodeError when the host name
    is not valid."""
    target = quote((parts.path or "/") + ("?" + parts.query if parts.query else ""), safe=URL_PUNCTUATION)
    return target.encode("ascii"), parts.netloc.encode("idna")


def _tls() -> ssl.SSLContext:
    if not _TLS:
        _TLS.append(ssl.create_default_context())
    return _TLS[0]


async def open_checked(parts: SplitResult, addresses: List[Address]
                       ) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the first of ``addresses`` (from checked_addresses) that answers, TLS for https (the
    certificate verified against the URL's host name); the last failure (OSError) when none answers."""
    https = parts.scheme == "https"
    problem: OSError = OSError("no address to connect to")
    for address in addresses:
        try:
            return await asyncio.open_connection(str(address), default_port(parts), ssl=_tls() if https else None,
                                                 server_hostname=parts.hostname if https else None)
        except OSError as exc:  # ssl.SSLError is one
            problem = exc
    raise problem
