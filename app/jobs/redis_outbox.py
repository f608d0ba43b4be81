"""The Redis store's webhook subscriptions and outbox (see app.jobs.webhook_outbox).

Not RQ jobs, as the issue first suggested: an RQ worker runs one job at a time, so a receiver that never
answers would hold a worker for the 10 s of each attempt and delay every other job's webhooks behind it (the
guarantee of app.webhooks.sender is that it cannot). Instead the outbox is a sorted set (delivery id → due
time, which is also its lease) that the Lua scripts changing a job add to, atomically with the change, and
that the one async sender of every API process drains: whichever process is alive sends, and a delivery whose
sender died is due again when its lease runs out.

Keys: a job's subscriptions are a hash (URL → its events; the field "" holds when the last ``progress`` was
queued) that expires with the job; the attempts made of a delivery that failed are a field of one hash."""
from __future__ import annotations

from typing import Callable, List

from redis import Redis

from .webhook_outbox import LEASE_S, Delivery, delivery_from_id

OUTBOX = "toonify:webhook-outbox"  # sorted set: delivery id → due time (or lease deadline)
ATTEMPTS = "toonify:webhook-attempts"  # delivery id → attempts made (only of one that failed)

# Lua: queue `event` of job `job` to each subscribed URL (or `only` that one); how many were queued.
QUEUE_WEBHOOKS = """
local function queue_webhooks(hooks, outbox, job, event, now, only)
  local subs = redis.call('HGETALL', hooks)
  local queued = 0
  for i = 1, #subs, 2 do
    local url = subs[i]
    if url ~= '' and (only == nil or url == only) and string.find(subs[i + 1], ',' .. event .. ',', 1, true) then
      queued = queued + redis.call('ZADD', outbox, 'NX', now, job .. '\\31' .. url .. '\\31' .. event)
    end
  end
  return queued
end
"""
# KEYS: job, its webhooks, the outbox. ARGV: job id, URL, its events (",a,b,"), now. Nothing for a job that is gone.
SUBSCRIBE = QUEUE_WEBHOOKS + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local events, names = {}, {}
for name in string.gmatch((redis.call('HGET', KEYS[2], ARGV[2]) or '') .. ARGV[3], '[^,]+') do
  if not events[name] then events[name] = true; names[#names + 1] = name end
end
table.sort(names)
redis.call('HSET', KEYS[2], ARGV[2], ',' .. table.concat(names, ',') .. ',')
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'running' then return queue_webhooks(KEYS[2], KEYS[3], ARGV[1], 'start', ARGV[4], ARGV[2]) end
if status == 'succeeded' or status == 'failed' or status == 'cancelled' then
  return queue_webhooks(KEYS[2], KEYS[3], ARGV[1], 'completed', ARGV[4], ARGV[2])
end
return 0
"""
# KEYS: the outbox, the attempts. ARGV: now, lease deadline, limit. → id, attempts, id, attempts...
_TAKE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local taken = {}
for _, id in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id)
  taken[#taken + 1] = id
  taken[#taken + 1] = redis.call('HGET', KEYS[2], id) or '0'
end
return taken
"""


def webhooks_key(job_key: str) -> str:
    return job_key + ":webhooks"


class RedisOutbox:
    """The Outbox (app.jobs.webhook_outbox) in Redis. ``on_queued``: called after a call of this process queued
    a delivery (the sender sets it to wake itself); other processes' deliveries are found by polling."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._take = redis.register_script(_TAKE)
        self.on_queued: Callable[[], None] = lambda: None

    def take_due(self, limit: int, now: float) -> List[Delivery]:
        """One script: the due deliveries, leased."""
        taken = self._take(keys=[OUTBOX, ATTEMPTS], args=[repr(now), repr(now + LEASE_S), limit])
        return [delivery_from_id(taken[i].decode(), int(taken[i + 1])) for i in range(0, len(taken), 2)]

    def renew(self, delivery_ids: List[str], now: float) -> None:
        if delivery_ids:
            self.redis.zadd(OUTBOX, {delivery_id: now + LEASE_S for delivery_id in delivery_ids}, xx=True)

    def retry_at(self, delivery: Delivery, due_at: float) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(ATTEMPTS, delivery.id, delivery.attempts + 1)
            pipe.zadd(OUTBOX, {delivery.id: due_at}, xx=True)
            pipe.execute()

    def remove(self, delivery: Delivery) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(OUTBOX, delivery.id)
            pipe.hdel(ATTEMPTS, delivery.id)
            pipe.execute()
