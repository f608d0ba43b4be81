"""StyleGAN2-ADA PyTorch snapshots: NVIDIA's own pixels from our reader and engines, and nothing in the file
ever runs (fixtures/stylegan2-ada/README.md gives the outputs and tolerances)."""
from __future__ import annotations

import pickle
import struct
import time

import numpy as np
import pytest

from stylegan2 import ada_snapshot, pickles
from stylegan2.errors import ModelError, UnsafeModelError
from stylegan2.layout import describe
from stylegan2.sampling import to_uint8, truncate
from tests.conftest import FIXTURES, STYLEGAN_FIXTURES

ADA = FIXTURES / "stylegan2-ada"
IMAGE_TOL, WS_TOL, PROBE_TOL = 1e-4, 1e-5, 1e-2


def _generator(engine, name):
    from stylegan2.engines import backend

    spec = describe(pickles.load_generator(ADA / (name + ".pkl")))
    return spec, backend(engine).Generator(spec)


@pytest.mark.parametrize("name", ["ada-tiny-native", "ada-tiny-fp16", "ada-from-tf"])
def test_snapshot_renders_adas_outputs(engine, name):
    ref = np.load(str(ADA / (name + ".outputs.npz")), allow_pickle=False)
    spec, generator = _generator(engine, name)
    assert np.array_equal(spec.dlatent_avg, ref["w_avg"])
    w = generator.map(ref["z"].astype(np.float32))
    assert np.abs(w[:, None] - ref["w_mapped"]).max() <= WS_TOL
    ws = truncate(np.repeat(w[:, None], spec.num_ws, 1), spec.dlatent_avg, float(ref["psi"]))
    assert np.abs(ws - ref["ws_z"]).max() <= WS_TOL
    assert np.abs(generator.synthesize(ws) - ref["images_z"]).max() <= IMAGE_TOL
    assert np.abs(generator.synthesize(ref["ws"]) - ref["images_ws"]).max() <= IMAGE_TOL
    probe = generator.synthesize(ref["ws_clamp_probe"])
    assert np.abs(probe - ref["images_ws_clamp_probe"]).max() <= PROBE_TOL


def test_converted_snapshot_renders_its_tf_twins_pixels(engine):
    from stylegan2.engines import backend

    ws = np.load(str(ADA / "ada-from-tf.outputs.npz"))["ws"]
    ada = backend(engine).Generator(describe(pickles.load_generator(ADA / "ada-from-tf.pkl"))).synthesize(ws)
    tf = backend(engine).Generator(describe(pickles.load_generator(STYLEGAN_FIXTURES / "tiny-ffhq.pkl")))
    twin = tf.synthesize(ws)
    assert np.abs(ada - twin).max() <= 1e-5
    assert np.array_equal(to_uint8(ada), to_uint8(twin))


def _storage_blob(storage_class: bytes = b"FloatStorage", numel: int = 2, data: bytes = b"\0" * 8) -> bytes:
    """A legacy torch.save storage stream as ada's snapshots nest them (README: six parts)."""
    pid = (b"\x80\x02(X\x07\x00\x00\x00storagectorch\n" + storage_class + b"\nX\x01\x00\x00\x001X\x03\x00\x00\x00cpu"
           + b"\x8a\x08" + struct.pack("<q", numel) + b"NtQ.")
    header = b"".join(pickle.dumps(part, 2) for part in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001}))
    return header + pid + pickle.dumps(["1"], 2) + struct.pack("<q", numel) + data


def _load_from_bytes(blob: bytes) -> bytes:
    return b"\x80\x04ctorch.storage\n_load_from_bytes\nB" + struct.pack("<I", len(blob)) + blob + b"\x85R."


def test_a_wellformed_storage_is_parsed_so_the_attacks_below_are_meaningful():
    with pytest.raises(ModelError, match="no G_ema"):
        ada_snapshot.load_g_ema(_load_from_bytes(_storage_blob()))


@pytest.mark.parametrize("payload, error", [
    (b"cos\nsystem\n(VMARKER\ntR.", "os.system"),
    (b"cdnnlib.util\nconstruct_class_by_name\n(VMARKER\ntR.", "construct_class_by_name"),
    (_load_from_bytes(_storage_blob(numel=1 << 60))[2:], "storage of"),
    (_load_from_bytes(_storage_blob(b"DoubleStorage"))[2:], "DoubleStorage"),
])
def test_malicious_snapshots_are_refused_quickly_without_running_anything(tmp_path, monkeypatch, payload, error):
    monkeypatch.chdir(tmp_path)
    data = b"\x80\x04" + payload.replace(b"MARKER", b"touch executed")
    started = time.perf_counter()
    with pytest.raises(ModelError, match=error):
        ada_snapshot.load_g_ema(data, "evil.pkl")
    assert time.perf_counter() - started < 1.0
    assert not (tmp_path / "executed").exists()


def test_model_loading_recognises_a_snapshot_by_content(tmp_path):
    renamed = tmp_path / "style.pkl"
    renamed.write_bytes((ADA / "ada-tiny-native.pkl").read_bytes())
    record = pickles.load_generator(renamed)
    assert record.static_kwargs["resolution"] == 64 and describe(record).num_ws == 10
    with pytest.raises(UnsafeModelError):
        evil = tmp_path / "evil.pkl"
        evil.write_bytes(b"\x80\x04ctorch_utils.persistence\n_reconstruct_persistent_obj\n" + b"cos\nsystem\n.")
        pickles.load_generator(evil)
