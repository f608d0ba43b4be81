"""Safe reader and writer of the official StyleGAN2 TensorFlow pickle format (spec §1).

The original loader rebuilds networks by executing source code stored in the pickle. We never do:
a restricted unpickler resolves only the NumPy reconstruction globals and maps
``dnnlib.tflib.network.Network`` to an inert record. ``build_module_src`` is kept as text only.
"""
from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import numpy as np

from .errors import ModelFileError, UnsafeModelError

NETWORK_MODULE = "dnnlib.tflib.network"
NETWORK_CLASS = "Network"
PICKLE_PROTOCOL = 4
_MIN_PICKLE_BYTES = 16


@dataclass
class NetworkRecord:
    """Plain data of one ``Network``: what the official ``__getstate__`` stores, nothing executable."""

    name: str
    static_kwargs: Dict[str, Any]
    variables: "OrderedDict[str, np.ndarray]"
    components: "OrderedDict[str, NetworkRecord]" = field(default_factory=OrderedDict)
    build_func_name: str = ""
    build_module_src: str = ""
    version: int = 4

    def component(self, key: str) -> "NetworkRecord":
        try:
            return self.components[key]
        except KeyError:
            raise ModelFileError(
                "network %r has no %r component (it has: %s)"
                % (self.name, key, ", ".join(self.components) or "none")
            ) from None


class _NetworkState:
    """Inert stand-in for ``dnnlib.tflib.network.Network``: BUILD fills ``__dict__``, nothing runs."""


def _numpy_core() -> Any:
    core = getattr(np, "_core", None)
    return core if core is not None and hasattr(core, "multiarray") else np.core


def _safe_dtype(spec: Any, *args: Any) -> np.dtype:
    dtype = np.dtype(spec, *args)
    if dtype.hasobject:
        raise UnsafeModelError("the model file contains an object array (dtype %r); refused" % (spec,))
    return dtype


def _allowed_globals() -> Dict[Tuple[str, str], Any]:
    core = _numpy_core()
    table: Dict[Tuple[str, str], Any] = {
        (NETWORK_MODULE, NETWORK_CLASS): _NetworkState,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _safe_dtype,
        ("dnnlib.util", "EasyDict"): dict,
        ("_codecs", "encode"): __import__("codecs").encode,
    }
    for prefix in ("numpy.core", "numpy._core"):
        table[(prefix + ".multiarray", "_reconstruct")] = core.multiarray._reconstruct
        table[(prefix + ".multiarray", "scalar")] = core.multiarray.scalar
        table[(prefix + ".numeric", "_frombuffer")] = core.numeric._frombuffer
    return table


class _RestrictedUnpickler(pickle.Unpickler):
    _allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafeModelError(
                "refusing to load %s.%s: model files may only contain arrays and network records, "
                "and this one asks for code. Use the official file." % (module, name)
            ) from None


def check_header(head: bytes, size: int, source: str) -> None:
    """Refuse obvious non-pickles before unpickling (spec §7.4: HTML pages start with '<')."""
    if size == 0:
        raise ModelFileError("%s is empty; download it again (see preload.sh)" % source)
    stripped = head.lstrip()
    if stripped[:1] == b"<":
        raise ModelFileError(
            "%s is an HTML page, not a model (a download link served a web page, e.g. Google Drive's "
            "'quota exceeded' or virus-scan page). Download the file again, or fetch it in a browser and "
            "place it by hand in the models directory." % source
        )
    if len(head) < 2 or head[0] != 0x80 or not 2 <= head[1] <= 5:
        raise ModelFileError(
            "%s is not a pickle file (starts with %r); expected an official StyleGAN2 .pkl" % (source, head[:8])
        )
    if size < _MIN_PICKLE_BYTES:
        raise ModelFileError("%s is truncated (%d bytes); download it again" % (source, size))


