"""The server's signing secret: the HMAC key of signed links and of owner ids, so that neither tells anything
about an API key to whoever lacks it (an unsalted hash of a weak key can be reversed by dictionary).

``TOONIFY_SECRET_KEY`` when set. Otherwise it is made once with ``secrets.token_bytes`` and kept where every API
process of the deployment finds the same one, across restarts: ``secret.key`` (mode 0600) in the data folder
with the local queue; the key ``toonify:secret`` (written with SET NX: the first process's wins) in Redis with
the Redis queue, so the API processes behind a balancer accept each other's links."""
from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import Callable

from redis import Redis

from ..config import ConfigError, Settings
from ..errors import QueueUnavailable
from ..jobs.redis_store import PREFIX, REDIS_DOWN, RedisJobStore
from ..jobs.store import JobStore

SECRET_BYTES = 32
FILE_NAME = "secret.key"
REDIS_KEY = PREFIX + "secret"


def file_secret(folder: Path) -> bytes:
    """The secret in ``folder``, made first if there is none. It is written whole to a private temporary file
    and then hard-linked into place, which never replaces a file: of processes racing to make it, every one
    reads the one that got there first."""
    path = folder / FILE_NAME
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, draft = tempfile.mkstemp(dir=str(folder), prefix=".secret-")  # mode 0600
        try:
            with os.fdopen(descriptor, "wb") as out:
                out.write(secrets.token_bytes(SECRET_BYTES))
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(draft, str(path))
            except FileExistsError:
                pass
        finally:
            os.unlink(draft)
    secret = path.read_bytes()
    if len(secret) != SECRET_BYTES:
        raise ConfigError("%s holds %d bytes, not %d: restore it, or delete it to make a new one (links handed out "
                          "so far stop working, and jobs made with API keys no longer show to their key)"
                          % (path, len(secret), SECRET_BYTES))
    return secret


def redis_secret(redis: Redis) -> bytes:
    """The secret kept in Redis, made first if there is none (atomically: SET NX)."""
    try:
        redis.set(REDIS_KEY, secrets.token_bytes(SECRET_BYTES), nx=True)
        secret = redis.get(REDIS_KEY)
    except REDIS_DOWN:
        secret = None
    if not secret:
        raise QueueUnavailable("the job queue, which keeps this server's signing secret, cannot be reached right "
                               "now; try again shortly", retry_after_s=5)
    return secret


def secret_loader(settings: Settings, store: JobStore) -> Callable[[], bytes]:
    """How this process gets the secret (a blocking call: a file or a Redis round trip)."""
    if settings.secret_key:
        configured = settings.secret_key.encode("utf-8")
        return lambda: configured
    if isinstance(store, RedisJobStore):
        return lambda: redis_secret(store.redis)
    return lambda: file_secret(settings.data_dir)
