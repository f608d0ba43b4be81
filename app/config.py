"""Settings from TOONIFY_* environment variables, read once into one object (documented in the README)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, FrozenSet, List, Mapping, Optional, Tuple

from stylegan2.precision import AUTO, FP32
from stylegan2.precision import CHOICES as PRECISIONS
from stylegan2.projection import DEFAULT_STEPS

from .options import STEPS_CEILING

STYLES_ON_DEVICE = 4  # ≈ 0.9 GB of config-f generators at most (with in-between mixes) beside a batch-1
# projection on an 8 GB card: bench/RESULTS.md, "Styles"
MIN_SECRET_CHARS = 32  # of TOONIFY_SECRET_KEY: an HMAC key no one can guess
FORM_OVERHEAD_BYTES = 1_000_000  # a request body may exceed TOONIFY_MAX_UPLOAD_BYTES by this much (form fields)


class ConfigError(ValueError):
    """A TOONIFY_* variable holds a value the service cannot use; the message names the variable."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError("%s must be a whole number; got %r" % (name, value)) from None


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _variable(name: str) -> str:
    return "TOONIFY_" + name.upper()


# Settings that only make sense above zero, and those that may be zero (0 = automatic, or off).
POSITIVE = ("max_queue", "default_steps", "max_steps", "max_upload_bytes", "max_pixels", "result_ttl_s",
            "job_attempts", "job_timeout_s", "worker_ttl_s", "sync_timeout_s", "max_faces", "decode_memory_mb",
            "max_streams", "header_timeout_s", "body_timeout_s", "link_ttl_s", "shutdown_timeout_s",
            "redis_timeout_s", "webhook_attempts", "max_body_bytes_in_flight", "fetch_timeout_s")
NOT_NEGATIVE = ("batch_size", "device_memory_bytes", "min_free_bytes", "webhook_progress_interval_s",
                "styles_on_device")


def problems_of(settings: "Settings") -> List[str]:
    """What is wrong with these settings, alone or against each other, each naming its variables: a start
    with a default the server then refuses (TOONIFY_DEFAULT_STEPS over TOONIFY_MAX_STEPS) must not happen."""
    problems = []
    if settings.engine not in ("tf1", "torch"):
        problems.append("TOONIFY_ENGINE must be tf1 or torch; got %r" % settings.engine)
    if settings.queue not in ("local", "redis"):
        problems.append("TOONIFY_QUEUE must be local or redis; got %r" % settings.queue)
    if settings.precision not in PRECISIONS:
        problems.append("TOONIFY_PRECISION must be one of %s; got %r" % (", ".join(PRECISIONS), settings.precision))
    elif settings.engine == "tf1" and settings.precision not in (FP32, AUTO):
        problems.append("TOONIFY_PRECISION=%s needs TOONIFY_ENGINE=torch: the tf1 engine projects in fp32 only"
                        % settings.precision)
    problems += ["%s must be at least 1; got %d" % (_variable(name), getattr(settings, name))
                 for name in POSITIVE if getattr(settings, name) < 1]
    problems += ["%s must not be negative; got %d" % (_variable(name), getattr(settings, name))
                 for name in NOT_NEGATIVE if getattr(settings, name) < 0]
    if 0 < len(settings.secret_key) < MIN_SECRET_CHARS:
        problems.append("TOONIFY_SECRET_KEY must be at least %d characters; make one with: python -c "
                        "'import secrets; print(secrets.token_urlsafe(32))'" % MIN_SECRET_CHARS)
    if not 1 <= settings.port <= 65535:
        problems.append("TOONIFY_PORT must be a port number from 1 to 65535; got %d" % settings.port)
    if settings.max_steps > STEPS_CEILING:
        problems.append("TOONIFY_MAX_STEPS must be at most %d; got %d" % (STEPS_CEILING, settings.max_steps))
    if settings.max_body_bytes_in_flight < settings.max_upload_bytes + FORM_OVERHEAD_BYTES:
        problems.append("TOONIFY_MAX_BODY_BYTES_IN_FLIGHT (%d) must be at least TOONIFY_MAX_UPLOAD_BYTES + %d (%d): "
                        "one largest upload must fit" % (settings.max_body_bytes_in_flight, FORM_OVERHEAD_BYTES,
                                                        settings.max_upload_bytes + FORM_OVERHEAD_BYTES))
    if settings.default_steps > settings.max_steps:
        problems.append("TOONIFY_DEFAULT_STEPS (%d) must not exceed TOONIFY_MAX_STEPS (%d)"
                        % (settings.default_steps, settings.max_steps))
    return problems


