"""Who is asking: API keys (bearer header), short-lived signed links, and the tenant ("owner") a key stands for.

Keys never travel in URLs: the page's EventSource and <img> use the signed links the job view hands out
(``?owner=…&exp=…&sig=…``, HMAC of the owner, the job id and the expiry), and the access log redacts any query
parameter that looks like a credential. Owner ids and link signatures are HMACs under the server's secret
(app.api.signing_secret), never hashes of a key alone, so a link tells nothing about the key. Comparisons are
constant-time over bytes, so no header value can make them throw.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import time
from typing import Callable, Dict, FrozenSet, Optional, Tuple
from urllib.parse import parse_qsl

from ..errors import KeyNotAccepted, LinkRefused, MalformedLink, Unauthorized

OPEN_PATHS = frozenset({"/", "/favicon.ico", "/healthz", "/readyz", "/config", "/docs", "/redoc", "/openapi.json"})
OPEN_PREFIXES = ("/docs/assets/", "/examples/")  # the vendored Swagger UI and ReDoc files, the page's example photos
# what a signed link may open
LINKED_PATH = re.compile(r"^/jobs/([A-Za-z0-9_-]{1,64})(/events|/result|/archive|/preview)?$")
SECRET_PARAM = re.compile(r"(?i)([?&][^=&]*(?:token|key|sig|secret|passw|auth)[^=&]*=)[^&#]*")
NO_OWNER = ""  # without API keys every job is everyone's (and links are unsigned)
MAX_QUERY_FIELDS = 32  # a linked route takes a few options; the link adds three
LINK_FIELDS = {  # each exactly as sign() writes it, and what to say when it is not
    "owner": (re.compile(r"k[0-9a-f]{16}"), "an owner id: 'k' and 16 hex digits"),
    "exp": (re.compile(r"[0-9]{1,12}"), "a Unix time in ASCII digits"),
    "sig": (re.compile(r"[A-Za-z0-9_-]{24}"), "24 URL-safe base64 characters"),
}
UNCHANGED = "open the link the job view gave, unchanged"


def owner_of(secret: bytes, key: bytes) -> str:
    """The tenant of an API key: a stable id (while the secret is) that tells nothing about the key."""
    return "k" + hmac.new(secret, b"owner\0" + key, hashlib.sha256).hexdigest()[:16]


def _sig(secret: bytes, owner: str, job_id: str, expires: int) -> str:
    message = ("link\0%s|%s|%d" % (owner, job_id, expires)).encode()
    return base64.urlsafe_b64encode(hmac.new(secret, message, hashlib.sha256).digest()[:18]).decode()


def link_fields(query_string: bytes) -> Optional[Dict[str, str]]:
    """The ``owner``, ``exp`` and ``sig`` of a signed link's query string; None when it has none of them.
    MalformedLink (400) when they are not as sign() writes them: each once, in ASCII, of its length."""
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:
        raise MalformedLink("a signed link has at most %d query fields; %s" % (MAX_QUERY_FIELDS, UNCHANGED)) from None
    found = [(name, value) for name, value in pairs if name in LINK_FIELDS]
    if not found:
        return None
    names = [name for name, _ in found]
    for name, (pattern, shape) in LINK_FIELDS.items():
        if names.count(name) != 1:
            raise MalformedLink("a signed link has '%s' exactly once (it has it %d times); %s"
                                % (name, names.count(name), UNCHANGED))
        if not pattern.fullmatch(dict(found)[name]):
            raise MalformedLink("a signed link's '%s' is %s; %s" % (name, shape, UNCHANGED))
    return dict(found)


class Auth:
    def __init__(self, api_keys: FrozenSet[str], secret: Callable[[], bytes], link_ttl_s: int = 900,
                 open_metrics: bool = False) -> None:
        """``secret``: fetches the server's secret (app.api.signing_secret; blocking), once, when keys are set."""
        self._api_keys = [key.encode("utf-8", "surrogateescape") for key in sorted(api_keys)]
        self._fetch_secret = secret
        self._secret: Optional[bytes] = None
        self._keys: Dict[bytes, str] = {}  # key → owner id, once the secret is there
        self.link_ttl_s = link_ttl_s
        self.open_paths = OPEN_PATHS | ({"/metrics"} if open_metrics or not api_keys else set())

    @property
    def enabled(self) -> bool:
        return bool(self._api_keys)

    @property
    def ready(self) -> bool:
        """Whether owner() can answer without fetching the secret first (with load(), off the event loop)."""
        return self._secret is not None or not self._api_keys

    def load(self) -> bytes:
        """The secret, fetched on first use (it may raise QueueUnavailable while Redis is down)."""
        if self._secret is None:
            secret = self._fetch_secret()
            self._keys = {key: owner_of(secret, key) for key in self._api_keys}
            self._secret = secret
        return self._secret

    def _bearer_owner(self, scope) -> Tuple[bool, Optional[str]]:
        """(whether the request sends a bearer token, the owner of its key when the key is one of ours)."""
        for name, value in scope.get("headers") or ():
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                token = value[7:].strip()
                found = None
                for key, owner in self._keys.items():  # no early exit: time does not depend on which key
                    if hmac.compare_digest(token, key):
                        found = owner
                return bool(token), found  # "Bearer " and nothing: no key sent
        return False, None

    def _link_owner(self, scope) -> Optional[str]:
        """The owner a signed link stands for; None when the request is no link (not a GET of a linked path,
        or no link fields); LinkRefused (403) when it expired or its signature does not match."""
        match = LINKED_PATH.match(scope["path"])
        if scope["method"] not in ("GET", "HEAD") or match is None:
            return None
        fields = link_fields(scope.get("query_string", b""))
        if fields is None:
            return None
        expires = int(fields["exp"])
        if expires < time.time():
            raise LinkRefused("this signed link expired; get fresh links from the job view (GET /jobs/%s with "
                              "your API key)" % match.group(1))
        expected = _sig(self.load(), fields["owner"], match.group(1), expires)
        if not hmac.compare_digest(fields["sig"].encode(), expected.encode()):
            raise LinkRefused("this signed link does not match (altered, or made for another job); get fresh "
                              "links from the job view (GET /jobs/%s with your API key)" % match.group(1))
        return fields["owner"]

    def owner(self, scope) -> str:
        """The requester's tenant (call load() first). Raises what to answer when it may not have what it asks
        for: Unauthorized or KeyNotAccepted (401), MalformedLink (400) or LinkRefused (403)."""
        if not self._api_keys:
            return NO_OWNER
        self.load()
        sent, owner = self._bearer_owner(scope)
        if owner is not None:
            return owner
        if scope["path"] in self.open_paths or scope["path"].startswith(OPEN_PREFIXES):
            return NO_OWNER
        owner = self._link_owner(scope)
        if owner is not None:
            return owner
        if sent:  # told apart from a missing key: a typo or a revoked key is fixed differently
            raise KeyNotAccepted("this key is not accepted by this server (mistyped, or no longer in "
                                 "TOONIFY_API_KEYS): check the key you send in 'Authorization: Bearer <key>'")
        raise Unauthorized("this server needs an API key: send 'Authorization: Bearer <key>' (no key was sent)")

    def sign(self, owner: str, job_id: str, url: str) -> str:
        """``url`` (a path of job ``job_id``) with a short-lived signature for its owner appended."""
        if not self._api_keys:
            return url
        expires = int(time.time()) + self.link_ttl_s
        return "%s%sowner=%s&exp=%d&sig=%s" % (url, "&" if "?" in url else "?", owner, expires,
                                                _sig(self.load(), owner, job_id, expires))


class RedactSecrets(logging.Filter):
    """Access-log filter: query parameters that look like credentials (token, key, sig, …) become '…'."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(SECRET_PARAM.sub(r"\1…", arg) if isinstance(arg, str) else arg
                                for arg in record.args)
        return True
