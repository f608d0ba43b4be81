"""The suite's data lives in the repository, small enough to clone, and the pickles are the original bytes."""
from __future__ import annotations

import hashlib

from stylegan2 import pickles
from tests.conftest import FIXTURES, STYLEGAN_FIXTURES

MAX_FILE_BYTES = 25_000_000
MAX_TOTAL_BYTES = 100_000_000  # issue 26: tests/fixtures may grow to 100 MB (the ADA snapshots)


def test_fixtures_fit_the_repository_budget():
    sizes = {path: path.stat().st_size for path in FIXTURES.rglob("*") if path.is_file()}
    assert sizes and sum(sizes.values()) <= MAX_TOTAL_BYTES
    assert [path for path, size in sizes.items() if size > MAX_FILE_BYTES] == []


def test_unpacked_pickles_are_the_original_files():
    recorded = dict(reversed(line.split()) for line in (FIXTURES / "stylegan2" / "SHA256SUMS").read_text().splitlines())
    assert sorted(recorded) == ["tiny-ffhq.pkl", "tiny-other.pkl", "tiny-toon.pkl"]
    for name, digest in recorded.items():
        assert hashlib.sha256((STYLEGAN_FIXTURES / name).read_bytes()).hexdigest() == digest
        assert [net.name for net in pickles.load(STYLEGAN_FIXTURES / name)] == ["G", "D", "Gs"]
