"""Settings (app.config, a pydantic-settings model): every variable the README's table documents is a setting and
is read from the environment, and each setting is documented; lists are comma-separated, an empty variable is
an unset one, docker compose's .env is not read, and bad values are one ConfigError naming every variable."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Set

import pytest

from app.config import ConfigError, Settings, variable
from tests.conftest import REPO

SAMPLES = {"engine": "torch", "queue": "redis", "precision": "bf16", "secret_key": "s" * 32,
           "max_steps": "1999"}  # values that differ from the defaults and pass every check, where a rule's won't


def documented() -> Set[str]:
    """The variables named in the first column of the README's configuration table."""
    text = (REPO / "README.md").read_text()
    section = text.split("### Configuration (environment variables)", 1)[1].split("\n### ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`(TOONIFY_[A-Z0-9_]+)`", row)}


def sample(name: str, default: object) -> str:
    """A valid value of the setting ``name`` other than its default."""
    if name in SAMPLES:
        return SAMPLES[name]
    if isinstance(default, bool):
        return "1"
    if isinstance(default, (int, float)):
        return str(default + 1)
    if isinstance(default, (frozenset, tuple)):
        return "a,b"
    if default is None or isinstance(default, Path):
        return "/srv/toonify/" + name
    return "x-" + name


@pytest.fixture
def environ(monkeypatch):
    """A clean TOONIFY_* environment; the test sets what it needs."""
    for name in Settings.model_fields:
        monkeypatch.delenv(variable(name), raising=False)
    return monkeypatch


def test_every_documented_variable_is_a_setting_and_every_setting_is_documented():
    assert documented() == {variable(name) for name in Settings.model_fields}


def test_every_documented_variable_is_read_from_the_environment(environ):
    defaults = Settings()
    values: Dict[str, str] = {}
    for name in Settings.model_fields:
        values[variable(name)] = sample(name, getattr(defaults, name))
        environ.setenv(variable(name), values[variable(name)])
    read = Settings()
    unread = [name for name in Settings.model_fields if getattr(read, name) == getattr(defaults, name)]
    assert not unread, unread
    assert read.api_keys == frozenset({"a", "b"}) and read.cors_origins == ("a", "b")
    assert read.max_queue == 33 and read.cache_dir == Path("/srv/toonify/cache_dir") and read.open_metrics is True


def test_lists_are_comma_separated_and_an_empty_variable_is_unset(environ):
    environ.setenv("TOONIFY_API_KEYS", " key-1 , key-2,, ")
    environ.setenv("TOONIFY_CORS_ORIGINS", "https://a.example,https://b.example")
    for name in ("TOONIFY_PORT", "TOONIFY_ENGINE", "TOONIFY_HOST", "TOONIFY_CACHE_DIR", "TOONIFY_OPEN_METRICS"):
        environ.setenv(name, "")
    settings = Settings()
    assert settings.api_keys == frozenset({"key-1", "key-2"})
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert (settings.port, settings.engine, settings.host, settings.cache_dir, settings.open_metrics) == (
        8000, "tf1", "127.0.0.1", None, False)
    assert Settings(port=9000, engine="torch").port == 9000  # keyword arguments over the environment


def test_compose_dot_env_is_not_read(environ, tmp_path):
    (tmp_path / ".env").write_text("TOONIFY_API_KEYS=from-compose\nTOONIFY_PORT=1234\n")
    environ.chdir(tmp_path)
    settings = Settings()
    assert settings.api_keys == frozenset() and settings.port == 8000


def test_bad_values_are_one_error_naming_each_variable_and_never_echoing_a_secret(environ):
    bad = {"TOONIFY_PORT": "eighty", "TOONIFY_ENGINE": "tf2", "TOONIFY_OPEN_METRICS": "maybe",
           "TOONIFY_SECRET_KEY": "hunter2"}
    for name, value in bad.items():
        environ.setenv(name, value)
    with pytest.raises(ConfigError) as refused:
        Settings()
    for name in bad:
        environ.delenv(name)
    line = str(refused.value)
    for words in ("TOONIFY_PORT must be a whole number; got 'eighty'", "TOONIFY_ENGINE must be 'tf1' or 'torch'",
                  "TOONIFY_OPEN_METRICS must be 1, true, yes or on", "TOONIFY_SECRET_KEY must be at least 32"):
        assert words in line, line
    assert "hunter2" not in line and "\n" not in line
    with pytest.raises(ConfigError, match="TOONIFY_PORT must be at most 65535"):
        Settings(port=70000)
    with pytest.raises(ConfigError, match="TOONIFY_BATCH_SIZE must not be negative"):
        Settings().replaced(batch_size=-1)


@pytest.mark.parametrize("value, words", [("nan", "must be a finite number"), ("inf", "must be a finite number"),
                                          ("-1", "must not be negative"), ("soon", "must be a number of seconds")])
def test_the_preview_interval_is_a_finite_number_of_seconds(environ, value, words):
    environ.setenv("TOONIFY_PREVIEW_EVERY_S", value)
    with pytest.raises(ConfigError, match="TOONIFY_PREVIEW_EVERY_S %s" % words):
        Settings()
