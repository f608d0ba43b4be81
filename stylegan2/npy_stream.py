"""A .npy file written a batch at a time: the header first, rows appended, so a run over many seeds never
holds the whole array in memory (``generate --seeds 0-100000``). Rows go to ``NAME.partial``, which takes its
real name only once every declared row is there: an interrupted run leaves no .npy that np.load misreads."""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Optional, Tuple

import numpy as np


class NpyStream:
    """``with NpyStream(path, shape) as stream: stream.append(rows)`` … until ``shape[0]`` rows are written."""

    def __init__(self, path: Path, shape: Tuple[int, ...], dtype: type = np.float32) -> None:
        self.path, self.shape, self.dtype = Path(path), tuple(int(n) for n in shape), np.dtype(dtype)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.rows = 0
        self._file: Optional[BinaryIO] = None

    def __enter__(self) -> "NpyStream":
        self._file = open(str(self.partial), "wb")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        np.lib.format.write_array_header_1_0(self._file, header)
        return self

    def append(self, rows: np.ndarray) -> None:
        if tuple(rows.shape[1:]) != self.shape[1:] or self.rows + len(rows) > self.shape[0]:
            raise ValueError("%s: rows of shape %s do not fit an array of %s with %d rows written"
                             % (self.path.name, list(rows.shape), list(self.shape), self.rows))
        self._file.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
        self.rows += len(rows)

    def __exit__(self, kind, value, traceback) -> None:
        self._file.close()
        if kind is None and self.rows == self.shape[0]:
            os.replace(str(self.partial), str(self.path))
            return
        os.unlink(str(self.partial))
        if kind is None:
            raise ValueError("%s: %d of %d rows written" % (self.path.name, self.rows, self.shape[0]))
