"""Jobs in Redis, delivered to GPU workers through RQ (``TOONIFY_QUEUE=redis``).

Every job is a hash (state, progress, options, faces) plus a hash of its files (the upload until the job ends,
then the results), so any API process on any machine can answer for any job. Finished jobs and their files
expire after the result TTL (Redis does the purging). State changes that race with a cancel are Lua scripts,
so they are atomic. Creating a job and enqueueing its RQ job happen in one transaction: a job is never
recorded without being delivered, or delivered without being recorded. That transaction WATCHes what names a
job already answering the request (the cache pointer, the Idempotency-Key), so concurrent identical creates
make one job.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Callable, Dict, List, Optional

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as RedisRetry
from rq import Queue, Retry
from rq.job import Callback
from rq.job import Job as RQJob

from ..config import Settings
from ..errors import IdempotencyConflict
from .feed import RedisChangeFeed
from .job import LATENTS, PHOTO, PREVIEW_PREFIX, RESERVATION_TTL_S, UPLOAD, IdempotencyKey, Job, JobCounts, NewJob
from .redis_outbox import OUTBOX, QUEUE_WEBHOOKS, SUBSCRIBE, RedisOutbox, webhooks_key
from .webhook_outbox import Webhook, events_text

PREFIX = "toonify:"
JOBS_QUEUE = "toonify"
RENDER_QUEUE = "toonify-render"  # re-renders: short, interactive; workers take them first
ACTIVE = PREFIX + "active"  # sorted set: queued and running job ids by creation time
RESERVED = PREFIX + "reserved"  # sorted set: places held for uploads being checked, by reservation time
DURATIONS = PREFIX + "durations"  # the last 20 successful run times, for ETAs and Retry-After
COUNTS = PREFIX + "job-counts"  # "worker\x1foutcome\x1freason" → finished jobs
WORKERS = PREFIX + "worker:"  # + name → the worker's presence (JSON), expires unless renewed
CHANGES = PREFIX + "changes"  # pub/sub: the key of each job whose state changed (app.jobs.feed)
JOB_PREFIX = PREFIX + "job:"
TASKS = "app.jobs.rq_tasks."
SEPARATOR = "\x1f"
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)  # the API answers these with queue_unavailable
RETRIES = 4  # of a call that failed to connect: a restarting Redis answers again within about 1.5 s

# the last line of every script that changed the job in KEYS[1]
_ANNOUNCE = "redis.call('PUBLISH', '%s', KEYS[1])\n" % CHANGES
_CLAIM = QUEUE_WEBHOOKS + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'stage', 'starting', 'step', 0, 'total', 0,
           'worker', ARGV[1], 'started_at', ARGV[2], 'updated_at', ARGV[2])
if redis.call('HINCRBY', KEYS[1], 'attempts', 1) == 1 then
  queue_webhooks(KEYS[2], KEYS[3], ARGV[3], 'start', ARGV[2])
end
redis.call('HDEL', KEYS[1], 'timings', 'preview')
""" + _ANNOUNCE + """return 1
"""
_RESERVE = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return 1
"""
_PROGRESS = QUEUE_WEBHOOKS + """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'stage', ARGV[1], 'updated_at', ARGV[4])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'step', ARGV[2]) end
if ARGV[2] ~= '' and tonumber(ARGV[2]) > 0 and redis.call('EXISTS', KEYS[2]) == 1
   and tonumber(ARGV[4]) - tonumber(redis.call('HGET', KEYS[2], '') or '0') >= tonumber(ARGV[7]) then
  redis.call('HSET', KEYS[2], '', ARGV[4])
  queue_webhooks(KEYS[2], KEYS[3], ARGV[6], 'progress', ARGV[4])
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'total', ARGV[3]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'timings', ARGV[5]) end
""" + _ANNOUNCE + """return 1
"""
_PREVIEW = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'preview', ARGV[1], 'updated_at', ARGV[2])
""" + _ANNOUNCE + """return 1
"""
_FINISH = QUEUE_WEBHOOKS + """
redis.call('HDEL', KEYS[2], ARGV[7])
if ARGV[2] ~= 'succeeded' then
  redis.call('HDEL', KEYS[2], ARGV[9])
  for _, name in ipairs(redis.call('HKEYS', KEYS[2])) do
    if string.sub(name, 1, #ARGV[8]) == ARGV[8] then redis.call('HDEL', KEYS[2], name) end
  end
end
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'stage', ARGV[2], 'updated_at', ARGV[5], 'finished_at', ARGV[5])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'error_code', ARGV[3], 'error_message', ARGV[4]) end
local started = redis.call('HGET', KEYS[1], 'started_at')
if ARGV[2] == 'succeeded' and started then
  redis.call('LPUSH', KEYS[4], tostring(tonumber(ARGV[5]) - tonumber(started)))
  redis.call('LTRIM', KEYS[4], 0, 19)
end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
queue_webhooks(KEYS[5], KEYS[6], ARGV[1], 'completed', ARGV[5])
redis.call('EXPIRE', KEYS[5], ARGV[6])
""" + _ANNOUNCE + """return 1
"""
# a file lives as long as its job: a write after the files expired (a race with the job's expiry) or after the
# job went takes the job's time to live, or is taken back, instead of leaving a hash that never expires
_WRITE_FILE = """
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 then redis.call('DEL', KEYS[2]) elseif ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
"""
_KEEP_UPLOAD = """
local photo = redis.call('HGET', KEYS[1], ARGV[1])
if not photo then return redis.call('HEXISTS', KEYS[1], ARGV[2]) end
redis.call('HSET', KEYS[1], ARGV[2], photo)
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""
_CANCEL = QUEUE_WEBHOOKS + """
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'stage', 'cancelled', 'updated_at', ARGV[2],
           'finished_at', ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[2])
