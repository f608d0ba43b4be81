"""The allocator policy (app.memory), in fresh interpreters: a `python -m app` process keeps a large freed block
(the next projection step reuses it) where glibc's defaults hand it back at once, a trim returns it, and the
glibc tunables the README gives for other processes do the same as the entry point."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Dict

import pytest

from tests.conftest import REPO

BLOCK_MB = 300
TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647:glibc.malloc.top_pad=268435456"
# RSS above the start, in MB, while a block is held, once it is freed, and after a trim.
PROBE = """
import json, os, sys
if sys.argv[1] == "entry":
    from app.cli import main
    try:
        main(["--help"])
    except SystemExit:
        pass
from app.memory import return_freed_memory
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
start = rss_mb()
block = b"x" * (int(sys.argv[2]) << 20)
held = rss_mb() - start
del block
freed = rss_mb() - start
return_freed_memory()
print(json.dumps({"held": held, "freed": freed, "trimmed": rss_mb() - start}))
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc, /proc")


def _probe(how: str, **env: str) -> Dict[str, float]:
    result = subprocess.run([sys.executable, "-c", PROBE, how, str(BLOCK_MB)], cwd=str(REPO), capture_output=True,
                            text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO), **env))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_an_app_process_keeps_freed_memory_until_the_trim_as_the_tunables_do():
    default, entry, tunables = _probe("default"), _probe("entry"), _probe("tunables", GLIBC_TUNABLES=TUNABLES)
    for measured in (default, entry, tunables):
        assert measured["held"] > 0.9 * BLOCK_MB, measured  # the block was really there
        assert measured["trimmed"] < 0.2 * BLOCK_MB, measured  # a trim hands it back whatever the policy
    assert default["freed"] < 0.2 * BLOCK_MB, default  # glibc's defaults: mmap'd, returned when freed
    assert entry["freed"] > 0.9 * BLOCK_MB, entry  # python -m app: kept for the next step
    assert tunables["freed"] > 0.9 * BLOCK_MB, tunables
