"""Who is asking: API keys (bearer header), short-lived signed links, and the tenant ("owner") a key stands for.

Keys never travel in URLs: the page's EventSource and <img> use the signed links the job view hands out
(``?exp=…&sig=…``, HMAC of the owner, the job id and the expiry), and the access log redacts any query
parameter that looks like a credential. Comparisons are constant-time over bytes, so no header value can
make them throw.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import time
from typing import FrozenSet, Optional
from urllib.parse import parse_qs

OPEN_PATHS = frozenset({"/", "/healthz", "/readyz", "/config", "/docs", "/redoc", "/openapi.json"})
OPEN_PREFIXES = ("/docs/assets/",)  # the vendored Swagger UI and ReDoc files
LINKED_PATH = re.compile(r"^/jobs/([A-Za-z0-9_-]{1,64})(/events|/result)?$")  # what a signed link may open
SECRET_PARAM = re.compile(r"(?i)([?&][^=&]*(?:token|key|sig|secret|passw|auth)[^=&]*=)[^&#]*")
NO_OWNER = ""  # without API keys every job is everyone's (and links are unsigned)


def owner_of(key: str) -> str:
    """The tenant of an API key: a stable id that does not reveal the key."""
    return "k" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _sig(secret: bytes, owner: str, job_id: str, expires: int) -> str:
    digest = hmac.new(secret, ("%s|%s|%d" % (owner, job_id, expires)).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


class Auth:
    def __init__(self, api_keys: FrozenSet[str], link_ttl_s: int = 900, open_metrics: bool = False) -> None:
        self._keys = {key.encode("utf-8"): owner_of(key) for key in api_keys}
        # every API process with the same keys derives the same secret, so links work behind a balancer
        self._secret = hashlib.sha256(b"toonify signed links\0" + b"\0".join(sorted(self._keys))).digest()
        self.link_ttl_s = link_ttl_s
        self.open_paths = OPEN_PATHS | ({"/metrics"} if open_metrics or not api_keys else set())

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def _bearer_owner(self, scope) -> Optional[str]:
        for name, value in scope.get("headers") or ():
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                token = value[7:].strip()
                found = None
                for key, owner in self._keys.items():  # no early exit: time does not depend on which key
                    if hmac.compare_digest(token, key):
                        found = owner
                return found
        return None

    def _link_owner(self, scope) -> Optional[str]:
        match = LINKED_PATH.match(scope["path"])
        if scope["method"] not in ("GET", "HEAD") or match is None:
            return None
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), max_num_fields=8)
        owner, expires, sig = (query.get(name, [""])[0] for name in ("owner", "exp", "sig"))
        if not expires.isdigit() or int(expires) < time.time() or not sig.isascii():
            return None
        expected = _sig(self._secret, owner, match.group(1), int(expires))
        return owner if hmac.compare_digest(sig.encode(), expected.encode()) else None

    def owner(self, scope) -> Optional[str]:
        """The requester's tenant; None when it may not have what it asks for (answer 401)."""
        if not self._keys:
            return NO_OWNER
        owner = self._bearer_owner(scope) or self._link_owner(scope)
        if owner is None and (scope["path"] in self.open_paths or scope["path"].startswith(OPEN_PREFIXES)):
            return NO_OWNER
        return owner

    def sign(self, owner: str, job_id: str, url: str) -> str:
        """``url`` (a path of job ``job_id``) with a short-lived signature for its owner appended."""
        if not self._keys:
            return url
        expires = int(time.time()) + self.link_ttl_s
        return "%s%sowner=%s&exp=%d&sig=%s" % (url, "&" if "?" in url else "?", owner, expires,
                                                _sig(self._secret, owner, job_id, expires))


class RedactSecrets(logging.Filter):
    """Access-log filter: query parameters that look like credentials (token, key, sig, …) become '…'."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(SECRET_PARAM.sub(r"\1…", arg) if isinstance(arg, str) else arg
                                for arg in record.args)
        return True
