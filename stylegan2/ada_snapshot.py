"""Safe reader of StyleGAN2-ADA PyTorch snapshots (a pickled dict with ``G_ema``), without torch.

NVIDIA's loader unpickles any global the file names and executes the ``module_src`` every persistent
object embeds. We never do: the restricted unpickler of :mod:`stylegan2.pickles` is extended with inert
stand-ins for the handful of globals a snapshot uses (fixtures/stylegan2-ada/README.md), each torch
storage is parsed from its nested legacy ``torch.save`` blob by NumPy, and ``G_ema`` is converted into
the TF ``Gs`` record our engines already run (the inverse of ada's ``legacy.py`` conversion, spec §2.5).
"""
from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict
from typing import Any, Dict, Mapping, Tuple

import numpy as np

from .errors import ModelFileError, UnsafeModelError
from .pickles import NetworkRecord, _RestrictedUnpickler, check_header

PERSISTENT_OBJ = ("torch_utils.persistence", "_reconstruct_persistent_obj")
_STORAGE_MAGIC = 0x1950A86A20F9469CFC6C
_FLOAT_STORAGE = ("torch", "FloatStorage")
_FLOAT_BYTES = 4
HEAD_BYTES = 1 << 16  # the persistence hook is named by the first network, within the file's first bytes


class AdaModule:
    """Inert stand-in for one persistent ``torch.nn.Module``: its class name and ``__dict__``; its source is
    kept as text and never compiled."""

    def __init__(self, class_name: str, state: Dict[str, Any], module_src: str) -> None:
        self.class_name, self.state, self.module_src = class_name, state, module_src

    def child(self, name: str) -> "AdaModule":
        child = self.state.get("_modules", {}).get(name)
        if not isinstance(child, AdaModule):
            raise ModelFileError("the snapshot's %s has no sub-module %r" % (self.class_name, name))
        return child

    def tensors(self, prefix: str = "") -> "OrderedDict[str, np.ndarray]":
        """Parameters and buffers under ada's state-dict names (``synthesis.b4.conv1.weight`` …)."""
        out: "OrderedDict[str, np.ndarray]" = OrderedDict()
        for group in ("_parameters", "_buffers"):
            for name, value in (self.state.get(group) or {}).items():
                if value is not None:
                    out[prefix + name] = value
        for name, module in (self.state.get("_modules") or {}).items():
            if isinstance(module, AdaModule):
                out.update(module.tensors(prefix + name + "."))
        return out

    def kwargs(self) -> Dict[str, Any]:
        return dict(self.state.get("_init_kwargs") or {})


def _persistent_obj(meta: Any) -> AdaModule:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise ModelFileError("the snapshot holds a persistent object that is not a module; refused")
    return AdaModule(str(meta.get("class_name", "")), meta["state"], str(meta.get("module_src", "")))


