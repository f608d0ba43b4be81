"""The fast-mode student: a small image-to-image U-Net distilled from projection + blended synthesis (issue #18).

Engine-neutral part: the weight file (a plain ``.npz``, no code, no pickle), the architecture derived from the
weights' names and shapes, a seeded initialisation, and the arithmetic cost. Both engines build the same
forward pass from these arrays (``stylegan2/tf/student.py``, ``stylegan2/torch/student.py``):

    x = [rgb in [-1, 1]] (+ a constant strength plane when the student was trained with strength input)
    e0 = lrelu(conv3×3(x))                                   at R
    e_i = lrelu(conv3×3(lrelu(conv3×3 stride 2(e_{i-1}))))   at R / 2^i, i = 1..depth
    d_depth = e_depth + position                              (a learned [R/2^depth]² map: where things are)
    d_{i-1} = lrelu(conv3×3(concat(nearest_up2(d_i), e_{i-1})))
    toon = conv1×1_skip(x) + mean + conv1×1_out(d_0)

``skip`` (a colour map of the input) and ``mean`` (an [R, R, 3] image) are the best linear answer and start
from a least-squares fit to the pairs (``fit_linear``); the U-Net learns what is left. Untrained (skip = the
identity, mean = 0, out = 0) a student returns its input.

The position map gives the convolutions what they cannot know alone in an aligned face — where in the frame
they are — and ties a student to the face size it was trained at. Stride-2 convs pad one pixel on every
side (so both engines agree; TF's SAME would pad asymmetrically).
Kernels are stored HWIO like the official pickles; the torch engine transposes them.
"""
from __future__ import annotations

import json
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Tuple, TypeVar

import numpy as np
from typing_extensions import Protocol

from .constants import LRELU_SLOPE
from .errors import ModelStructureError

FORMAT = "toonify-student-unet/1"
DEFAULT_CHANNELS = (16, 32, 64, 128)
META_KEY = "__meta__"


@dataclass
class StudentSpec:
    """Validated student weights: conv kernels HWIO and biases by layer name, plus metadata."""

    channels: Tuple[int, ...]  # c0 … c_depth
    in_channels: int  # 3, or 4 with a strength plane
    weights: "OrderedDict[str, np.ndarray]"
    meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return len(self.channels) - 1

    @property
    def takes_strength(self) -> bool:
        return self.in_channels == 4

    @property
    def resolution(self) -> int:
        """The aligned-face side the student was trained at, and the only one it runs at."""
        return int(self.weights["position"].shape[0]) * 2 ** self.depth

    @property
    def num_params(self) -> int:
        return int(sum(v.size for v in self.weights.values()))


def layer_shapes(channels: Sequence[int], in_channels: int, resolution: int) -> "OrderedDict[str, Tuple[int, ...]]":
    """Every variable's name and HWIO / bias shape, in forward order."""
    shapes: "OrderedDict[str, Tuple[int, ...]]" = OrderedDict()

    def conv(name: str, k: int, cin: int, cout: int) -> None:
        shapes[name + "/weight"] = (k, k, cin, cout)
        shapes[name + "/bias"] = (cout,)

    conv("in", 3, in_channels, channels[0])
    for i in range(1, len(channels)):
        conv("down%d" % i, 3, channels[i - 1], channels[i])
        conv("down%d_b" % i, 3, channels[i], channels[i])
    side = resolution // 2 ** (len(channels) - 1)
    shapes["position"] = (side, side, channels[-1])
    for i in range(len(channels) - 1, 0, -1):
        conv("up%d" % i, 3, channels[i] + channels[i - 1], channels[i - 1])
    conv("out", 1, channels[0], 3)
    conv("skip", 1, in_channels, 3)
    shapes["mean"] = (resolution, resolution, 3)
    return shapes


def describe_student(weights: Mapping[str, np.ndarray], meta: Mapping[str, Any] = None) -> StudentSpec:
    """Derive channels from the weights and check every name and shape against them."""
    if "in/weight" not in weights:
        raise ModelStructureError("student weights have no 'in/weight': not a toonify student file")
    in_channels, c0 = weights["in/weight"].shape[2:]
    channels = [int(c0)]
    while "down%d/weight" % len(channels) in weights:
        channels.append(int(weights["down%d/weight" % len(channels)].shape[3]))
    if in_channels not in (3, 4):
        raise ModelStructureError("student input must have 3 (RGB) or 4 (RGB + strength) channels; got %d"
                                  % in_channels)
    side = weights["position"].shape[0] if "position" in weights else 0
    expected = layer_shapes(channels, int(in_channels), int(side) * 2 ** (len(channels) - 1))
    if set(expected) != set(weights):
        missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
        raise ModelStructureError("student weights do not match a U-Net of channels %s: missing %s, unexpected %s"
                                  % (channels, missing[:4], extra[:4]))
    ordered: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for name, shape in expected.items():
        value = np.asarray(weights[name], dtype=np.float32)
        if value.shape != shape:
            raise ModelStructureError("student variable %s has shape %s; expected %s" % (name, value.shape, shape))
        if not np.all(np.isfinite(value)):
            raise ModelStructureError("student variable %s holds NaN or infinite values" % name)
        ordered[name] = value
    return StudentSpec(tuple(channels), int(in_channels), ordered, dict(meta or {}))


