"""The explorer's Path and Logit lens tabs: the selected path as shaded text (a token click
selects its node in the tree, docs/text-view.md) over its per-token table, and the logit lens
of the selected node, computed when its tab is open."""

from __future__ import annotations

from typing import Any, Callable

import ipywidgets as widgets

from ...backends import ServerLacks
from ...html_text import esc
from ...tree import TokenTree
from ..export.token_table_html import token_table_html
from ..views.text_view import TextView


class PathTab(widgets.VBox):
    """``text_view`` (None until a tree is shown) and ``table_html``."""

    def __init__(self) -> None:
        self.text_view: TextView | None = None
        self.text_box = widgets.VBox([])
        self.table_html = widgets.HTML("")
        super().__init__([self.text_box, self.table_html])

    def new_tree(self, tree: TokenTree, on_token: Callable[[int | None], None]) -> None:
        """A text view of ``tree``; ``on_token(node_id)`` hears its token clicks."""
        if self.text_view is not None:
            self.text_view.close()
        self.text_view = TextView(tree, tree.root_id)
        self.text_view.observe(lambda c: on_token(c["new"]), names="selected")
        self.text_box.children = [self.text_view]

    def follow(self, node_id: int) -> None:
        """Show the selected node's path, or keep the shown path when the node is on it (a
        token clicked in the text view selects an earlier node of the same path)."""
        view = self.text_view
        if view is None:
            return
        if node_id in view.path_ids():
            view.selected = node_id
        else:
            view.show(node_id, selected=node_id)

    def show_table(self, session: Any, tree: TokenTree, node_id: int) -> None:
        try:
            self.table_html.value = token_table_html(session.token_table(tree, node_id))
        except ServerLacks as err:  # a server without prompt log-probabilities
            self.table_html.value = f"<i>{esc(err)}</i>"


class LensTab(widgets.VBox):
    """The logit lens of one node, kept until another node (or tree) is shown."""

    def __init__(self) -> None:
        self._shown_for: tuple[int, int] | None = None
        super().__init__([])

    def forget(self) -> None:
        self._shown_for = None

    def shows(self, tree: TokenTree, node_id: int) -> bool:
        return (id(tree), node_id) == self._shown_for

    def say(self, message: str) -> None:
        self.children = [widgets.HTML(f"<i>{message}</i>")]

    def show(self, session: Any, tree: TokenTree, node_id: int) -> None:
        self.say("computing the logit lens…")
        try:
            lens = session.logit_lens((tree, node_id))
        except ServerLacks as err:  # a server returns no hidden states
            self.say(esc(err))
            self._shown_for = (id(tree), node_id)
            return
        self.children = [lens.widget()]
        self._shown_for = (id(tree), node_id)