class _StorageUnpickler(pickle.Unpickler):
    """Reads the small pickles of a legacy torch.save stream: only ``torch.FloatStorage`` may be named."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) != _FLOAT_STORAGE:
            raise UnsafeModelError("the snapshot stores a tensor as %s.%s; only float32 storages are read"
                                   % (module, name))
        return _FLOAT_STORAGE

    def persistent_load(self, pid: Any) -> Any:
        return pid


def _load_storage(blob: Any) -> np.ndarray:
    """One storage from its nested legacy torch.save blob: magic, version, sys info, the persistent id, the
    key list, then int64 numel and the raw little-endian float32 data."""
    if not isinstance(blob, bytes):
        raise ModelFileError("the snapshot holds a storage that is not bytes; refused")
    stream = io.BytesIO(blob)
    try:
        parts = [_StorageUnpickler(stream).load() for _ in range(5)]
        (numel,) = struct.unpack("<q", stream.read(8))
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError, TypeError, IndexError) as exc:
        raise ModelFileError("the snapshot holds a malformed tensor storage: %s" % exc) from None
    magic, pid = parts[0], parts[3]
    if magic != _STORAGE_MAGIC or not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
        raise ModelFileError("the snapshot holds a tensor storage in an unknown format; refused")
    if pid[1] != _FLOAT_STORAGE:
        raise UnsafeModelError("the snapshot stores a tensor of type %r; only float32 is read" % (pid[1],))
    data = blob[stream.tell():]
    if numel != pid[4] or numel < 0 or numel * _FLOAT_BYTES != len(data):
        raise ModelFileError("the snapshot declares a storage of %r values but holds %d bytes; refused"
                             % (numel, len(data)))
    return np.frombuffer(data, "<f4").astype(np.float32)


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any) -> np.ndarray:
    if not isinstance(storage, np.ndarray) or offset != 0:
        raise ModelFileError("the snapshot holds a tensor view at offset %r; only whole storages are read" % (offset,))
    shape = tuple(int(d) for d in size)
    expected = tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape)))
    if int(np.prod(shape, dtype=np.int64)) != storage.size or (storage.size > 1 and tuple(stride) != expected):
        raise ModelFileError("the snapshot holds a tensor of shape %r that does not fill its storage; refused"
                             % (shape,))
    return storage.reshape(shape)


def _rebuild_parameter(tensor: Any, *_rest: Any) -> np.ndarray:
    if not isinstance(tensor, np.ndarray):
        raise ModelFileError("the snapshot holds a parameter that is not a tensor; refused")
    return tensor


class _AdaUnpickler(_RestrictedUnpickler):
    def __init__(self, data: bytes, source: str) -> None:
        super().__init__(data, source)
        self._allowed.update({
            PERSISTENT_OBJ: _persistent_obj,
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
            ("torch.storage", "_load_from_bytes"): _load_storage,
            ("collections", "OrderedDict"): OrderedDict,
            ("builtins", "set"): frozenset,
        })

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeModelError("the snapshot uses persistent ids (a torch.save file?); refused")


def is_ada_snapshot(data: bytes) -> bool:
    """Whether pickle bytes name ada's persistence hook (recognised by content, before unpickling)."""
    head = data[:HEAD_BYTES]
    return b"_reconstruct_persistent_obj" in head and b"torch_utils.persistence" in head


def load_g_ema(data: bytes, source: str = "snapshot") -> AdaModule:
    """The ``G_ema`` module of a snapshot, read without executing anything in the file."""
    check_header(data[:16], len(data), source)
    try:
        snapshot = _AdaUnpickler(data, source).load()
    except (UnsafeModelError, ModelFileError):
        raise
    except (RecursionError, MemoryError):
        raise ModelFileError("%s is nested too deeply or too large to be a snapshot; refused" % source) from None
    except (EOFError, pickle.UnpicklingError, ValueError, IndexError, TypeError, AttributeError, KeyError) as exc:
        raise ModelFileError("%s is not a readable StyleGAN2-ADA snapshot: %s" % (source, exc)) from None
    g_ema = snapshot.get("G_ema") if isinstance(snapshot, dict) else None
    if not isinstance(g_ema, AdaModule) or g_ema.class_name != "Generator":
        raise ModelFileError("%s has no G_ema generator (is it a StyleGAN2-ADA training snapshot?)" % source)
    return g_ema


def _hwio(weight: np.ndarray, flip: bool = False) -> np.ndarray:
    """OIHW → HWIO; transposed-conv (up) weights are also flipped spatially (spec §2.5, inverted)."""
    if flip:
        weight = weight[:, :, ::-1, ::-1]
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0)).astype(np.float32)


def _layer_vars(scope: str, ada: Mapping[str, np.ndarray], prefix: str, flip: bool) -> Dict[str, np.ndarray]:
    out = {
        scope + "/weight": _hwio(ada[prefix + "weight"], flip),
        scope + "/mod_weight": np.ascontiguousarray(ada[prefix + "affine.weight"].T),
        scope + "/mod_bias": (ada[prefix + "affine.bias"] - np.float32(1)).astype(np.float32),
        scope + "/bias": ada[prefix + "bias"],
    }
    if prefix + "noise_strength" in ada:
        out[scope + "/noise_strength"] = ada[prefix + "noise_strength"]
    return out