def init_student(resolution: int, channels: Sequence[int] = DEFAULT_CHANNELS, strength_input: bool = False,
                 seed: int = 0, meta: Mapping[str, Any] = None) -> StudentSpec:
    """He-initialised kernels for lrelu, zero biases, a zero output layer and an identity skip: an untrained
    student returns its input unchanged (the identity is where learning the change starts)."""
    rnd = np.random.RandomState(seed)
    weights: "OrderedDict[str, np.ndarray]" = OrderedDict()
    if resolution % 2 ** (len(channels) - 1):
        raise ValueError("the resolution %d is not divisible by 2^depth = %d" % (resolution, 2 ** (len(channels) - 1)))
    for name, shape in layer_shapes(channels, 4 if strength_input else 3, resolution).items():
        if name == "skip/weight":
            weights[name] = np.eye(shape[2], 3, dtype=np.float32)[None, None]
        elif name.endswith("bias") or name.startswith(("out/", "skip/", "position", "mean")):
            weights[name] = np.zeros(shape, np.float32)
        else:
            fan_in = shape[0] * shape[1] * shape[2]
            gain = np.sqrt(2.0 / (1.0 + LRELU_SLOPE ** 2))
            weights[name] = (rnd.randn(*shape) * gain / np.sqrt(fan_in)).astype(np.float32)
    return describe_student(weights, meta)


