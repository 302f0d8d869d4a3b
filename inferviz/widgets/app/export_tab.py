"""The explorer's Export tab: a file stem box and one button a format (CSV, JSON, HTML); a
click writes the file into the export folder (``export.policy``) and gives the page its bytes
as a download link."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Callable

import ipywidgets as widgets

from ... import files
from ...html_text import esc
from ...tree import TokenTree
from ..export import policy as export_policy
from ..export.tree_page import tree_html

MIME = {"csv": "text/csv", "json": "application/json", "html": "text/html"}


def write_csv(tree: TokenTree, path: str | Path) -> Path:
    """The tree's DataFrame (``tree.to_pandas()``) as CSV."""
    return files.write_text(path, tree.to_pandas().to_csv(index=False))


def write_json(tree: TokenTree, path: str | Path) -> Path:
    """The tree as versioned JSON (``TokenTree.from_json`` reads it back)."""
    return files.write_text(path, tree.to_json(indent=1))


def write_html(session: Any, tree: TokenTree, selected: int | None, path: str | Path) -> Path:
    """A standalone offline HTML page of the tree view (read-only), with the attributions
    computed for this tree (the Why tab) under it."""
    done = []
    if getattr(session, "adapter", None) is not None:
        from ...attribution import cached

        done = cached(session, tree)
    return files.write_text(path, tree_html(tree, selected=selected, attributions=done))


class ExportTab(widgets.VBox):
    """``ExportTab(write, export_dir=None)``: ``write[fmt](path)`` writes one format."""

    def __init__(self, write: dict[str, Callable[[Path], Path]],
                 export_dir: Path | None = None) -> None:
        self._write = write
        self._export_dir = export_dir
        self._export_private = False
        self.stem = widgets.Text(value="inferviz_tree", description="file stem")
        self.buttons = {fmt: widgets.Button(description=f"Export {fmt.upper()}") for fmt in MIME}
        self.links = widgets.HTML("")
        super().__init__([widgets.HBox([self.stem, *self.buttons.values()]), self.links])

    @property
    def export_dir(self) -> Path:
        """Per session in a dashboard, ``./inferviz-exports`` in a notebook, or the folder
        given."""
        if self._export_dir is None:
            self._export_dir, self._export_private = export_policy.default_export_dir()
        return self._export_dir

    def export(self, fmt: str) -> None:
        """The stem box names a file in ``export_dir`` (never a path); the page gets the bytes
        as a download link."""
        path = export_policy.export_path(self.export_dir, self.stem.value or "inferviz_tree",
                                         fmt)
        self._write[fmt](path)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        where = ("this session's export folder" if self._export_private
                 else f"<code>{esc(self.export_dir)}</code>")
        self.links.value = (
            f"wrote <code>{esc(path.name)}</code> in {where} · <a download="
            f"'{esc(path.name)}' href='data:{MIME[fmt]};base64,{data}'>download</a>")
