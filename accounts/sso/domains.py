"""Email domains for single sign-on: their normal form, and the DNS TXT record that proves one.

An owner adds a domain and publishes ``jagcall-verification=<token>`` as a
TXT record at ``_jagcall.<domain>`` (or at the domain itself); the "Verify"
button asks DNS for it. The resolver asks the servers in the
``SSO_DNS_NAMESERVERS`` setting (tests point it at a stand-in on 127.0.0.1),
or the system's resolver (``/etc/resolv.conf``) when it is empty.
"""

from __future__ import annotations

import ipaddress
import re

import dns.exception
import dns.nameserver
import dns.resolver
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from jagcall.kernel.errors import ApplicationError

TXT_PREFIX = "jagcall-verification="
RECORD_LABEL = "_jagcall"
MAX_TXT_RECORDS = 50  # a name with more TXT records than this is not worth reading through

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class DnsUnavailable(Exception):
    """DNS could not be asked (timeout, no server answered, server failure): try again later."""


def domain_normalize(value: str) -> str:
    """``value`` as a domain name in lower case IDNA form, or ApplicationError (field ``domain``)."""
    raw = (value or "").strip().lower()
    if raw.startswith("@"):
        raw = raw[1:]  # "@acme.com" is what people often type
    raw = raw.rstrip(".")
    invalid = ApplicationError(
        "Enter a domain name such as acme.com (the part of your team's email addresses after the @).",
        field="domain",
    )
    if not raw or len(raw) > 253 or any(ch.isspace() or ch in "/:@\x00" for ch in raw):
        raise invalid
    try:
        ascii_name = raw.encode("idna").decode("ascii")
    except UnicodeError:
        raise invalid from None
    labels = ascii_name.split(".")
    if len(labels) < 2 or len(ascii_name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise invalid
    if labels[-1].isdigit():
        raise invalid  # an IP address is not an email domain
    return ascii_name


def domain_of_email(email: str) -> str:
    """The domain of an email address in the same normal form, or "" when it has none we can read."""
    _local, at, domain = (email or "").rpartition("@")
    if not at:
        return ""
    try:
        return domain_normalize(domain)
    except ApplicationError:
        return ""


def txt_record_value(token: str) -> str:
    return f"{TXT_PREFIX}{token}"


def txt_record_names(domain: str) -> list[str]:
    """Where the record may be published: the dedicated name first, then the domain itself."""
    return [f"{RECORD_LABEL}.{domain}", domain]


def _nameserver(entry: str) -> dns.nameserver.Do53Nameserver:
    """``host``, ``host:port`` or ``[v6]:port`` (plain DNS over UDP, with TCP for long answers)."""
    entry = entry.strip()
    host, port = entry, 53
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    try:
        ipaddress.ip_address(host)
        port = int(port)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        raise ImproperlyConfigured(
            f"SSO_DNS_NAMESERVERS: {entry!r} is not an IP address with an optional port, like 10.0.0.2 or 10.0.0.2:53."
        ) from None
    return dns.nameserver.Do53Nameserver(host, port)


def resolver() -> dns.resolver.Resolver:
    entries = list(settings.SSO_DNS_NAMESERVERS or [])
    if entries:
        found = dns.resolver.Resolver(configure=False)
        found.nameservers = [_nameserver(entry) for entry in entries]
    else:
        try:
            found = dns.resolver.Resolver(configure=True)  # the system's resolver
        except dns.resolver.NoResolverConfiguration:
            raise DnsUnavailable("no DNS server is configured on this machine") from None
    found.lifetime = float(settings.SSO_DNS_TIMEOUT_SECONDS)
    found.timeout = found.lifetime
    found.cache = None  # a just-published record must be seen on the next click
    return found


def txt_values(name: str) -> list[str]:
    """The TXT records at ``name`` (each one's strings joined), [] when there are none."""
    try:
        answer = resolver().resolve(name, "TXT", search=False, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return []
    except (dns.resolver.NoNameservers, dns.exception.Timeout) as error:
        raise DnsUnavailable(str(error)) from None
    except dns.exception.DNSException as error:  # any other failure to ask: never a 500
        raise DnsUnavailable(str(error)) from None
    if answer.rrset is None:
        return []
    values = []
    for record in list(answer.rrset)[:MAX_TXT_RECORDS]:
        values.append(b"".join(record.strings).decode("utf-8", "replace").strip())
    return values


def txt_record_published(domain: str, token: str) -> bool:
    """True when ``jagcall-verification=<token>`` is published at one of ``txt_record_names(domain)``.

    [!!] The exact token only: another organization's token for the same
    domain, or a prefix of ours, proves nothing.
    """
    expected = txt_record_value(token)
    for name in txt_record_names(domain):
        if expected in txt_values(name):
            return True
    return False
