"""What every inferviz anywidget shares: the browser may change only the traits a widget lists,
and only to values its checks accept; a widget that shows a tree follows it as it grows and
stops following when closed."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any, ClassVar

import anywidget

from ...tree import TokenTree
from . import protocol

# The bundles js/build.mjs writes (tree.js, lens.js, text_view.js and their stylesheets).
STATIC = Path(__file__).resolve().parents[2] / "static"


class ViewWidget(anywidget.AnyWidget):
    """An anywidget whose browser-side state is checked before the kernel takes it.

    ``browser_writable`` names the traits the browser may set; ``check_browser_value(name,
    value)`` raises :class:`~inferviz.widgets.views.protocol.ProtocolError` for a bad value.
    With ``browser_rejects_whole`` (the default) one bad value refuses the whole message and its
    text goes to the ``error`` trait; otherwise each valid value is taken on its own. Refused
    traits are sent back, so the view shows the kernel's state again; nothing raises in the
    kernel."""

    browser_writable: ClassVar[tuple[str, ...]] = ()
    browser_rejects_whole: ClassVar[bool] = True

    def check_browser_value(self, name: str, value: Any) -> None:
        """Raise ``protocol.ProtocolError`` if the browser may not set ``name`` to ``value``."""

    def browser_state_taken(self) -> None:
        """Called after values from the browser were set."""

    def set_state(self, sync_data: dict) -> None:
        offered = {k: v for k, v in sync_data.items() if k in self.browser_writable}
        refused = [k for k in sync_data if k not in self.browser_writable and k in self.keys]
        accepted: dict[str, Any] = {}
        for name, value in offered.items():
            try:
                self.check_browser_value(name, value)
            except protocol.ProtocolError as exc:
                if self.browser_rejects_whole:
                    self.error = str(exc)
                    self.send_state(list(offered) + refused)
                    return
                refused.append(name)
            else:
                accepted[name] = value
        if accepted:
            super().set_state(accepted)
            self.browser_state_taken()
        if refused:
            self.send_state(refused)

    # ----------------------------------------------------------- following a tree
    def follow_tree(self, tree: TokenTree) -> None:
        """Call ``self.tree_changed(node_ids)`` whenever ``tree`` changes, until :meth:`close`.
        The tree holds the widget weakly: a widget nobody shows can be collected."""
        self_ref = weakref.ref(self)

        def on_tree_change(node_ids: list[int]) -> None:
            widget = self_ref()
            if widget is not None:
                widget.tree_changed(node_ids)

        self._unsubscribe = tree.on_change(on_tree_change)

    def tree_changed(self, node_ids: list[int]) -> None:
        """The followed tree changed (``node_ids`` added or removed); re-read it with the
        widget's ``refresh()``."""
        self.refresh()

    def close(self) -> None:
        unsubscribe = getattr(self, "_unsubscribe", None)
        if unsubscribe is not None:
            unsubscribe()
            self._unsubscribe = None
        super().close()