def fit_linear(faces: np.ndarray, toons: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Least squares toon ≈ A·face + m(pixel) over pairs in [-1, 1] NHWC: one 3×3 colour map A shared by all
    pixels and a per-pixel intercept m. Returns (A as a 1×1 HWIO kernel [1, 1, 3, 3], m [R, R, 3])."""
    faces, toons = faces.astype(np.float64), toons.astype(np.float64)
    face_mean, toon_mean = faces.mean(axis=0), toons.mean(axis=0)
    x = (faces - face_mean).reshape(-1, 3)
    y = (toons - toon_mean).reshape(-1, 3)
    colour = np.linalg.lstsq(x, y, rcond=None)[0]  # [3 in, 3 out]
    intercept = toon_mean - face_mean @ colour
    return colour[None, None].astype(np.float32), intercept.astype(np.float32)


def save_student(spec: StudentSpec, path: Path) -> None:
    """Atomic write of a plain .npz (arrays only: np.load never needs allow_pickle for it)."""
    path = Path(path)
    meta = dict(spec.meta, format=FORMAT, channels=list(spec.channels), in_channels=spec.in_channels)
    arrays = dict(spec.weights)
    arrays[META_KEY] = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(str(tmp), **arrays)
    tmp.replace(path)


NPZ_BYTES_PER_FILE_BYTE = 2  # arrays may hold at most this multiple of the file's size (+ slack): np.savez stores
NPZ_BYTES_SLACK = 1 << 20  # them uncompressed, so a member that inflates far beyond that is a bomb
NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def check_npz_sizes(path: Path) -> None:
    """Refuse an .npz whose members would inflate past what its size allows, from the zip directory (each
    member's uncompressed size) and each .npy header (the array it would allocate), before any is read."""
    limit = Path(path).stat().st_size * NPZ_BYTES_PER_FILE_BYTE + NPZ_BYTES_SLACK
    with zipfile.ZipFile(str(path)) as archive:
        members = archive.infolist()
        if sum(member.file_size for member in members) > limit:
            raise ModelStructureError("%s inflates to %d MB, more than a file of its size can hold; it is malformed "
                                      "or a resource bomb — refused" % (path, sum(m.file_size for m in members) >> 20))
        for member in members:
            with archive.open(member) as stream:
                read_header = NPY_HEADERS.get(np.lib.format.read_magic(stream))
                if read_header is None:
                    raise ModelStructureError("%s: %s is not a version 1 or 2 .npy array" % (path, member.filename))
                shape, _, dtype = read_header(stream)
            count = 1
            for dim in shape:
                count *= dim
            if dtype.hasobject or count * dtype.itemsize > member.file_size:
                raise ModelStructureError("%s: %s declares a %s array of %s that its %d bytes cannot hold; refused"
                                          % (path, member.filename, "x".join(map(str, shape)), dtype, member.file_size))


def load_student(path: Path) -> StudentSpec:
    """Read and validate a student file; never unpickles, and inflates nothing before its sizes are checked."""
    try:
        check_npz_sizes(path)
        with np.load(str(path), allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelStructureError("%s is not a readable student file (.npz): %s" % (path, exc)) from None
    meta_bytes = arrays.pop(META_KEY, None)
    meta = json.loads(meta_bytes.tobytes().decode("utf-8")) if meta_bytes is not None else {}
    if meta.get("format") != FORMAT:
        raise ModelStructureError("%s has format %r; this version reads %r" % (path, meta.get("format"), FORMAT))
    return describe_student(arrays, meta)


def check_size(spec: StudentSpec, size: int) -> None:
    if size != spec.resolution:
        raise ValueError("this student runs on %d² aligned faces; got %d²" % (spec.resolution, size))


def strength_plane(images: np.ndarray, strength: float) -> np.ndarray:
    """[B, H, W, 1] filled with ``strength``: the extra input of a strength-aware student."""
    return np.full(images.shape[:3] + (1,), strength, np.float32)


def to_unit_range(images_uint8: np.ndarray) -> np.ndarray:
    """uint8 NHWC → float32 NHWC in [-1, 1] (the generator's output range)."""
    return images_uint8.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def from_unit_range(images: np.ndarray) -> np.ndarray:
    """float NHWC in [-1, 1] → uint8, the same rounding as the generator's output (spec §3.9)."""
    return np.clip(images * np.float32(127.5) + np.float32(128), 0, 255).astype(np.uint8)


def forward_flops(spec_or_channels, resolution: int, in_channels: int = 3) -> Dict[str, float]:
    """Multiply-adds ×2 of one forward at ``resolution``², and the largest activation (floats), per image."""
    channels = spec_or_channels.channels if isinstance(spec_or_channels, StudentSpec) else tuple(spec_or_channels)
    if isinstance(spec_or_channels, StudentSpec):
        in_channels = spec_or_channels.in_channels
    flops = 0.0
    activations = 0.0  # every tensor a training step keeps for backward
    size = resolution
    flops += 2 * 9 * in_channels * channels[0] * size * size
    activations += channels[0] * size * size
    for i in range(1, len(channels)):
        size //= 2
        flops += 2 * 9 * channels[i - 1] * channels[i] * size * size + 2 * 9 * channels[i] ** 2 * size * size
        activations += 2 * channels[i] * size * size
    for i in range(len(channels) - 1, 0, -1):
        flops += 2 * 9 * (channels[i] + channels[i - 1]) * channels[i - 1] * size * size * 4
        activations += (channels[i] + 2 * channels[i - 1]) * size * size * 4
        size *= 2
    flops += 2 * (channels[0] + in_channels) * 3 * resolution * resolution
    return {"flops": flops, "activation_floats": activations}


Tensor = TypeVar("Tensor")


class UNetLayers(Protocol[Tensor]):
    """What an engine supplies for the student's forward pass; unet() wires it the same way in both."""

    def conv(self, x: Tensor, name: str, stride: int = 1) -> Tensor:
        """The convolution ``name`` (weights ``name/weight``, ``name/bias``), padded by k//2 on each side."""

    def lrelu(self, x: Tensor) -> Tensor:
        """Leaky ReLU with slope LRELU_SLOPE."""

    def up_concat(self, y: Tensor, skip: Tensor) -> Tensor:
        """``y`` upsampled 2× (nearest) with ``skip``'s channels appended."""

    def param(self, name: str) -> Tensor:
        """A map added as it is (``position``, ``mean``)."""


def unet(x: Tensor, layers: UNetLayers[Tensor], depth: int) -> Tensor:
    """The student's forward pass ([-1, 1] RGB, + strength plane → toon in [-1, 1], unclipped): an encoder of
    ``depth`` stride-2 stages, a learnt position map at the bottom, a decoder with skips, and the result added
    to the skip convolution of the input and the mean toon (see the module docstring)."""
    skips = [layers.lrelu(layers.conv(x, "in"))]
    for i in range(1, depth + 1):
        y = layers.lrelu(layers.conv(skips[-1], "down%d" % i, stride=2))
        skips.append(layers.lrelu(layers.conv(y, "down%d_b" % i)))
    y = skips[-1] + layers.param("position")
    for i in range(depth, 0, -1):
        y = layers.lrelu(layers.conv(layers.up_concat(y, skips[i - 1]), "up%d" % i))
    return layers.conv(x, "skip") + layers.param("mean") + layers.conv(y, "out")
