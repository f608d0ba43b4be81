"""The safe reader refuses code, HTML and truncation; the writer round-trips the official format."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from stylegan2 import pickles
from stylegan2.errors import ModelFileError, UnsafeModelError
from tests.conftest import STYLEGAN_FIXTURES


def _walk_equal(a: pickles.NetworkRecord, b: pickles.NetworkRecord) -> None:
    assert (a.name, a.static_kwargs, a.build_func_name, a.version) == (b.name, b.static_kwargs, b.build_func_name,
                                                                       b.version)
    assert list(a.variables) == list(b.variables)
    for name in a.variables:
        assert a.variables[name].dtype == np.float32
        np.testing.assert_array_equal(a.variables[name], b.variables[name])
    assert list(a.components) == list(b.components)
    for key in a.components:
        _walk_equal(a.components[key], b.components[key])


def test_reads_genuine_pickle_as_plain_data():
    g, d, gs = pickles.load(STYLEGAN_FIXTURES / "tiny-ffhq.pkl")
    assert gs.name == "Gs" and list(gs.components) == ["synthesis", "mapping"]
    synthesis = gs.component("synthesis")
    assert synthesis.variables["4x4/Conv/noise_strength"].shape == ()
    assert synthesis.variables["4x4/Const/const"].shape == (1, 64, 4, 4)
    assert "carries no code" in gs.build_module_src  # kept as text, never run


def test_round_trip_reads_back_identically(tmp_path):
    original = pickles.load(STYLEGAN_FIXTURES / "tiny-ffhq.pkl")
    path = tmp_path / "copy.pkl"
    pickles.save(original, path)
    again = pickles.load(path)
    for a, b in zip(original, again):
        _walk_equal(a, b)
    assert not (tmp_path / "copy.pkl.part").exists()


def test_written_file_uses_official_class_path_and_numpy1_names(tmp_path):
    import pickletools

    data = pickles.dumps(pickles.load(STYLEGAN_FIXTURES / "tiny-ffhq.pkl"))
    strings = {arg for op, arg, _ in pickletools.genops(data) if isinstance(arg, str)}
    assert {"dnnlib.tflib.network", "Network", "numpy.core.multiarray", "_reconstruct"} <= strings
    assert not any(s.startswith("numpy._core") for s in strings)
    assert data[:2] == b"\x80\x04"


class _Payload:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, ("touch %s" % self.target,))


def test_code_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps((_Payload(str(marker)),), protocol=4))
    with pytest.raises(UnsafeModelError) as err:
        pickles.load(evil)
    assert "system" in str(err.value)
    assert not marker.exists()


class _WritePayload:
    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_file_writing_payload_is_refused(tmp_path):
    target = tmp_path / "written.txt"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"variables": _WritePayload(str(target))}, protocol=4))
    with pytest.raises(UnsafeModelError, match="open"):
        pickles.load(evil)
    assert not target.exists()


def test_object_arrays_are_refused(tmp_path):
    path = tmp_path / "obj.pkl"
    path.write_bytes(pickle.dumps(np.array([1, "a"], dtype=object), protocol=4))
    with pytest.raises(UnsafeModelError):
        pickles.load(path)


def test_html_page_gets_a_clear_error(tmp_path):
    page = tmp_path / "ffhq.pkl"
    page.write_bytes(b"<!DOCTYPE html><html><title>Google Drive - Quota exceeded</title></html>")
    with pytest.raises(ModelFileError) as err:
        pickles.load(page)
    assert "HTML page" in str(err.value) and "by hand" in str(err.value)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_truncated_file_gets_a_clear_error(tmp_path, keep):
    data = (STYLEGAN_FIXTURES / "tiny-ffhq.pkl").read_bytes()
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelFileError) as err:
        pickles.load(path)
    assert "truncated" in str(err.value)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        pickles.load(empty)
    with pytest.raises(ModelFileError, match="not found"):
        pickles.load(tmp_path / "nope.pkl")
