"""Where the explorer's Export buttons write, and under what name.

The file stem comes from a text box, i.e. from the browser, which in a dashboard is anyone who can
open the page: it is never used as a path. ``safe_stem`` keeps letters, digits, ``-``, ``_``
and inner dots and drops everything else (slashes, ``..``, NUL, markup); the file always lands in
the explorer's export folder, under the export root: ``$INFERVIZ_EXPORT_DIR``, or
``~/inferviz-exports`` (never the working directory, which is often a repository's
``notebooks/``):

- in a notebook, the export root itself (``Explorer(export_dir=...)`` chooses another folder);
- in a dashboard (``inferviz demo --export-dir DIR`` sets ``$INFERVIZ_EXPORT_DIR`` and
  ``$INFERVIZ_EXPORT_PER_SESSION``), a folder of its own for each session (``session-XXXXXXXX``,
  mode 0700) under the root, so two users of one dashboard never overwrite each other's files.

The Python methods ``Explorer.to_csv(path)`` etc. take any path: a notebook's code is the user's.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

EXPORT_DIR_ENV = "INFERVIZ_EXPORT_DIR"
PER_SESSION_ENV = "INFERVIZ_EXPORT_PER_SESSION"  # set by the dashboard server for its kernels
DEFAULT_EXPORT_DIR = "~/inferviz-exports"
MAX_STEM = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_stem(text: str) -> str:
    """A file stem that is one plain name: unsafe characters become ``_``, leading dots and
    separators are dropped, at most ``MAX_STEM`` characters. Raises ``ValueError`` when nothing
    is left (the box held only punctuation)."""
    if not isinstance(text, str):
        raise TypeError(f"file stem must be a str, got {type(text).__name__}")
    stem = _UNSAFE.sub("_", text.strip()).strip("._-")[:MAX_STEM].rstrip("._-")
    if not re.search(r"[A-Za-z0-9]", stem):
        raise ValueError("file stem must contain a letter or a digit (it is a file name, "
                         f"not a path); got {text[:40]!r}")
    return stem


def export_root() -> Path:
    """``$INFERVIZ_EXPORT_DIR`` when set (``~`` expanded), else ``~/inferviz-exports``."""
    folder = os.environ.get(EXPORT_DIR_ENV, "").strip()
    return Path(folder or DEFAULT_EXPORT_DIR).expanduser()


def default_export_dir() -> tuple[Path, bool]:
    """``(folder, per_session)``: a new per-session folder under the export root in a
    dashboard (``$INFERVIZ_EXPORT_PER_SESSION`` set), else the root itself (created on the
    first export)."""
    root = export_root()
    if os.environ.get(PER_SESSION_ENV):
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return Path(tempfile.mkdtemp(prefix="session-", dir=root)), True
    return root, False


def export_path(folder: Path, stem_text: str, fmt: str) -> Path:
    """The file the Export button writes: ``folder / (safe_stem(stem_text) + "." + fmt)``,
    checked to lie directly in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{safe_stem(stem_text)}.{fmt}"
    if path.resolve().parent != folder.resolve():  # cannot happen after safe_stem; kept as a guard
        raise ValueError(f"export path {path} is outside the export folder {folder}")
    return path
