"""Writing files without losing what was there: every file inferviz writes goes through
``write_text`` / ``write_bytes`` here, which write a temporary file in the same folder and
rename it over the target (``os.replace`` is atomic on POSIX and Windows). A write that fails
half-way (an encoding error, a full disk, Ctrl-C) leaves the old file as it was and no
temporary file behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    return write_chunks(path, [data])


def write_chunks(path: str | os.PathLike, chunks: Iterable[bytes]) -> Path:
    """Write the byte chunks one after another to ``path`` atomically (a file too large to
    hold in memory, e.g. a model assembled from parts); returns the path. An error while
    the chunks are produced counts as a failed write: the old file stays."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Encode ``text`` first (an unencodable character raises before the file is touched),
    then write it atomically."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return write_bytes(path, text.encode(encoding))
