"""TreeWidget: a token tree you can click through, in Jupyter and Voila.

Synced state (``nodes`` is the source of truth, so a view rendered late shows the current tree):

- ``nodes``          columnar snapshot of the tree (see :mod:`inferviz.widgets.views.columns`) with a
                     ``version``; it is kept current in the kernel but not re-sent on each change:
                     live views get only the changed rows, as a delta message from ``version - 1``
                     to ``version`` (``inferviz:delta``), and a view that missed one asks for the
                     snapshot again (action ``snapshot``)
- ``k``, ``temperature``, ``top_k``, ``top_p``, ``min_p``  settings for the next expansion
- ``param_schema``   the bar's boxes: each setting's name, type, range, default and help
- ``selected``       node id or None; ``selected_text`` is the prompt + completion up to it
- ``pending``        node ids being expanded right now
- ``error``          the last error message ("" once a later action or setting worked)
- ``read_only``      True when there is no session to expand with
- ``height``         the view's maximum height in pixels (it grows to fit the tree up to this)

The browser may write only the settings and ``selected``; expansion requests arrive as custom
messages (see :mod:`inferviz.widgets.views.protocol`) and are answered with a response message.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import anywidget
import traitlets

from ...tree import TokenTree
from ...validate import is_int
from . import protocol
from .base import STATIC, ViewWidget
from .columns import changed_rows, encode_columns, encode_delta

log = logging.getLogger(__name__)

class TreeWidget(ViewWidget):
    """Interactive view of a :class:`~inferviz.tree.TokenTree`.

    ``TreeWidget(tree, session=s)`` lets a click on a node call
    ``s.expand(tree, node_id, k=..., temperature=..., top_k=..., top_p=..., min_p=...)``;
    without a session the tree is read-only. The widget follows ``tree`` as it grows.
    """

    _esm = STATIC / "tree.js"
    _css = STATIC / "tree.css"
    # Traits the browser is allowed to change; anything else it sends is ignored.
    browser_writable = ("k", "temperature", "top_k", "top_p", "min_p", "selected")

    nodes = traitlets.Dict().tag(sync=True)
    k = traitlets.Int(5).tag(sync=True)
    temperature = traitlets.Float(1.0).tag(sync=True)
    top_k = traitlets.Int(None, allow_none=True).tag(sync=True)
    top_p = traitlets.Float(None, allow_none=True).tag(sync=True)
    min_p = traitlets.Float(None, allow_none=True).tag(sync=True)
    selected = traitlets.Int(None, allow_none=True).tag(sync=True)
    selected_text = traitlets.Unicode("").tag(sync=True)
    pending = traitlets.List(traitlets.Int()).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    read_only = traitlets.Bool(True).tag(sync=True)
    height = traitlets.Int(560).tag(sync=True)
    # The boxes of the bar (k and the sampler parameters a click takes): name, type, range,
    # default and help of each, from ``protocol.click_params()``; the browser only reads it.
    param_schema = traitlets.List(traitlets.Dict()).tag(sync=True)
    # What clicks keep to (set from Python through ``constraint``; the browser only shows it).
    constraint_label = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        tree: TokenTree,
        session: Any = None,
        k: int = 5,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        min_p: float | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(tree, TokenTree):
            raise TypeError(f"tree must be an inferviz TokenTree, got {type(tree).__name__}")
        if session is not None and not callable(getattr(session, "expand", None)):
            raise TypeError("session must have an expand(tree, node_id, ...) method, or be None")
        unknown = sorted(set(kwargs) - {"layout", "height"})
        if unknown:
            raise TypeError(
                f"TreeWidget got unexpected keyword argument(s) {unknown}; it takes tree, "
                "session, k, temperature, top_k, top_p, min_p, height"
            )
        height = kwargs.get("height", 560)
        if not is_int(height) or not 160 <= height <= 4000:
            raise ValueError(f"height must be an integer number of pixels in 160..4000, got {height!r}")
        settings = protocol.validate_params(
            {"k": k, "temperature": temperature, "top_k": top_k, "top_p": top_p, "min_p": min_p},
            protocol.ExpandParams(k=5, temperature=1.0, top_k=None, top_p=None, min_p=None),
        )
        self._tree = tree
        self._session = session
        self._constraint: Any = None
        self._in_flight: set[int] = set()
        self._in_flight_lock = threading.Lock()
        self._batch_depth = 0
        self._dirty = False
        self._marks: dict[int, str] = {}
        self._marks_used = False
        self._version = 0
        self._sent = self._columns()
        self._quiet_nodes = False
        self._sync_lock = threading.RLock()  # one delta at a time, in version order
        super().__init__(
            nodes=self._snapshot(self._sent),
            read_only=session is None,
            param_schema=[spec.to_json() for spec in protocol.click_params()],
            **settings,
            **kwargs,
        )
        self.follow_tree(tree)
        self.on_msg(TreeWidget._handle_message)

    # ------------------------------------------------------------- properties
    @property
    def tree(self) -> TokenTree:
        return self._tree

    @property
    def session(self) -> Any:
        return self._session

    @property
    def constraint(self) -> Any:
        """The constraint clicks expand under (``iv.Regex``, ``iv.JSONSchema``, ...), or None:
        a clicked node's children are then its most likely legal tokens."""
        return self._constraint

    @constraint.setter
    def constraint(self, value: Any) -> None:
        from ...constraints import check_constraint

        value = check_constraint(value)
        if value is not None and self._session is not None:
            self._session.constrained(value)  # a session that cannot says so now
        self._constraint = value
        self.constraint_label = "" if value is None else value.label

    def params(self) -> protocol.ExpandParams:
        """The expand settings currently shown in the widget."""
        return protocol.ExpandParams(
            k=self.k,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            min_p=self.min_p,
        )

    # ------------------------------------------------------------- validation
    @traitlets.validate(*protocol.PARAM_CHECKS)
    def _check_setting(self, proposal: dict) -> Any:
        name = proposal["trait"].name
        try:
            return protocol.PARAM_CHECKS[name](proposal["value"])
        except protocol.ProtocolError as exc:
            raise protocol.SettingError(str(exc)) from None

    @traitlets.validate("selected")
    def _check_selected(self, proposal: dict) -> int | None:
        value = proposal["value"]
        if value is not None and value not in self._tree:
            raise protocol.SettingError(f"selected node {value} is not in this tree")
        return value

    @traitlets.observe("selected")
    def _selected_changed(self, change: dict) -> None:
        node_id = change["new"]
        self.selected_text = "" if node_id is None else self._tree.text(node_id)

    @traitlets.observe(*protocol.PARAM_CHECKS, "selected")
    def _valid_change(self, change: dict) -> None:
        # A value reaches a trait only once it passed validation: an old error no longer holds.
        self.error = ""

    # ------------------------------------------------------------- hooks for other views
    def select(self, node_id: int | None) -> None:
        """Select ``node_id`` (highlights its path and shows its text), as a click would."""
        if node_id is not None and (not is_int(node_id) or node_id not in self._tree):
            raise ValueError(f"node_id {node_id!r} is not in this tree")
        self.selected = node_id

    def mark(self, node_ids: Any, label: str | None = "marked") -> None:
        """Badge nodes with a short ``label`` (e.g. ``"diverges"``) in the ``mark`` column;
        ``label=None`` removes the mark. The tree itself is not changed."""
        ids = [node_ids] if is_int(node_ids) else list(node_ids)
        for node_id in ids:
            if not is_int(node_id) or node_id not in self._tree:
                raise ValueError(f"node_id {node_id!r} is not in this tree")
        if label is not None and (not isinstance(label, str) or not 0 < len(label) <= 24):
            raise ValueError(f"label must be a string of 1..24 characters or None, got {label!r}")
        self._marks_used = True
        for node_id in ids:
            if label is None:
                self._marks.pop(node_id, None)
            else:
                self._marks[node_id] = label
        self.refresh()

    def check_browser_value(self, name: str, value: Any) -> None:
        """A bad value from the browser refuses its whole message (the view is sent the
        kernel's state back) instead of raising in the kernel."""
        if name == "selected":
            protocol.check_selected(value, self._tree)
        else:
            protocol.PARAM_CHECKS[name](value)

    def browser_state_taken(self) -> None:
        self.error = ""

    # ------------------------------------------------------------- tree sync
    def tree_changed(self, node_ids: list[int]) -> None:
        if self._batch_depth:
            self._dirty = True
        else:
            self.refresh()

    def _columns(self) -> dict[str, list]:
        columns = self._tree.to_columns()
        if self._marks_used:  # once marked, always sent: a removed mark must reach the views
            columns["mark"] = [self._marks.get(i) for i in columns["node_id"]]
        return columns

    def _snapshot(self, columns: dict[str, list]) -> dict[str, Any]:
        return {**encode_columns(columns), "version": self._version}

    def _should_send_property(self, key: str, value: Any) -> bool:
        # ``nodes`` changes reach live views as deltas; the trait stays the late views' snapshot.
        if key == "nodes" and self._quiet_nodes:
            return False
        return super()._should_send_property(key, value)

    def refresh(self) -> None:
        """Send the rows that changed since the last update to the views, as one delta message,
        and bring the ``nodes`` snapshot up to date (normally automatic via ``tree.on_change``)."""
        with self._sync_lock:  # refreshes come from the kernel and the request batcher's thread
            self._dirty = False
            columns = self._columns()
            if len(columns["node_id"]) < len(self._sent.get("node_id", [])):
                # A failed run was rolled back: nodes went away, which a delta cannot say.
                # The views get the whole snapshot (the trait), at a newer version.
                self._version += 1
                self._sent = columns
                self.nodes = self._snapshot(columns)
                return
            rows = changed_rows(self._sent, columns)
            if not rows and list(columns) == list(self._sent):
                return
            base, self._version = self._version, self._version + 1
            self._sent = columns
            self._quiet_nodes = True
            try:
                self.nodes = self._snapshot(columns)
            finally:
                self._quiet_nodes = False
            content, buffers = encode_delta(columns, rows, base=base, version=self._version)
            self._send_delta(content, buffers)

    def _send_delta(self, content: dict[str, Any], buffers: list[bytes]) -> None:
        # Deltas have their own channel, apart from request responses (``send``).
        anywidget.AnyWidget.send(self, content, buffers)

    def resync(self) -> None:
        """Send the whole ``nodes`` snapshot to the views (a view that missed a delta asks)."""
        with self._sync_lock:
            self.refresh()
            self.send_state("nodes")

    # ------------------------------------------------------------- expansion
    def expand(self, node_id: int, **params: Any) -> list[int]:
        """Expand ``node_id`` with the widget's settings (overridden by ``params``), like a
        click would; returns the child ids. Raises ``ValueError``/``KeyError`` on bad input."""
        if self._session is None:
            raise ValueError(protocol.READ_ONLY_MESSAGE)
        settings = protocol.validate_params(params, self.params())
        self._tree.node(node_id)
        self._begin(node_id)
        try:
            # Tree changes during the call are coalesced into one `nodes` update at the end.
            if self._constraint is not None:
                settings = {**settings, "constraint": self._constraint}
            children = self._session.expand(self._tree, node_id, **settings)
        finally:
            self._settle(node_id)
        self.error = ""
        return [int(child.node_id) for child in (children or [])]

    def _handle_message(self, content: Any, buffers: list) -> None:
        rid = protocol.request_id(content)
        action = content.get("action") if isinstance(content, dict) else None
        node_id = content.get("node_id") if isinstance(content, dict) else None
        if action == protocol.SNAPSHOT_ACTION and isinstance(content, dict) \
                and content.get("kind") == protocol.REQUEST_KIND:
            # A view that opens says which version it holds: changes made between the widget's
            # creation and its display (deltas sent before the page listened) would be lost.
            if content.get("version") != self._version or content.get("version") is None:
                self.resync()
            return
        try:
            node_id, params = protocol.validate_request(content, self._tree, self.params())
            if self._session is None:
                raise protocol.ProtocolError(protocol.READ_ONLY_MESSAGE)
            if callable(getattr(self._session, "submit_expand", None)):
                # Answered from the session's request batcher when the forward is done: the
                # kernel is free for the next click, and clicks close together share a forward.
                self._submit(rid, action, node_id, params)
                return
            child_ids = self.expand(node_id, **params)
        except Exception as exc:
            self._reply_error(rid, action, node_id, exc)
            return
        self._reply_ok(rid, action, node_id, child_ids)

    def _submit(self, rid: Any, action: Any, node_id: int, settings: dict) -> None:
        """Queue the expansion on the session's batcher; ``settings`` were checked by
        ``protocol.validate_request``."""
        self._begin(node_id)
        try:
            if self._constraint is not None:
                settings = {**settings, "constraint": self._constraint}
            future = self._session.submit_expand(self._tree, node_id, **settings)
        except BaseException:
            self._settle(node_id)
            raise
        future.add_done_callback(
            lambda done: self._answer(rid, action, node_id, done))

    def _begin(self, node_id: int) -> None:
        """A request starts: refuse a node already being expanded, list it in ``pending``;
        tree changes are held back (``_dirty``) until :meth:`_settle`."""
        with self._in_flight_lock:
            if node_id in self._in_flight:
                raise ValueError(f"node {node_id} is already being expanded")
            self._in_flight.add(node_id)
            self._batch_depth += 1
        self.pending = sorted(self._in_flight)

    def _settle(self, node_id: int) -> None:
        """A request is over: flush tree changes to the views, then update ``pending``."""
        with self._in_flight_lock:
            self._in_flight.discard(node_id)
            self._batch_depth -= 1
        if self._dirty:  # before the answer, so the views know the children it names
            self.refresh()
        self.pending = sorted(self._in_flight)

    def _answer(self, rid: Any, action: Any, node_id: int, future: Any) -> None:
        self._settle(node_id)
        exc = future.exception()
        if exc is not None:
            self._reply_error(rid, action, node_id, exc)
            return
        self._reply_ok(rid, action, node_id, [int(c.node_id) for c in future.result()])

    def _reply_ok(self, rid: Any, action: Any, node_id: int, child_ids: list[int]) -> None:
        self.error = ""
        self.send(
            protocol.response(rid, ok=True, action=action, node_id=node_id, child_ids=child_ids)
        )

    def _reply_error(self, rid: Any, action: Any, node_id: Any, exc: BaseException) -> None:
        message = _error_text(exc)
        if not isinstance(exc, (ValueError, KeyError, TypeError)):
            log.error("inferviz: expand failed", exc_info=exc)
        self.error = message
        self.send(protocol.response(rid, ok=False, action=action, node_id=node_id, error=message))

    def to_html(self, path: Any) -> Any:
        """Write a standalone offline HTML page of this tree (read-only); returns the path."""
        from ..export.tree_page import write_tree_html

        return write_tree_html(path, self._tree, selected=self.selected)


def _error_text(exc: BaseException) -> str:
    # KeyError's str() wraps the message in quotes; show the message itself.
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    text = str(exc) or type(exc).__name__
    if isinstance(exc, (protocol.ProtocolError, ValueError)):
        return text
    return f"{type(exc).__name__}: {text}"
