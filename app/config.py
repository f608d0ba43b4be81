"""Settings from TOONIFY_* environment variables, read once into one typed object (documented in the README).

A pydantic-settings model: each setting is one field, its variable ``TOONIFY_`` + the field's name in capitals,
its type and bounds declared on the field. Three rules of this project's own: an empty variable counts as
unset, lists are comma-separated (``a,b``, not JSON), and every bad value is one ``ConfigError`` line naming
its variables, so a start refuses before any model loads."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from typing_extensions import Literal

from stylegan2.precision import AUTO, FP32
from stylegan2.precision import CHOICES as PRECISIONS
from stylegan2.projection import DEFAULT_STEPS

from .options import STEPS_CEILING

PREFIX = "TOONIFY_"
STYLES_ON_DEVICE = 4  # ≈ 0.9 GB of config-f generators at most (with in-between mixes) beside a batch-1
# projection on an 8 GB card: bench/RESULTS.md, "Styles"
MIN_SECRET_CHARS = 32  # of TOONIFY_SECRET_KEY: an HMAC key no one can guess
FORM_OVERHEAD_BYTES = 1_000_000  # a request body may exceed TOONIFY_MAX_UPLOAD_BYTES by this much (form fields)
UNQUOTED = frozenset({"secret_key", "webhook_secret", "api_keys", "redis_url"})  # never echoed: secrets, passwords
MiB = 1024 * 1024


class ConfigError(ValueError):
    """A TOONIFY_* variable holds a value the service cannot use; the message names the variable."""


def variable(name: str) -> str:
    """The environment variable of the setting ``name``."""
    return PREFIX + name.upper()


def _positive(default: int) -> Any:
    return Field(default, ge=1)


def _not_negative(default: int) -> Any:
    return Field(default, ge=0)


class _Variables(EnvSettingsSource):
    """The environment as pydantic-settings reads it, but every value handed to validation as the string it is:
    lists are comma-separated (split by ``Settings._comma_separated``), never JSON."""

    def prepare_field_value(self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool) -> Any:
        return value


class Settings(BaseSettings):
    """One process's settings; ``Settings()`` reads the environment, keyword arguments override it."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True)

    engine: Literal["tf1", "torch"] = "tf1"
    models_dir: Path = Path("models")
    data_dir: Path = Path("data")  # the job database and files; one process per folder (app.lock)
    queue: Literal["local", "redis"] = "local"
    redis_url: str = "redis://localhost:6379/0"
    redis_timeout_s: int = _positive(1)  # the API's connect and read timeout per Redis call: a frozen Redis is a 503
    max_queue: int = _positive(32)  # jobs queued or running before a 429
    batch_size: int = _not_negative(0)  # 0: as many faces as the device's memory holds (app.batches)
    device_memory_bytes: int = _not_negative(0)  # 0: the device's free memory once the models are loaded
    styles_on_device: int = _not_negative(STYLES_ON_DEVICE)  # added styles' generators held at once, LRU; 0 = all
    device: str = ""  # cpu, cuda, cuda:1 (torch engine); "" = CUDA when available
    precision: str = FP32  # of the projection steps: fp32, tf32, bf16, fp16 or auto (stylegan2.precision)
    cache_dir: Optional[Path] = None  # w statistics; None = <models>/.cache if writable
    default_steps: int = _positive(DEFAULT_STEPS)  # steps of a request that names none
    max_steps: int = Field(2000, ge=1, le=STEPS_CEILING)  # steps a request may ask for
    max_upload_bytes: int = _positive(25 * MiB)  # enforced while the body streams
    max_pixels: int = _positive(50_000_000)  # decoded size, checked from the header before decoding
    max_body_bytes_in_flight: int = _positive(200 * MiB)  # request bodies held at once; past it a 503 (api.inflight)
    result_ttl_s: int = _positive(24 * 3600)  # results are deleted this long after their job ends
    job_attempts: int = _positive(3)  # runs a job gets in all (crashes and dead workers re-queue it)
    job_timeout_s: int = _positive(3600)  # redis mode: the longest a job may run
    worker_ttl_s: int = _positive(60)  # redis mode: a worker not heard from for this long is dead
    sync_timeout_s: int = _positive(3600)  # how long a waiting POST /toonify may wait
    max_faces: int = _positive(8)  # faces one job may project (face=all); more is a 422
    decode_memory_mb: int = _positive(1024)  # memory the API may spend decoding uploads at once
    max_streams: int = _positive(200)  # concurrent event streams (SSE); more is a 503
    header_timeout_s: int = _positive(10)  # a client must send its request headers within this
    body_timeout_s: int = _positive(120)  # … and its whole body within this
    link_ttl_s: int = _positive(900)  # lifetime of the signed links the job view hands out (with API keys)
    open_metrics: bool = False  # with API keys, /metrics needs one too unless this is set
    cancel_abandoned: bool = False  # a sync request whose client left cancels its job
    min_free_bytes: int = _not_negative(256 * MiB)  # below this free space on the data disk, new jobs get a 507
    shutdown_timeout_s: int = _positive(20)  # SIGTERM: requests and the running job get this long, then re-queued
    api_keys: FrozenSet[str] = frozenset()  # comma-separated; with any, requests need one (app.api.auth)
    secret_key: str = ""  # HMAC key of signed links and owner ids; "" = made once and kept (app.api.signing_secret)
    cors_origins: Tuple[str, ...] = ()  # comma-separated; none: CORS off
    host: str = "127.0.0.1"  # loopback unless asked: the container images set TOONIFY_HOST=0.0.0.0
    port: int = Field(8000, ge=1, le=65535)  # where `python -m app serve` listens
    webhook_secret: str = ""  # key of the webhooks' signatures; "" = webhooks off
    webhook_allow_private: bool = False  # webhooks may go to private and loopback addresses
    webhook_progress_interval_s: int = _not_negative(5)  # at most one progress webhook per job this often
    webhook_attempts: int = _positive(5)  # tries per webhook delivery
    fetch_allow_private: bool = False  # photo URLs (image_url, JSON image) may name private and loopback hosts
    fetch_timeout_s: int = _positive(15)  # the whole fetch of a photo URL (DNS, connect, headers, body); then a 504
    # seconds of projection between live previews (fewer: under 4 % of its time); 0 = off (app.jobs.previews)
    preview_every_s: float = Field(5.0, ge=0, allow_inf_nan=False)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError("; ".join(_problem(error) for error in exc.errors())) from None

    @classmethod
    def settings_customise_sources(cls, settings_cls: Any, init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource
                                   ) -> Tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then TOONIFY_* variables; no .env file (that one is docker compose's) or secrets
        folder."""
        return init_settings, _Variables(settings_cls)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_unset(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return {name: value for name, value in values.items() if value != ""}
        return values

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("precision")
    @classmethod
    def _known_precision(cls, value: str) -> str:
        if value not in PRECISIONS:
            raise ValueError("must be one of %s" % ", ".join(PRECISIONS))
        return value

    @field_validator("secret_key")
    @classmethod
    def _long_secret(cls, value: str) -> str:
        if 0 < len(value) < MIN_SECRET_CHARS:
            raise ValueError("must be at least %d characters; make one with: python -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))'" % MIN_SECRET_CHARS)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        problems = problems_of(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def replaced(self, **changes: Any) -> "Settings":
        """These settings with ``changes`` (command-line options over the environment), checked again."""
        return type(self)(**dict(self.model_dump(), **changes))


def problems_of(settings: Settings) -> List[str]:
    """What is wrong with settings that are each valid alone, each naming its variables: a start with a default
    the server then refuses (TOONIFY_DEFAULT_STEPS over TOONIFY_MAX_STEPS) must not happen."""
    problems = []
    if settings.engine == "tf1" and settings.precision not in (FP32, AUTO):
        problems.append("TOONIFY_PRECISION=%s needs TOONIFY_ENGINE=torch: the tf1 engine projects in fp32 only"
                        % settings.precision)
    if settings.max_body_bytes_in_flight < settings.max_upload_bytes + FORM_OVERHEAD_BYTES:
        problems.append("TOONIFY_MAX_BODY_BYTES_IN_FLIGHT (%d) must be at least TOONIFY_MAX_UPLOAD_BYTES + %d (%d): "
                        "one largest upload must fit" % (settings.max_body_bytes_in_flight, FORM_OVERHEAD_BYTES,
                                                        settings.max_upload_bytes + FORM_OVERHEAD_BYTES))
    if settings.default_steps > settings.max_steps:
        problems.append("TOONIFY_DEFAULT_STEPS (%d) must not exceed TOONIFY_MAX_STEPS (%d)"
                        % (settings.default_steps, settings.max_steps))
    return problems


# pydantic's error types → what the variable must be (the context fills the bounds).
_MUST: Dict[str, str] = {
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "finite_number": "must be a finite number",
    "float_parsing": "must be a number of seconds (like 5 or 0.5)",
    "int_type": "must be a whole number",
    "bool_parsing": "must be 1, true, yes or on (or 0, false, no, off)",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "literal_error": "must be {expected}",
}


def _problem(error: Dict[str, Any]) -> str:
    """One pydantic error as a line naming the variable and what it must be."""
    context = error.get("ctx") or {}
    if not error["loc"]:  # the settings together (problems_of): its text already names the variables
        return str(context.get("error", error["msg"]))
    field = str(error["loc"][0])
    name = variable(field)
    if error["type"] == "greater_than_equal" and context.get("ge") == 0:
        must = "must not be negative"
    elif error["type"] in _MUST:
        must = _MUST[error["type"]].format(**context)
    elif error["type"] == "value_error":
        must = str(context.get("error", error["msg"]))
    else:
        must = "is not valid (%s)" % error["msg"]
    if field in UNQUOTED:  # a secret, even a weak one, stays out of logs
        return "%s %s" % (name, must)
    return "%s %s; got %r" % (name, must, error["input"])