queue_webhooks(KEYS[4], KEYS[5], ARGV[1], 'completed', ARGV[2])
redis.call('EXPIRE', KEYS[4], ARGV[3])
""" + _ANNOUNCE + """return 1
"""
_REQUEUE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued', 'stage', 'queued', 'step', 0, 'updated_at', ARGV[1])
redis.call('HDEL', KEYS[1], 'timings', 'preview')
""" + _ANNOUNCE + """return 1
"""


class DeadlineRetry(RedisRetry):
    """redis-py's retry with back-off, that starts no new attempt ``deadline_s`` after the first one."""

    def __init__(self, deadline_s: float, retries: int = RETRIES) -> None:
        super().__init__(ExponentialBackoff(cap=1.0, base=0.05), retries)
        self.deadline_s = deadline_s

    def call_with_retry(self, do: Callable[[], Any], fail: Callable[[Exception], Any]) -> Any:
        deadline = time.monotonic() + self.deadline_s
        self._backoff.reset()
        failures = 0
        while True:
            try:
                return do()
            except self._supported_errors as error:
                failures += 1
                fail(error)  # redis-py's handler: drops the connection, and raises what it does not retry
                backoff = self._backoff.compute(failures)
                if failures > self._retries or time.monotonic() + backoff >= deadline:
                    raise error
                time.sleep(backoff)


def connect(url: str, timeout_s: Optional[float] = None, **options: Any) -> Redis:
    """A client that rides out a short Redis restart (a few retries with back-off) instead of failing at once.

    With ``timeout_s`` (the API's, TOONIFY_REDIS_TIMEOUT_S), connecting and each read give up after it, a
    timed-out call is not tried again, and no retry starts past twice that: a frozen or unreachable Redis is
    a prompt error (the API answers 503), not a request that hangs. Without it (workers, whose RQ loop blocks
    on the queue and sets its own read timeout) timeouts are retried too."""
    if timeout_s is None:
        return Redis.from_url(url, retry=RedisRetry(ExponentialBackoff(cap=1.0, base=0.05), RETRIES),
                              retry_on_error=[RedisConnectionError, RedisTimeoutError], **options)
    return Redis.from_url(url, retry=DeadlineRetry(2 * timeout_s), retry_on_error=[RedisConnectionError],
                          socket_connect_timeout=timeout_s, socket_timeout=timeout_s, **options)


