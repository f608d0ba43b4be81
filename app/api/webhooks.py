"""Webhooks, the HTTP side: a create's ``webhook`` URL checked before the job is made, and the body each call
carries (the job's view, as ``GET /jobs/ID`` answers it). Subscriptions are kept with the job and deliveries
in the store's outbox (app.jobs.webhook_outbox); app.webhooks.sender sends them.

Only http(s) URLs are taken, and, unless ``TOONIFY_WEBHOOK_ALLOW_PRIVATE``, none whose host resolves to a
private, loopback, link-local or reserved address, also when it is written in an IPv6 form that carries an
IPv4 address (app.addresses; checked here and again before each attempt)."""
from __future__ import annotations

import json
from typing import Optional

from ..addresses import AddressRefused, checked_addresses
from ..config import Settings
from ..errors import InvalidOption
from ..jobs.store import JobStore
from ..webhooks.sender import FIELD, Render
from .views import job_view


def refuse_bad_url(url: str, settings: Settings) -> None:
    """InvalidOption unless ``url`` is http(s) to a host that resolves to public addresses (or to any address
    when TOONIFY_WEBHOOK_ALLOW_PRIVATE). Blocks on DNS: call it off the event loop."""
    try:
        checked_addresses(url, settings.webhook_allow_private, FIELD)
    except AddressRefused as exc:
        raise InvalidOption(str(exc)) from None


def body_renderer(store: JobStore) -> Render:
    """The sender's body of an event: ``{"event": ..., "job": <the job's view now>}``, None when the job is
    gone (deleted or expired)."""
    def render(job_id: str, event: str) -> Optional[bytes]:
        job = store.get(job_id)
        return None if job is None else json.dumps({"event": event, "job": job_view(job, store).as_json()}).encode()
    return render