def _synthesis_vars(ada: Mapping[str, np.ndarray], resolutions: Tuple[int, ...]) -> "OrderedDict[str, np.ndarray]":
    out: "OrderedDict[str, np.ndarray]" = OrderedDict()
    s = "synthesis.b4."
    out["4x4/Const/const"] = ada[s + "const"][None]
    out["noise0"] = ada[s + "conv1.noise_const"][None, None]
    out.update(_layer_vars("4x4/Conv", ada, s + "conv1.", False))
    out.update(_layer_vars("4x4/ToRGB", ada, s + "torgb.", False))
    for index, res in enumerate(resolutions[1:]):
        b, scope = "synthesis.b%d." % res, "%dx%d/" % (res, res)
        out["noise%d" % (2 * index + 1)] = ada[b + "conv0.noise_const"][None, None]
        out["noise%d" % (2 * index + 2)] = ada[b + "conv1.noise_const"][None, None]
        out.update(_layer_vars(scope + "Conv0_up", ada, b + "conv0.", True))
        out.update(_layer_vars(scope + "Conv1", ada, b + "conv1.", False))
        out.update(_layer_vars(scope + "ToRGB", ada, b + "torgb.", False))
    return out


def _static_kwargs(g_ema: AdaModule) -> Dict[str, Any]:
    """ada's constructor kwargs in the TF names :func:`stylegan2.layout.describe` checks (refusing what our
    engines do not implement, e.g. another ``architecture`` or an active ``conv_clamp``)."""
    kw, mapping = g_ema.kwargs(), dict(g_ema.kwargs().get("mapping_kwargs") or {})
    synthesis = dict(kw.get("synthesis_kwargs") or {})
    if kw.get("c_dim", 0):
        raise ModelFileError("conditional generators (c_dim=%r) are not supported" % kw["c_dim"])
    w_dim = int(kw.get("w_dim", 512))
    return {
        "resolution": int(kw["img_resolution"]), "num_channels": int(kw.get("img_channels", 3)),
        "latent_size": int(kw.get("z_dim", 512)), "dlatent_size": w_dim,
        "mapping_layers": int(mapping.get("num_layers", 8)),
        "mapping_fmaps": int(mapping.get("layer_features") or w_dim),
        "mapping_lrmul": float(mapping.get("lr_multiplier", 0.01)),
        "fmap_base": int(synthesis.get("channel_base", 32768)) // 2,
        "fmap_max": int(synthesis.get("channel_max", 512)),
        "architecture": synthesis.get("architecture", "skip"),
        "conv_clamp": synthesis.get("conv_clamp"),
        "truncation_psi": 1.0,  # ada's G has no default truncation (TF's Gs defaults to 0.5)
    }


def to_gs_record(g_ema: AdaModule) -> NetworkRecord:
    """``G_ema`` as the TF ``Gs`` record our loaders produce, so every feature runs on it unchanged."""
    ada = g_ema.tensors()
    kw = _static_kwargs(g_ema)
    resolutions = tuple(int(r) for r in g_ema.child("synthesis").state.get("block_resolutions", ()))
    try:
        mapping_vars = OrderedDict()
        for i in range(kw["mapping_layers"]):
            mapping_vars["Dense%d/weight" % i] = np.ascontiguousarray(ada["mapping.fc%d.weight" % i].T)
            mapping_vars["Dense%d/bias" % i] = ada["mapping.fc%d.bias" % i]
        synthesis_vars = _synthesis_vars(ada, resolutions)
        w_avg = ada["mapping.w_avg"]
    except KeyError as exc:
        raise ModelFileError("the snapshot's G_ema lacks %s" % exc) from None
    gs_vars = OrderedDict([("lod", np.zeros((), np.float32)), ("dlatent_avg", w_avg)])
    return NetworkRecord("Gs", kw, gs_vars, OrderedDict([
        ("synthesis", NetworkRecord("G_synthesis", {}, synthesis_vars)),
        ("mapping", NetworkRecord("G_mapping", {}, mapping_vars)),
    ]))


def load_generator_bytes(data: bytes, source: str = "snapshot") -> NetworkRecord:
    """A snapshot's ``G_ema`` as a TF ``Gs`` record (what :func:`stylegan2.pickles.load_generator` returns)."""
    return to_gs_record(load_g_ema(data, source))
