"""Safe reader and writer of the official StyleGAN2 TensorFlow pickle format (spec §1).

The original loader rebuilds networks by executing source code stored in the pickle. We never do:
a restricted unpickler resolves only the NumPy reconstruction globals and maps
``dnnlib.tflib.network.Network`` to an inert record. ``build_module_src`` is kept as text only.
"""
from __future__ import annotations

import io
import pickle
import pickletools
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple, Union

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


_LATIN1 = ("latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1")
ARRAY_BYTES_PER_FILE_BYTE = 2  # array data may be at most this multiple of the file size (+ slack) …
ARRAY_BYTES_SLACK = 1 << 20
MAX_COMPONENT_DEPTH = 8  # … networks nest this deep at most (official files: 2) …
MAX_KWARGS_DEPTH = 32  # … and so do their settings


def _nbytes(shape: Any, dtype: Any) -> int:
    """Bytes of an array of ``shape`` and ``dtype`` (exact Python integers: no overflow)."""
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    if not all(isinstance(d, int) and d >= 0 for d in dims):
        raise ModelFileError("the model file holds an array with an invalid shape %r" % (shape,))
    count = 1
    for dim in dims:
        count *= dim
    return count * _safe_dtype(dtype).itemsize


class _Budget:
    """Bytes the unpickler may create (arrays, decoded strings), bounded by a multiple of the file size: a
    few hundred bytes of opcodes can otherwise ask for gigabytes (resource bombs), with no code run."""

    def __init__(self, file_bytes: int, source: str) -> None:
        self.limit = file_bytes * ARRAY_BYTES_PER_FILE_BYTE + ARRAY_BYTES_SLACK
        self.used, self.source = 0, source

    def charge(self, nbytes: int) -> None:
        self.used += nbytes
        if self.used > self.limit:
            raise ModelFileError("%s asks for more than %d MB of data, more than a file of its size can hold; "
                                 "it is malformed or a resource bomb — refused. Use the official file."
                                 % (self.source, self.limit >> 20))


def _budgeted_globals(budget: _Budget) -> Dict[Tuple[str, str], Any]:
    """The allow-list, with every constructor that allocates charging the load's budget first."""
    core = _numpy_core()

    def new_array(cls: type, shape: Any, dtype: Any = float, *args: Any, **kwargs: Any) -> np.ndarray:
        budget.charge(_nbytes(shape, dtype))
        return np.ndarray.__new__(cls, shape, dtype, *args, **kwargs)

    def set_array_state(self: np.ndarray, state: Any) -> None:
        if isinstance(state, tuple) and len(state) in (4, 5):
            budget.charge(_nbytes(state[-4], state[-3]))
        np.ndarray.__setstate__(self, state)

    array_type = type("ndarray", (np.ndarray,), {"__new__": new_array, "__setstate__": set_array_state})

    def reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        if subtype is not array_type:
            raise UnsafeModelError("the model file rebuilds an array of type %r; refused" % (subtype,))
        budget.charge(_nbytes(shape, dtype))
        return core.multiarray._reconstruct(subtype, shape, dtype)

    def frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
        budget.charge(_nbytes(shape, dtype))
        return core.numeric._frombuffer(buffer, _safe_dtype(dtype), shape, order)

    def encode(text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        """Only what pickle itself writes (bytes as latin-1 text): other codecs could grow data at will."""
        if not isinstance(text, str) or str(encoding).lower() not in _LATIN1:
            raise ModelFileError("the model file decodes data with %r (only latin-1, as pickle writes it); refused"
                                 % (encoding,))
        budget.charge(len(text))
        return text.encode("latin-1")

    table: Dict[Tuple[str, str], Any] = {
        (NETWORK_MODULE, NETWORK_CLASS): _NetworkState,
        ("numpy", "ndarray"): array_type,
        ("numpy", "dtype"): _safe_dtype,
        ("dnnlib.util", "EasyDict"): dict,
        ("_codecs", "encode"): encode,
    }
    for prefix in ("numpy.core", "numpy._core"):
        table[(prefix + ".multiarray", "_reconstruct")] = reconstruct
        table[(prefix + ".multiarray", "scalar")] = core.multiarray.scalar
        table[(prefix + ".numeric", "_frombuffer")] = frombuffer
    return table


ALLOWED_GLOBALS = frozenset(_budgeted_globals(_Budget(0, "")))
# What the unpickler allocates for one opcode beyond the bytes of its argument: a stack slot, and for the
# opcodes that make a new container its empty object (CPython sizes, rounded up). One byte of EMPTY_SET is a
# 216-byte set: 4 MB of them are 1 GB.
OPCODE_BYTES = 16
CONTAINER_BYTES = {"EMPTY_SET": 232, "FROZENSET": 232, "EMPTY_DICT": 80, "DICT": 80, "EMPTY_LIST": 72, "LIST": 72,
                   "TUPLE": 64, "TUPLE1": 64, "TUPLE2": 72, "TUPLE3": 80, "MARK": 8}
MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


# What pickletools says when the opcodes run past the end of the data: the file was cut short.
_RAN_OUT = ("remain", "exhausted", "not enough data", "no newline found")


def _opcodes(data: bytes) -> Iterator[Tuple[Any, Any]]:
    """(opcode, argument) pairs; EOFError when the data ends mid-pickle, as the unpickler itself would say."""
    try:
        for opcode, arg, _ in pickletools.genops(data):
            yield opcode, arg
    except ValueError as exc:
        if any(words in str(exc) for words in _RAN_OUT):
            raise EOFError(str(exc)) from None
        raise


def _scan_opcodes(data: bytes, budget: _Budget) -> None:
    """Walk the opcodes before anything is built: what they would allocate is charged to the load's budget,
    and a memo index past the entries made so far is refused (the unpickler grows its memo table to the
    index: a 21-byte pickle that stores at index 2^25 asks for half a gigabyte). Writers number memo entries
    0, 1, 2, …"""
    entries = 0
    for opcode, arg in _opcodes(data):
        if opcode.name in MEMO_PUTS:
            if int(arg) > entries:
                raise ModelFileError("%s stores at memo index %s after %d entries; it is malformed or a resource "
                                     "bomb — refused. Use the official file." % (budget.source, arg, entries))
            entries += 1
        elif opcode.name == "MEMOIZE":
            entries += 1
        budget.charge(OPCODE_BYTES + CONTAINER_BYTES.get(opcode.name, 0))


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, source: str) -> None:
        super().__init__(io.BytesIO(data), encoding="latin1")
        budget = _Budget(len(data), source)
        _scan_opcodes(data, budget)
        self._allowed = _budgeted_globals(budget)

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


