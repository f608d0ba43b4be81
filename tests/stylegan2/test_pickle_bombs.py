"""Model-file resource bombs: a few hundred bytes that would make the safe reader allocate gigabytes or
recurse without end are refused with ModelFileError, quickly and with little memory, and run no code; so are
student .npz files whose members would inflate past what the file can hold."""
from __future__ import annotations

import codecs
import io
import pickle
import struct
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from stylegan2 import pickles
from stylegan2.errors import ModelFileError, ModelStructureError
from stylegan2.student import init_student, load_student, save_student
from tests.conftest import STYLEGAN_FIXTURES

MAX_SECONDS = 5.0  # a refused bomb takes < 0.2 s on a quiet machine; allocating what it asks takes far longer
MAX_ALLOCATED = 200 * 1024 * 1024


class _Reduce:
    """Pickles as ``func(*args)`` (and BUILD with ``state`` when given), without calling anything here."""

    def __init__(self, func, args, state=None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _network(**state) -> pickles._NetworkState:
    stub = pickles._NetworkState()
    stub.__dict__.update(dict(version=4, name="Gs", static_kwargs={}, components={}, build_module_src="",
                              build_func_name="", variables=[]), **state)
    return stub


def _dumps(obj) -> bytes:
    """Written by our pickler (the official class path), with room for deep nesting."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20000)
    try:
        buffer = io.BytesIO()
        pickles._OfficialPickler(buffer, protocol=2).dump(obj)
        return buffer.getvalue()
    finally:
        sys.setrecursionlimit(limit)


def _codec_chain() -> bytes:
    """hex-encoding bytes doubles them: 31 rounds turn 2 bytes into 4 GB."""
    value = _Reduce(codecs.encode, (b"ab", "hex"))
    for _ in range(30):
        value = _Reduce(codecs.encode, (value, "hex"))
    return _dumps(_network(build_module_src=value))


def _latin1_reuse() -> bytes:
    """One 1 MB string, memoised, decoded 4000 times: every copy is new memory (4 GB)."""
    text = "x" * (1 << 20)
    return _dumps(_network(build_module_src=[_Reduce(codecs.encode, (text, "latin1")) for _ in range(4000)]))


def _huge_array_reduce() -> bytes:
    """numpy.ndarray((20000, 20000), float64) in one REDUCE: 3.2 GB from under 100 bytes."""
    return pickle.dumps(_Reduce(np.ndarray, ((20000, 20000), "f8")), protocol=2)


def _huge_reconstruct() -> bytes:
    return pickle.dumps(_Reduce(np.core.multiarray._reconstruct, (np.ndarray, (20000, 20000), b"d")), protocol=2)


def _shared_raw_data() -> bytes:
    """One 1 MB buffer, memoised, as the data of 4000 arrays (BUILD → ndarray.__setstate__)."""
    raw = b"\0" * (1 << 20)
    arrays = [_Reduce(np.core.multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                      (1, (1 << 18,), np.dtype("f4"), False, raw)) for _ in range(4000)]
    return _dumps(_network(variables=[("v%d" % i, a) for i, a in enumerate(arrays)]))


def _deep_components() -> bytes:
    network = _network()
    for _ in range(1500):
        network = _network(components={"inner": network})
    return _dumps(network)


def _deep_settings() -> bytes:
    nested: list = []
    for _ in range(3000):
        nested = [nested]
    return _dumps(_network(static_kwargs={"resolution": nested}))


def _memo_index() -> bytes:
    """None stored at memo index 2^25: the unpickler grows its memo table to the index (half a gigabyte)."""
    return b"\x80\x02N" + b"r" + struct.pack("<I", 1 << 25) + b"0" + b"N" * 4 + b"0" * 4 + b"."


def _empty_sets() -> bytes:
    """4 MB of EMPTY_SET opcodes: one byte each, a 216-byte set each (1 GB)."""
    return b"\x80\x04" + b"\x8f" * (4 << 20) + b"."


BOMBS = {"codec-chain": _codec_chain, "memo-index": _memo_index, "empty-sets": _empty_sets,
         "latin1-reuse": _latin1_reuse, "ndarray-reduce": _huge_array_reduce,
         "reconstruct": _huge_reconstruct, "shared-raw-data": _shared_raw_data,
         "deep-components": _deep_components, "deep-settings": _deep_settings}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_bomb_is_refused_fast_and_small(name):
    data = BOMBS[name]()
    assert len(data) < 6 * 1024 * 1024
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ModelFileError) as refused:
            pickles.loads(data, "bomb.pkl")
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seconds < MAX_SECONDS, seconds
    assert peak - len(data) < MAX_ALLOCATED, peak
    assert peak < 4 * len(data) + (16 << 20), peak  # memory near the file's size
    assert "bomb.pkl" in str(refused.value) or "refused" in str(refused.value)


def test_genuine_models_stay_within_the_budget():
    for name in ("tiny-ffhq.pkl", "tiny-toon.pkl"):
        g, d, gs = pickles.load(STYLEGAN_FIXTURES / name)
        assert gs.component("synthesis").variables


def _inflating_npz(tmp_path, declared_shape, payload_bytes: int):
    """A student file whose extra member is one .npy of ``declared_shape`` float32 with ``payload_bytes`` of
    zeros, deflated (zeros shrink ~1000:1): a 1 MB file can inflate to a gigabyte."""
    path = tmp_path / "student.npz"
    save_student(init_student(64, (4, 8)), path)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": declared_shape})
    with zipfile.ZipFile(str(path), "a", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("bomb.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            chunk = b"\0" * (1 << 20)
            for _ in range(payload_bytes >> 20):
                member.write(chunk)
    return path


@pytest.mark.parametrize("declared, payload", [((1 << 28,), 1 << 30), ((1 << 28,), 1 << 20)],
                         ids=["inflates-to-1-GB", "header-claims-1-GB"])
def test_student_npz_bombs_are_refused_before_inflating(tmp_path, declared, payload):
    path = _inflating_npz(tmp_path, declared, payload)
    size = path.stat().st_size
    assert size < 2 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ModelStructureError, match="refused"):
            load_student(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * size + (16 << 20), peak


def test_genuine_student_files_load(tmp_path):
    path = tmp_path / "student.npz"
    save_student(init_student(64, (4, 8)), path)
    assert load_student(path).resolution == 64
