"""A photo given as a path, bytes or an open file, turned into what a multipart upload needs: a file name
(the server logs it and names downloads after it) and the bytes."""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Tuple, Union

Photo = Union[str, "os.PathLike[str]", bytes, bytearray, BinaryIO]


def read_photo(photo: Photo) -> Tuple[str, bytes]:
    """``(file name, bytes)``; a file object is read from where it stands, and not closed."""
    if isinstance(photo, (bytes, bytearray)):
        return "photo", bytes(photo)
    if isinstance(photo, (str, os.PathLike)):
        path = Path(photo)
        return path.name, path.read_bytes()
    if hasattr(photo, "read"):
        data = photo.read()
        if not isinstance(data, bytes):
            raise TypeError("open the photo in binary mode ('rb'): read() gave %s" % type(data).__name__)
        return Path(str(getattr(photo, "name", "photo"))).name or "photo", data
    raise TypeError("a photo is a path, bytes or a binary file object, not %s" % type(photo).__name__)