def _check_nesting(value: Any, source: str) -> None:
    """Containers in the settings nest at most MAX_KWARGS_DEPTH deep (walked without recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_KWARGS_DEPTH:
            raise ModelFileError("%s has settings nested deeper than %d levels; refused" % (source, MAX_KWARGS_DEPTH))
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)


def _to_record(obj: Any, source: str, depth: int = 0) -> NetworkRecord:
    if not isinstance(obj, _NetworkState):
        raise ModelFileError("%s holds %s where a network was expected" % (source, type(obj).__name__))
    if depth > MAX_COMPONENT_DEPTH:
        raise ModelFileError("%s nests networks deeper than %d levels; refused" % (source, MAX_COMPONENT_DEPTH))
    state = obj.__dict__
    _check_nesting(state.get("static_kwargs"), source)
    try:
        raw_vars = state["variables"]
        variables = OrderedDict((str(k), np.asarray(v, dtype=np.float32)) for k, v in raw_vars)
        children = dict(state.get("components") or {})
        components = OrderedDict((str(key), _to_record(value, source, depth + 1)) for key, value in children.items())
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
        obj = _RestrictedUnpickler(data, source).load()
    except (UnsafeModelError, ModelFileError):
        raise
    except (RecursionError, MemoryError):
        raise ModelFileError("%s is nested too deeply or too large to be a model file; refused" % source) from None
    except (EOFError, pickle.UnpicklingError, ValueError, IndexError, TypeError, AttributeError) as exc:
        if isinstance(exc, EOFError) or "truncated" in str(exc):
            raise ModelFileError(
                "%s is truncated (%d bytes) — the download was cut short; download it again" % (source, len(data))
            ) from None
        raise ModelFileError("%s is not a readable StyleGAN2 pickle: %s" % (source, exc)) from None
    if isinstance(obj, tuple):
        return tuple(_to_record(item, source) for item in obj)
    return _to_record(obj, source)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError("model file not found: %s (run preload.sh, or make-tiny for test models)" % path) from None


def load(path: Union[str, Path]) -> Loaded:
    """Read an official pickle from disk without executing anything in it."""
    return loads(_read(Path(path)), str(path))


def load_generator(path: Union[str, Path]) -> NetworkRecord:
    """The ``Gs`` network of a ``(G, D, Gs)`` file (spec §1.1: only Gs is used for inference), or the
    ``G_ema`` of a StyleGAN2-ADA snapshot as the same record (recognised by content)."""
    from . import ada_snapshot  # builds on this module

    data = _read(Path(path))  # once: a config-f file is 360 MB, and start-up used to read it twice here
    if ada_snapshot.is_ada_snapshot(data[:ada_snapshot.HEAD_BYTES]):
        return ada_snapshot.load_generator_bytes(data, str(path))
    loaded = loads(data, str(path))
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
            if (module, qualname) not in ALLOWED_GLOBALS:
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