def job_key(job_id: str) -> str:
    return JOB_PREFIX + job_id


def files_key(job_id: str) -> str:
    return job_key(job_id) + ":files"


def cache_pointer(cache_key: str) -> str:
    return PREFIX + "cache:" + cache_key


def idempotency_pointer(idempotency: IdempotencyKey) -> str:
    """→ "job-id fingerprint"; the client's key is hashed (any length, any bytes)."""
    return PREFIX + "idem:" + idempotency.owner + ":" + hashlib.sha256(idempotency.key.encode()).hexdigest()


def _text(value: Optional[bytes]) -> Optional[str]:
    return None if value is None else value.decode()


def _number(value: Optional[bytes]) -> Optional[float]:
    return None if value is None else float(value)


def job_from_hash(job_id: str, fields: Dict[bytes, bytes]) -> Job:
    get = fields.get
    return Job.stored(job_id, dict(
        owner=_text(get(b"owner")), status=_text(get(b"status")) or "queued", options=_text(get(b"options")) or "{}",
        cache_key=_text(get(b"cache_key")) or "", faces=_text(get(b"faces")) or "[]",
        timings=_text(get(b"timings")) or "{}", preview=_text(get(b"preview")), stage=_text(get(b"stage")) or "queued",
        step=int(get(b"step", 0)), total=int(get(b"total", 0)), attempts=int(get(b"attempts", 0)),
        error_code=_text(get(b"error_code")), error_message=_text(get(b"error_message")), worker=_text(get(b"worker")),
        created_at=float(get(b"created_at", 0)), started_at=_number(get(b"started_at")),
        updated_at=float(get(b"updated_at", 0)), finished_at=_number(get(b"finished_at"))))