def _list(env: Mapping[str, str], name: str) -> Tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    engine: str = "tf1"
    models_dir: Path = Path("models")
    data_dir: Path = Path("data")
    queue: str = "local"
    redis_url: str = "redis://localhost:6379/0"
    redis_timeout_s: int = 1  # the API's connect and read timeout per Redis call: a frozen Redis is a prompt 503
    max_queue: int = 32
    batch_size: int = 0  # 0: as many faces as the device's memory holds (app.batches)
    device_memory_bytes: int = 0
    styles_on_device: int = STYLES_ON_DEVICE  # added styles' generators held at once, LRU; 0 = all (README)
    device: str = ""  # cpu, cuda, cuda:1 (torch engine); "" = CUDA when available
    precision: str = FP32  # of the projection steps: fp32, tf32, bf16, fp16 or auto (stylegan2.precision)
    cache_dir: Optional[Path] = None  # w statistics; None = <models>/.cache if writable
    default_steps: int = DEFAULT_STEPS
    max_steps: int = 2000
    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_body_bytes_in_flight: int = 200 * 1024 * 1024  # request bodies held at once; past it a 503 (app.api.inflight)
    result_ttl_s: int = 24 * 3600
    job_attempts: int = 3
    job_timeout_s: int = 3600
    worker_ttl_s: int = 60
    sync_timeout_s: int = 3600
    max_faces: int = 8  # faces one job may project (face=all); more is a 422
    decode_memory_mb: int = 1024  # memory the API may spend decoding uploads at once (bounds concurrent decodes)
    max_streams: int = 200  # concurrent event streams (SSE); more is a 503
    header_timeout_s: int = 10  # a client must send its request headers within this
    body_timeout_s: int = 120  # … and its whole body within this
    link_ttl_s: int = 900  # lifetime of the signed links the job view hands out (with API keys)
    open_metrics: bool = False  # with API keys, /metrics needs one too unless this is set
    cancel_abandoned: bool = False  # a sync request whose client left cancels its job
    min_free_bytes: int = 256 * 1024 * 1024  # below this free space on the data disk, new jobs get a 507
    shutdown_timeout_s: int = 20  # SIGTERM: requests and the running job get this long, then it is re-queued
    api_keys: FrozenSet[str] = field(default_factory=frozenset)
    secret_key: str = ""  # HMAC key of signed links and owner ids; "" = made once and kept (app.api.signing_secret)
    cors_origins: Tuple[str, ...] = ()
    host: str = "127.0.0.1"  # loopback unless asked: the container images set TOONIFY_HOST=0.0.0.0
    port: int = 8000
    webhook_secret: str = ""
    webhook_allow_private: bool = False
    webhook_progress_interval_s: int = 5
    webhook_attempts: int = 5
    # photos by URL (image_url, or a URL as the JSON body's image): app.api.remote_image
    fetch_allow_private: bool = False  # 1: the URL may name private and loopback hosts (a trusted network, tests)
    fetch_timeout_s: int = 15  # the whole fetch (DNS, connect, headers, body, redirects); then a 504

    def __post_init__(self) -> None:
        problems = problems_of(self)
        if problems:
            raise ConfigError("; ".join(problems))

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "Settings":
        env = os.environ if env is None else env
        values: Dict[str, object] = dict(
            engine=env.get("TOONIFY_ENGINE", cls.engine),
            models_dir=Path(env.get("TOONIFY_MODELS_DIR", str(cls.models_dir))),
            data_dir=Path(env.get("TOONIFY_DATA_DIR", str(cls.data_dir))),
            queue=env.get("TOONIFY_QUEUE", cls.queue),
            device=env.get("TOONIFY_DEVICE", cls.device),
            precision=env.get("TOONIFY_PRECISION", cls.precision),
            cache_dir=Path(env["TOONIFY_CACHE_DIR"]) if env.get("TOONIFY_CACHE_DIR") else None,
            redis_url=env.get("TOONIFY_REDIS_URL", cls.redis_url),
            api_keys=frozenset(_list(env, "TOONIFY_API_KEYS")),
            secret_key=env.get("TOONIFY_SECRET_KEY", cls.secret_key),
            cors_origins=_list(env, "TOONIFY_CORS_ORIGINS"),
            host=env.get("TOONIFY_HOST") or cls.host,
            open_metrics=_flag(env, "TOONIFY_OPEN_METRICS"),
            cancel_abandoned=_flag(env, "TOONIFY_CANCEL_ABANDONED"),
            webhook_secret=env.get("TOONIFY_WEBHOOK_SECRET", cls.webhook_secret),
            webhook_allow_private=_flag(env, "TOONIFY_WEBHOOK_ALLOW_PRIVATE"),
        )
        for name in ("max_queue", "batch_size", "default_steps", "max_steps", "max_upload_bytes", "max_pixels",
                     "result_ttl_s", "job_attempts", "job_timeout_s", "worker_ttl_s", "sync_timeout_s", "port",
                     "max_faces", "decode_memory_mb", "max_streams", "header_timeout_s", "body_timeout_s",
                     "link_ttl_s", "min_free_bytes", "redis_timeout_s", "shutdown_timeout_s", "device_memory_bytes",
                     "webhook_progress_interval_s", "webhook_attempts", "max_body_bytes_in_flight",
                     "styles_on_device"):
            values[name] = _int(env, _variable(name), getattr(cls, name))
        values.update(fetch_allow_private=_flag(env, "TOONIFY_FETCH_ALLOW_PRIVATE"),
                      fetch_timeout_s=_int(env, "TOONIFY_FETCH_TIMEOUT_S", cls.fetch_timeout_s))
        return cls(**values)  # type: ignore[arg-type]