def _to_record(obj: Any, source: str) -> NetworkRecord:
    if not isinstance(obj, _NetworkState):
        raise ModelFileError("%s holds %s where a network was expected" % (source, type(obj).__name__))
    state = obj.__dict__
    try:
        raw_vars = state["variables"]
        variables = OrderedDict((str(k), np.asarray(v, dtype=np.float32)) for k, v in raw_vars)
        components = OrderedDict(
            (str(key), _to_record(value, source)) for key, value in dict(state.get("components") or {}).items()
        )
        return NetworkRecord(
            name=str(state.get("name", "")),
            static_kwargs=dict(state.get("static_kwargs") or {}),
            variables=variables,
            components=components,
            build_func_name=str(state.get("build_func_name", "")),
            build_module_src=str(state.get("build_module_src", "")),
            version=int(state.get("version", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError("%s has a malformed network record: %s" % (source, exc)) from None


Loaded = Union[NetworkRecord, Tuple[NetworkRecord, ...]]


def loads(data: bytes, source: str = "model data") -> Loaded:
    """Parse pickle bytes into network records (a tuple for (G, D, Gs) files, else one record)."""
    check_header(data[:16], len(data), source)
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafeModelError:
        raise
    except (EOFError, pickle.UnpicklingError, ValueError, IndexError, TypeError, AttributeError) as exc:
        if isinstance(exc, EOFError) or "truncated" in str(exc):
            raise ModelFileError(
                "%s is truncated (%d bytes) — the download was cut short; download it again" % (source, len(data))
            ) from None
        raise ModelFileError("%s is not a readable StyleGAN2 pickle: %s" % (source, exc)) from None
    if isinstance(obj, tuple):
        return tuple(_to_record(item, source) for item in obj)
    return _to_record(obj, source)


def load(path: Union[str, Path]) -> Loaded:
    """Read an official pickle from disk without executing anything in it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError("model file not found: %s (run preload.sh, or make-tiny for test models)" % path) from None
    return loads(data, str(path))


def load_generator(path: Union[str, Path]) -> NetworkRecord:
    """The ``Gs`` network of a ``(G, D, Gs)`` file (spec §1.1: only Gs is used for inference)."""
    loaded = load(path)
    if not isinstance(loaded, tuple) or len(loaded) != 3:
        raise ModelFileError("%s is not a (G, D, Gs) generator pickle" % path)
    return loaded[2]


def _state_of(record: NetworkRecord) -> "_NetworkState":
    stub = _NetworkState()
    variables = [
        (name, value.astype(np.float32) if value.ndim else np.float32(value))
        for name, value in record.variables.items()
    ]
    stub.__dict__.update(
        version=record.version,
        name=record.name,
        static_kwargs=dict(record.static_kwargs),
        components={key: _state_of(value) for key, value in record.components.items()},
        build_module_src=record.build_module_src,
        build_func_name=record.build_func_name,
        variables=variables,
    )
    return stub


class _OfficialPickler(pickle._Pickler):  # type: ignore[name-defined]
    """Pure-Python pickler that writes our stub under the official class path and NumPy 1.x names,
    so independent readers of the format (and NumPy 1.x) can load what we write."""

    def save_global(self, obj: Any, name: Any = None) -> None:
        if obj is _NetworkState:
            module, qualname = NETWORK_MODULE, NETWORK_CLASS
        else:
            module = getattr(obj, "__module__", "")
            qualname = name or getattr(obj, "__qualname__", obj.__name__)
            if module.startswith("numpy._core"):
                module = "numpy.core" + module[len("numpy._core"):]
            if (module, qualname) not in _RestrictedUnpickler._allowed:
                raise pickle.PicklingError("refusing to write global %s.%s" % (module, qualname))
        self.save(module)
        self.save(qualname)
        self.write(pickle.STACK_GLOBAL)
        self.memoize(obj)


def dumps(networks: Loaded) -> bytes:
    """Serialise records in the official format (protocol 4, ``dnnlib.tflib.network.Network`` states)."""
    obj: Any = tuple(_state_of(n) for n in networks) if isinstance(networks, tuple) else _state_of(networks)
    buffer = io.BytesIO()
    _OfficialPickler(buffer, protocol=PICKLE_PROTOCOL).dump(obj)
    return buffer.getvalue()


def save(networks: Loaded, path: Union[str, Path]) -> None:
    """Write atomically: a half-written model file must never sit under the final name."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(dumps(networks))
    tmp.replace(path)
