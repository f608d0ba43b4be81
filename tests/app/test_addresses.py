"""Which addresses a webhook may go to: IPv6 forms that carry an IPv4 address are judged by that address too,
the same way on every Python (the attack run's NAT64, 6to4 and IPv4-compatible forms of 127.0.0.1 passed)."""
from __future__ import annotations

import ipaddress

import pytest

from app.addresses import AddressRefused, checked_addresses, embedded_ipv4, is_public
from app.webhooks.sender import FIELD

REFUSED = {
    "127.0.0.1": "loopback", "10.1.2.3": "private", "169.254.169.254": "link-local (cloud metadata)",
    "224.0.0.1": "multicast", "::1": "IPv6 loopback", "fe80::1": "IPv6 link-local", "fc00::1": "unique local",
    "64:ff9b::7f00:1": "NAT64 of 127.0.0.1", "64:ff9b::a9fe:a9fe": "NAT64 of 169.254.169.254",
    "64:ff9b:1::7f00:1": "local-use NAT64", "64:ff9b:1::808:808": "local-use NAT64, even of a public address",
    "2002:7f00:1::": "6to4 of 127.0.0.1", "2002:a00:1::1": "6to4 of 10.0.0.1",
    "::127.0.0.1": "IPv4-compatible 127.0.0.1", "::10.0.0.1": "IPv4-compatible 10.0.0.1",
    "::ffff:127.0.0.1": "IPv4-mapped 127.0.0.1", "::ffff:192.168.0.1": "IPv4-mapped 192.168.0.1",
    "2001:0:4136:e378:8000:63bf:80ff:fffe": "Teredo, client 127.0.0.1",
    "2001:0:808:808:0:0:f7f7:f7f7": "Teredo, client 8.8.8.8 (2001::/32 is not global)",
}
PUBLIC = {
    "8.8.8.8": "public IPv4", "2606:4700:4700::1111": "public IPv6", "::ffff:8.8.8.8": "IPv4-mapped 8.8.8.8",
    "64:ff9b::808:808": "NAT64 of 8.8.8.8", "2002:808:808::1": "6to4 of 8.8.8.8",
}


def _url(address: str) -> str:
    return "http://[%s]:8080/hook" % address if ":" in address else "http://%s:8080/hook" % address


@pytest.mark.parametrize("text", sorted(REFUSED), ids=lambda text: REFUSED[text])
def test_local_addresses_are_refused_in_every_form(text):
    assert not is_public(ipaddress.ip_address(text))
    with pytest.raises(AddressRefused, match="private or local address"):
        checked_addresses(_url(text), False, FIELD)
    checked_addresses(_url(text), True, FIELD)


@pytest.mark.parametrize("text", sorted(PUBLIC), ids=lambda text: PUBLIC[text])
def test_public_addresses_pass_in_every_form(text):
    assert is_public(ipaddress.ip_address(text))
    checked_addresses(_url(text), False, FIELD)


@pytest.mark.parametrize("text, inner", [("64:ff9b::7f00:1", "127.0.0.1"), ("2002:7f00:1::", "127.0.0.1"),
                                         ("::127.0.0.1", "127.0.0.1"), ("::ffff:10.0.0.1", "10.0.0.1"),
                                         ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),
                                         ("2606:4700:4700::1111", None)])
def test_the_ipv4_address_an_ipv6_form_carries(text, inner):
    found = embedded_ipv4(ipaddress.IPv6Address(text))
    assert (str(found) if found else None) == inner


@pytest.mark.parametrize("url", ["http://8.8.8.8/a\x1fb", "http://8.8.8.8/\x00", "http://8.8.8.8/a\nHost: x",
                                 "http://8.8.8.8/\x7f"])
def test_a_url_with_control_characters_is_refused_before_any_lookup(url):
    with pytest.raises(AddressRefused, match="control characters"):
        checked_addresses(url, True, FIELD)
