"""What a start checks before it touches a job or loads a model: the engine's framework is installed, Redis
answers, the port is free. A mistake costs a second and one line naming the setting to change, never a model
load followed by a traceback."""
from __future__ import annotations

import errno
import socket
from typing import List
from urllib.parse import urlsplit, urlunsplit

from stylegan2.engines import require_engine
from stylegan2.errors import EngineUnavailable

REDIS_CHECK_TIMEOUT_S = 3


class StartupError(Exception):
    """This process cannot start as configured; the message names the setting and what to do."""


def check_engine(engine: str, chosen_by: str = "TOONIFY_ENGINE=%s") -> None:
    """The engine's framework is importable by this Python (found, not imported). ``chosen_by``: the
    setting that chose it, for the message."""
    try:
        require_engine(engine)
    except EngineUnavailable as exc:
        raise StartupError("%s: %s" % (chosen_by % engine, exc)) from None


def shown_url(url: str) -> str:
    """A Redis URL without its password, fit for a message."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc="%s:***@%s" % (parts.username or "", host)))


def check_redis(url: str) -> None:
    """Redis answers a PING at ``url`` within a few seconds (no retries: this is a start, not a hiccup)."""
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        Redis.from_url(url, socket_connect_timeout=REDIS_CHECK_TIMEOUT_S, socket_timeout=REDIS_CHECK_TIMEOUT_S).ping()
    except (RedisError, ValueError, OSError) as exc:
        raise StartupError("TOONIFY_REDIS_URL=%s: Redis does not answer there (%s): start Redis, or point "
                           "TOONIFY_REDIS_URL at a running one (TOONIFY_QUEUE=redis needs it)"
                           % (shown_url(url), str(exc).strip().splitlines()[0] if str(exc).strip() else
                              type(exc).__name__)) from None


def reserve_port(host: str, port: int) -> List[socket.socket]:
    """Sockets bound to every address of ``host`` at ``port``, for the server to listen on: taken now, before
    any job is recovered or any model loads, so a port in use is one line instead of a failure after both."""
    try:
        addresses = {info[4][:2]: info[0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                          flags=socket.AI_PASSIVE)}
    except socket.gaierror as exc:
        raise StartupError("TOONIFY_HOST=%s (or --host): not an address of this machine (%s)" % (host, exc)) from None
    sockets = []
    try:
        for address, family in addresses.items():
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is no conflict
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError("TOONIFY_PORT=%d (or --port): port %d on %s is already in use (another Toonify?): "
                               "stop what listens there, or choose another TOONIFY_PORT" % (port, port, host)) from None
        raise StartupError("TOONIFY_PORT=%d (or --port) on TOONIFY_HOST=%s: cannot listen there (%s): choose "
                           "another TOONIFY_PORT or TOONIFY_HOST" % (port, host, exc.strerror or exc)) from None
    return sockets