class RedisJobStore:
    """The job store of the scaled-out service: the JobStore contract (app.jobs.store), plus delivery and the
    webhook ``outbox`` (app.jobs.redis_outbox). ``webhook_progress_interval_s``: at most one ``progress``
    webhook per job this often."""

    def __init__(self, redis: Redis, result_ttl_s: int, job_timeout_s: int, job_attempts: int,
                 webhook_progress_interval_s: float = 5.0) -> None:
        self.redis = redis
        self.result_ttl_s, self.job_timeout_s, self.job_attempts = result_ttl_s, job_timeout_s, job_attempts
        self.webhook_progress_interval_s = webhook_progress_interval_s
        self.outbox = RedisOutbox(redis)
        self._subscribe = redis.register_script(SUBSCRIBE)
        self.jobs_queue = Queue(JOBS_QUEUE, connection=redis)
        self.render_queue = Queue(RENDER_QUEUE, connection=redis)
        self._reserve = redis.register_script(_RESERVE)
        self._write_file = redis.register_script(_WRITE_FILE)
        self._claim = redis.register_script(_CLAIM)
        self._progress = redis.register_script(_PROGRESS)
        self._preview = redis.register_script(_PREVIEW)
        self._finish = redis.register_script(_FINISH)
        self._cancel = redis.register_script(_CANCEL)
        self._keep_upload = redis.register_script(_KEEP_UPLOAD)
        self._requeue = redis.register_script(_REQUEUE)
        self.changes = RedisChangeFeed(redis, CHANGES, JOB_PREFIX)

    @classmethod
    def from_settings(cls, settings: Settings, **connection: Any) -> "RedisJobStore":
        """The store at TOONIFY_REDIS_URL, with the TTL, timeout and attempts of the settings."""
        return cls(connect(settings.redis_url, **connection), settings.result_ttl_s, settings.job_timeout_s,
                   settings.job_attempts, settings.webhook_progress_interval_s)

    # -- the job's life -------------------------------------------------------------------------------
    def create(self, job_id: str, new: NewJob, upload: bytes, idempotency: Optional[IdempotencyKey] = None) -> Job:
        """Record the job and enqueue its delivery, atomically, unless a job already answers the request (the
        transaction starts again when what it watched changed). A worker that dies holding it loses its
        lease; RQ then delivers it again, up to ``job_attempts`` runs in all."""
        now = time.time()
        fields = {"status": "queued", "stage": "queued", "step": 0, "total": 0, "attempts": 0, "owner": new.owner,
                  "options": new.options.model_dump_json(), "cache_key": new.cache_key,
                  "faces": new.faces_json(),
                  "created_at": repr(now), "updated_at": repr(now)}
        retry = Retry(max=self.job_attempts - 1) if self.job_attempts > 1 else None

        def create_unless_answered(pipe: Pipeline) -> Optional[str]:
            found = self._answering(pipe, new.cache_key, idempotency)
            if found is not None:
                pipe.multi()
            else:  # RQ starts the MULTI itself; everything below joins the same transaction
                self.jobs_queue.enqueue_call(TASKS + "process_job", args=(job_id,), job_id=job_id,
                                             timeout=self.job_timeout_s, result_ttl=0,
                                             failure_ttl=self.result_ttl_s, retry=retry,
                                             on_failure=Callback(TASKS + "job_failed"), pipeline=pipe)
                pipe.hset(job_key(job_id), mapping=fields)
                pipe.hset(files_key(job_id), UPLOAD, upload)
                pipe.zadd(ACTIVE, {job_id: now})
                pipe.zrem(RESERVED, job_id)
                pipe.set(cache_pointer(new.cache_key), job_id, ex=self._pointer_ttl_s)
                if new.webhook is not None:  # a queued job: no event yet
                    pipe.hset(webhooks_key(job_key(job_id)), new.webhook.url, events_text(new.webhook.events))
                pipe.publish(CHANGES, job_key(job_id))
            self._name(pipe, idempotency, found or job_id)
            return found

        found = self.redis.transaction(create_unless_answered, value_from_callable=True)
        if found is not None and new.webhook is not None:  # the job that answers it exists without this create
            self.subscribe(found, new.webhook)
        return self.get(found or job_id)  # type: ignore[return-value]

    @property
    def _pointer_ttl_s(self) -> int:
        """How long a cache pointer or an Idempotency-Key may name a job: as long as the job may live."""
        return self.result_ttl_s + self.job_timeout_s

    def _answering(self, pipe: Pipeline, cache_key: str, idempotency: Optional[IdempotencyKey]) -> Optional[str]:
        """Before the MULTI: the id of the job that already answers a create (see find_reusable), every key
        read WATCHed."""
        if idempotency is not None:
            pipe.watch(idempotency_pointer(idempotency))
            named = pipe.get(idempotency_pointer(idempotency))
            if named is not None:
                job_id, fingerprint = named.decode().split(" ", 1)
                pipe.watch(job_key(job_id))
                if pipe.exists(job_key(job_id)):
                    if fingerprint != idempotency.fingerprint:
                        raise IdempotencyConflict(idempotency.key)
                    return job_id
        pipe.watch(cache_pointer(cache_key))
        pointed = pipe.get(cache_pointer(cache_key))
        if pointed is None:
            return None
        job_id = pointed.decode()
        pipe.watch(job_key(job_id), files_key(job_id))
        status = pipe.hget(job_key(job_id), "status")
        if status in (b"queued", b"running") or (status == b"succeeded" and pipe.hexists(files_key(job_id), LATENTS)):
            return job_id
        return None

    def _name(self, pipe: Pipeline, idempotency: Optional[IdempotencyKey], job_id: str) -> None:
        """In the MULTI: the Idempotency-Key, if any, names the job from now on."""
        if idempotency is not None:
            pipe.set(idempotency_pointer(idempotency), job_id + " " + idempotency.fingerprint,
                     ex=self._pointer_ttl_s)

    def reserve(self, job_id: str, limit: int) -> bool:
        """Hold one of ``limit`` places (active + reserved) for a job about to be created, atomically (one Lua
        script); create() turns it into the job in its transaction. Unused reservations lapse."""
        now = time.time()
        return bool(self._reserve(keys=[ACTIVE, RESERVED],
                                  args=[job_id, limit, repr(now - RESERVATION_TTL_S), repr(now)]))

    def release(self, job_id: str) -> None:
        self.redis.zrem(RESERVED, job_id)

    def get(self, job_id: str) -> Optional[Job]:
        fields = self.redis.hgetall(job_key(job_id))
        return job_from_hash(job_id, fields) if fields else None

    def find_reusable(self, cache_key: str, idempotency: Optional[IdempotencyKey] = None) -> Optional[Job]:
        """The job the Idempotency-Key names, or the latest job with the same input and options if it is live
        or succeeded with its files there, which the key then names: one transaction."""

        def find(pipe: Pipeline) -> Optional[str]:
            found = self._answering(pipe, cache_key, idempotency)
            pipe.multi()
            if found is not None:
                self._name(pipe, idempotency, found)
            return found

        found = self.redis.transaction(find, value_from_callable=True)
        return self.get(found) if found is not None else None

    def subscribe(self, job_id: str, webhook: Webhook) -> None:
        """One script (app.jobs.redis_outbox.SUBSCRIBE)."""
        if self._subscribe(keys=[job_key(job_id), webhooks_key(job_key(job_id)), OUTBOX],
                           args=[job_id, webhook.url, events_text(webhook.events), repr(time.time())]):
            self.outbox.on_queued()

    def claim(self, job_id: str, worker: str) -> Optional[Job]:
        """Start a run of a queued job, or a new run of one whose last worker died; None if it is over."""
        if not self._claim(keys=[job_key(job_id), webhooks_key(job_key(job_id)), OUTBOX],
                           args=[worker, repr(time.time()), job_id]):
            return None
        return self.get(job_id)

    def progress(self, job_id: str, stage: str, step: Optional[int] = None, total: Optional[int] = None,
                 timings: Optional[Dict[str, float]] = None) -> None:
        self._progress(keys=[job_key(job_id), webhooks_key(job_key(job_id)), OUTBOX],
                       args=[stage, "" if step is None else step, "" if total is None else total, repr(time.time()),
                             "" if timings is None else json.dumps(timings), job_id,
                             self.webhook_progress_interval_s])

    def publish_preview(self, job_id: str, preview: Dict[str, Any], files: Dict[str, bytes]) -> None:
        """Files and record in one script: no preview lands on a job that is no longer running (a cancelled
        job's files are gone, and stay gone)."""
        pairs: List[Any] = [part for name, data in files.items() for part in (name, data)]
        self._preview(keys=[job_key(job_id), files_key(job_id)],
                      args=[json.dumps(preview), repr(time.time())] + pairs)

    def finish(self, job_id: str, status: str, error_code: Optional[str] = None,
               error_message: Optional[str] = None) -> None:
        """Only a running job finishes (not a cancelled one, nor one finished already). The upload goes
        either way, the kept photo and the live previews unless it succeeded, and the results expire after the
        TTL."""
        self._finish(keys=[job_key(job_id), files_key(job_id), ACTIVE, DURATIONS, webhooks_key(job_key(job_id)),
                           OUTBOX],
                     args=[job_id, status, error_code or "", error_message or "", repr(time.time()),
                           self.result_ttl_s, UPLOAD, PREVIEW_PREFIX, PHOTO])

    def requeue(self, job_id: str) -> None:
        """Its worker died and RQ delivers it again: show it as queued meanwhile."""
        self._requeue(keys=[job_key(job_id)], args=[repr(time.time())])

    def cancel(self, job_id: str) -> Optional[Job]:
        self._cancel(keys=[job_key(job_id), files_key(job_id), ACTIVE, webhooks_key(job_key(job_id)), OUTBOX],
                     args=[job_id, repr(time.time()), self.result_ttl_s])
        return self.get(job_id)

    def is_cancelled(self, job_id: str) -> bool:
        status = self.redis.hget(job_key(job_id), "status")
        return status is None or status == b"cancelled"

    def delete_files(self, job_id: str) -> None:
        self.redis.delete(files_key(job_id))

    def delete(self, job_id: str) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(job_key(job_id), files_key(job_id), webhooks_key(job_key(job_id)))
            pipe.zrem(ACTIVE, job_id)
            pipe.publish(CHANGES, job_key(job_id))
            pipe.execute()

    def purge_expired(self, ttl_s: float, now: Optional[float] = None) -> List[str]:
        """Nothing to do: finished jobs carry a Redis expiry."""
        return []

    # -- files ----------------------------------------------------------------------------------------
    def write_file(self, job_id: str, name: str, data: bytes) -> None:
        self._write_file(keys=[job_key(job_id), files_key(job_id)], args=[name, data])

    def read_file(self, job_id: str, name: str) -> Optional[bytes]:
        return self.redis.hget(files_key(job_id), name)

    def has_file(self, job_id: str, name: str) -> bool:
        return bool(self.redis.hexists(files_key(job_id), name))

    def keep_upload(self, job_id: str) -> None:
        """Moved inside Redis: the photo's bytes do not travel to the worker and back."""
        if not self._keep_upload(keys=[files_key(job_id)], args=[UPLOAD, PHOTO]):
            raise FileNotFoundError(UPLOAD)

    # -- the queue as a whole -------------------------------------------------------------------------
    def queue_depth(self) -> int:
        return int(self.redis.zcard(ACTIVE))

    def position(self, job: Job) -> int:
        """0 = running or next; n = n jobs (queued or running) were created before it."""
        if job.status != "queued":
            return 0
        return int(self.redis.zcount(ACTIVE, "-inf", "(%r" % job.created_at))

    def recent_durations(self, limit: int = 20) -> List[float]:
        return [float(value) for value in self.redis.lrange(DURATIONS, 0, limit - 1)]

    def count_job(self, worker: str, outcome: str, reason: str) -> None:
        self.redis.hincrby(COUNTS, SEPARATOR.join((worker, outcome, reason)), 1)

    def job_counts(self) -> JobCounts:
        counts: JobCounts = {}
        for field, count in self.redis.hgetall(COUNTS).items():
            worker, outcome, reason = field.decode().split(SEPARATOR)
            counts[(worker, outcome, reason)] = int(count)
        return counts

    def live_workers(self) -> List[Dict[str, Any]]:
        """Workers whose presence was renewed within their TTL (see app.jobs.rq_worker)."""
        found = []
        for key in self.redis.scan_iter(match=WORKERS + "*", count=100):
            value = self.redis.get(key)
            if value is not None:
                found.append(json.loads(value))
        return sorted(found, key=lambda worker: worker["name"])

    # -- re-renders -----------------------------------------------------------------------------------
    def enqueue_render(self, job_id: str, faces: List[int], strength: float, style: str, timeout_s: int) -> RQJob:
        """A re-render of some faces of a job, one task for all of them, runs on a worker (the API holds no
        models); it is dropped if no worker starts it in time."""
        return self.render_queue.enqueue_call(TASKS + "render_faces", args=(job_id, faces, strength, style),
                                              timeout=timeout_s, ttl=timeout_s, result_ttl=timeout_s,
                                              failure_ttl=timeout_s)
