"""Explorer: the whole inference view in one widget (``Session.explore(prompt)``).

Prompt box and strategy controls on top; the live TreeWidget; under it tabs for the selected
path (text + per-token table), its logit lens, why (attribution of the selected token and
interventions that grow a sibling branch: :mod:`.why_panel`), compare (:mod:`.compare_panel`),
plotly charts (:mod:`.charts_tab`) and exports (:mod:`.export_tab`).

Runs go in a worker thread (:mod:`.run_job`), so the kernel stays free to hear Stop; a
stopped run returns a partial result (``finish_reason="stopped"``) over a consistent tree, a
failed one leaves the tree as it was. Each step reaches the views as it is written: the tree
grows and, for SMC, the ESS chart fills in while the run goes. While a run goes on, clicks that
would expand a node are refused with a message, since the model and its cache serve one caller
at a time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from ...html_text import esc
from ...tree import TokenTree
from ..views.tree_widget import TreeWidget
from .charts_tab import ChartsTab
from .compare_panel import ComparePanel
from .constraint_controls import ConstraintControls
from .export_tab import ExportTab, write_csv, write_html, write_json
from .guarded_session import BUSY_MESSAGE, GuardedSession
from .path_tab import LensTab, PathTab
from .run_controls import RunControls
from .run_job import RunJob
from .status import error_html, status_html
from .why_panel import WhyPanel

TABS = ("Path", "Logit lens", "Why", "Compare", "Charts", "Export")
LENS_TAB = 1
WHY_TAB = 2
COMPARE_TAB = 3
CHARTS_TAB = 4


class Explorer(widgets.VBox):
    """``Explorer(session, prompt=None, strategy="greedy", expand_root=False,
    extra_params=None, **params)``; ``params`` are the starting values of the parameter boxes
    (``max_new_tokens``, ``temperature``, ``top_k``, ``top_p``, ``min_p``, ``num_beams``,
    ``particles``, ``alpha``, ``amateur_layer``, ``k``, ``depth``, ``threshold``, ``seed``). ``extra_params`` go to every
    run as they are (callables such as an SMC ``potential`` included).

    Python API: ``run(wait=True)`` returns the result, ``stop()``, ``new_tree(prompt)``,
    ``select(node_id)``, ``to_csv``/``to_json``/``to_html(path)``; ``tree``, ``tree_widget``,
    ``result`` are the current objects; ``charts`` is the Charts tab (``charts.path_fig``,
    ``ess_fig``, ``beam_fig``, and ``charts.shown``, the figures it shows now)."""

    def __init__(self, session: Any, prompt: str | None = None, strategy: str = "greedy",
                 expand_root: bool = False, extra_params: dict[str, Any] | None = None,
                 export_dir: str | Path | None = None, **params: Any) -> None:
        if not callable(getattr(session, "generate", None)):
            raise TypeError("session must be an inferviz Session (with generate and expand)")
        if prompt is not None and not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str or None, got {type(prompt).__name__}")
        if extra_params is not None and not isinstance(extra_params, dict):
            raise TypeError("extra_params must be a dict of keyword arguments for generate()")
        if export_dir is not None and not isinstance(export_dir, (str, Path)):
            raise TypeError(f"export_dir must be a path or None, got {type(export_dir).__name__}")
        self.session = session
        self._extra_params = dict(extra_params or {})
        self.controls = RunControls(strategy, extra_params=self._extra_params, **params)
        # Clicks and runs keep to the constraint of this row (docs/constraints.md).
        self.constraint_controls = ConstraintControls()
        self.tree: TokenTree | None = None
        self.tree_widget: TreeWidget | None = None
        self.result: Any = None
        self._lock = threading.RLock()
        self._guarded = GuardedSession(session, self._lock)
        # (looked up at each call: tests and subclasses may replace these methods)
        self._job = RunJob(session, self._lock, self._guarded.wait_idle,
                           on_step=lambda info: self._on_run_step(info),
                           on_done=lambda result: self._finish(result),
                           on_failed=lambda strategy, exc: self._failed(strategy, exc),
                           on_end=lambda tree: self._run_ended(tree))
        self._live_ess: tuple[list[float], int | None] | None = None

        self.prompt = widgets.Textarea(value=prompt or "", placeholder="Type a prompt",
                                       layout=widgets.Layout(width="100%", height="60px"))
        self.new_button = widgets.Button(description="New tree")
        self.status = widgets.HTML("")
        self.tree_box = widgets.VBox([widgets.HTML(
            "<i>Type a prompt, then press <b>New tree</b> (click nodes to expand) or "
            "<b>Run</b> (a strategy).</i>")])
        self._path = PathTab()
        self.table_html = self._path.table_html
        self.lens_box = LensTab()
        self.charts = ChartsTab()
        self._export = ExportTab({fmt: (lambda path, fmt=fmt: getattr(self, f"to_{fmt}")(path))
                                  for fmt in ("csv", "json", "html")},
                                 None if export_dir is None else Path(export_dir))
        self.export_stem, self.export_buttons = self._export.stem, self._export.buttons
        self.export_links = self._export.links
        self.why = WhyPanel(session, self._lock, on_grown=self._branch_grown,
                            wait_idle=self._guarded.wait_idle)
        self.compare_panel = ComparePanel(session, self._lock, self._compare_context,
                                          on_done=self._compared,
                                          wait_idle=self._guarded.wait_idle)
        self.tabs = widgets.Tab(children=[self._path,
                                          self.lens_box, self.why, self.compare_panel,
                                          self.charts, self._export])
        for i, title in enumerate(TABS):
            self.tabs.set_title(i, title)

        self.new_button.on_click(lambda _b: self._guard(self.new_tree))
        self.controls.run_button.on_click(lambda _b: self._guard(self.run))
        self.controls.stop_button.on_click(lambda _b: self.stop())
        for fmt, button in self.export_buttons.items():
            button.on_click(lambda _b, fmt=fmt: self._guard(self._export.export, fmt))
        self.tabs.observe(lambda _c: self._guard(self._tab_changed), names="selected_index")

        for box in (*self.controls.boxes.values(), self.controls.extra,
                    self.controls.strategy, *self.controls.potential.boxes):
            # a fixed value clears the error it caused
            box.observe(lambda _c: self._clear_error(), names="value")
        self.constraint_controls.observe(lambda: self._guard(self._constraint_changed))
        super().__init__([
            widgets.HTML(f"<b>inferviz explorer</b> · model {_model_label(session)}"),
            widgets.HBox([self.prompt, self.new_button]),
            self.controls.widget, self.constraint_controls.widget, self.status, self.tree_box,
            self.tabs],
            layout=widgets.Layout(width="100%"))
        self.add_class("inferviz-explorer")
        if prompt:
            self.new_tree(prompt)
            if expand_root:
                self.tree_widget.expand(self.tree.root_id)
                self.select(self.tree.root_id)

    @property
    def extra_params(self) -> dict[str, Any]:
        """Keyword arguments every run gets as they are (callables included); setting them
        updates the strategy picker (``custom`` is offered once a ``choose`` is given)."""
        return self._extra_params

    @extra_params.setter
    def extra_params(self, value: dict[str, Any]) -> None:
        if not isinstance(value, dict):
            raise TypeError("extra_params must be a dict of keyword arguments for generate()")
        self._extra_params = dict(value)
        self.controls.offer(self._extra_params)

    # ------------------------------------------------------------ tree and selection
    def new_tree(self, prompt: str | None = None) -> TokenTree:
        """Start a new tree at ``prompt`` (default: the prompt box) and show it."""
        if self.running:
            raise ValueError(BUSY_MESSAGE)
        prompt = self.prompt.value if prompt is None else prompt
        tree = self.session.tree(prompt)
        self.prompt.value = prompt
        self.status.value = ""  # the last run's line belongs to the last tree
        if self.tree_widget is not None:
            self.tree_widget.close()
        self.tree, self.result = tree, None
        self.lens_box.forget()
        self.tree_widget = TreeWidget(tree, session=self._guarded)
        self.tree_widget.observe(lambda _c: self._guard(self._refresh_views), names="selected")
        self._apply_constraint()
        self.tree_box.children = [self.tree_widget]
        self._path.new_tree(tree, lambda node_id: self._guard(self._token_clicked, node_id))
        self._show_optional_charts()
        self.select(tree.root_id)
        return tree

    @property
    def constraint(self) -> Any:
        """The constraint clicks and runs keep to (the constraint row), or None."""
        return self.constraint_controls.constraint()

    def _constraint_changed(self) -> None:
        """The constraint row changed: clicks keep to it from now on (an error names it)."""
        self._clear_error()
        self._apply_constraint()

    def _apply_constraint(self) -> None:
        if self.tree_widget is None:
            return
        try:
            constraint = self.constraint
        except ValueError:
            self.tree_widget.constraint = None  # clicks keep to nothing half-typed
            raise
        self.tree_widget.constraint = constraint

    def select(self, node_id: int) -> None:
        """Select ``node_id`` in the tree view (updates the path, table, lens and charts)."""
        self._require_tree()
        if self.tree_widget.selected == node_id:
            self._refresh_views()
        else:
            self.tree_widget.selected = node_id

    @property
    def selected(self) -> int | None:
        return None if self.tree_widget is None else self.tree_widget.selected

    def _refresh_views(self) -> None:
        node_id = self.selected
        if self.tree is None or node_id is None:
            return
        tree = self.tree
        self._path.follow(node_id)  # the path's text, shaded (the Path tab's top)
        self.why.show(tree, node_id)
        self.charts.show_path(tree, node_id)
        if not self._lock.acquire(blocking=False):
            self.table_html.value = "<i>the token table updates when the run ends</i>"
            return
        try:
            self._path.show_table(self.session, tree, node_id)
            self._refresh_lens()
        finally:
            self._lock.release()

    @property
    def text_view(self) -> Any:
        """The shaded text of the selected path (docs/text-view.md)."""
        return self._path.text_view

    def _token_clicked(self, node_id: int | None) -> None:
        if node_id is not None and self.tree_widget is not None and self.selected != node_id:
            self.tree_widget.selected = node_id

    def _tab_changed(self) -> None:
        if self.tabs.selected_index == CHARTS_TAB:
            self.show_charts()
        self._refresh_lens()

    def show_charts(self) -> None:
        """Create the plotly figures (once) and draw the current path, ESS and beam data."""
        self.charts.show(self.tree, self.selected, self.result, self._live_ess)

    def _refresh_lens(self) -> None:
        node_id = self.selected
        if self.tabs.selected_index != LENS_TAB or self.tree is None or node_id is None:
            return
        if self.lens_box.shows(self.tree, node_id):
            return
        if not self._lock.acquire(blocking=False):
            self.lens_box.say("the lens updates when the run ends")
            return
        try:
            self.lens_box.show(self.session, self.tree, node_id)
        finally:
            self._lock.release()

    # ------------------------------------------------------------ runs
    @property
    def running(self) -> bool:
        return self._job.running

    def run(self, wait: bool = False) -> Any:
        """Run the chosen strategy from the root (or the selected node, when "continue from
        selected" is ticked) in a worker thread; the tree grows live. ``wait=True`` blocks and
        returns the result (partial, ``result.partial``, if stopped; None if it failed)."""
        if self.running:
            raise ValueError(BUSY_MESSAGE)
        strategy, params = self.controls.values(self.extra_params)
        constraint = self.constraint
        if constraint is not None:
            params["constraint"] = constraint
        if self.tree is None or self.prompt.value != self.tree.prompt:
            self.new_tree()
        start_id = self.tree.root_id
        if self.controls.from_selected.value and self.selected is not None:
            start_id = self.selected
        max_new = params.pop("max_new_tokens")
        seed = params.pop("seed", None)
        self._live_ess, self.result = None, None
        self.controls.progress.max, self.controls.progress.value = max_new, 0
        self.controls.set_running(True)
        self._status(f"running <b>{esc(strategy)}</b> from node {start_id}…")
        self._job.start(self.tree, strategy, start_id, max_new, seed, params)
        if wait:
            self._job.join()
            return self.result
        return None

    def stop(self) -> None:
        """Ask the current run to stop at its next step (it returns a partial result)."""
        if self._job.stop():
            self._status("stopping at the next step…")

    def _on_run_step(self, info: dict[str, Any]) -> None:
        """Called by the run after each step (in the worker thread)."""
        progress = self.controls.progress
        progress.value = min(progress.max, max(progress.value, int(info["step"])))
        if "ess" in info:
            self._live_ess = (list(info["ess"]), info.get("particles"))
            self._show_optional_charts()

    def _failed(self, strategy: str, exc: Exception) -> None:
        self._status(f"{esc(strategy)} failed: {error_html(exc)}; the tree is as it was "
                     f"before the run", "error")

    def _run_ended(self, tree: TokenTree) -> None:
        """After every run (in the worker thread, before ``running`` turns False)."""
        self._live_ess = None
        self.tree_widget.refresh()
        if self.selected is not None and self.selected not in tree:
            self.select(tree.root_id)  # the selected node was rolled back
        self.controls.set_running(False)

    def _compare_context(self) -> tuple:
        """What the Compare tab runs with: this tree, the selected node (or the root), the
        run boxes' max_new_tokens and seed, and the constraint row."""
        from .run_controls import PARAMS, parse_value

        if self.running:
            raise ValueError(BUSY_MESSAGE)
        if self.tree is None:
            return None, None, None, None, None
        start = self.selected if self.selected is not None else self.tree.root_id
        boxes = self.controls.boxes
        max_new = parse_value(PARAMS["max_new_tokens"], boxes["max_new_tokens"].value)
        seed = parse_value(PARAMS["seed"], boxes["seed"].value)
        return self.tree, start, max_new or PARAMS["max_new_tokens"].default, seed, \
            self.constraint

    def _compared(self, comparison: Any) -> None:
        """A comparison ran from the Compare tab: show its marks and the first's text."""
        self._show_grown(comparison.results[comparison.reference].node_id)

    def _branch_grown(self, result: Any) -> None:
        """An intervened branch grown from the Why tab: show it and select its last node."""
        self._show_grown(result.node_id)

    def _show_grown(self, node_id: int) -> None:
        """A panel grew the tree: draw it and select ``node_id``; the status line's last run
        no longer describes what is selected."""
        self.status.value = ""
        self.tree_widget.refresh()
        self.select(node_id)

    def _finish(self, result: Any) -> None:
        self.result = result
        self.tree_widget.error = ""  # a run that worked clears an earlier refusal's message
        if not result.partial:
            self.controls.progress.value = self.controls.progress.max
        self._show_optional_charts()
        self.select(result.node_id)
        text, strategy, reason = esc(result.text), esc(result.strategy), esc(result.finish_reason)
        if result.partial:
            self._status(f"<b>{strategy}</b> {reason} after {result.steps} step(s); "
                         f"partial result: <b>{text}</b>", "warn")
        elif getattr(result, "message", ""):
            self._status(f"<b>{strategy}</b> ended ({reason}): {esc(result.message)}; "
                         f"<b>{text}</b>", "warn")
        else:
            self._status(f"<b>{strategy}</b> done ({reason}): <b>{text}</b>")

    def _show_optional_charts(self) -> None:
        self.charts.show_run(self.tree, self.result, self._live_ess)

    # ------------------------------------------------------------ exports
    def to_csv(self, path: str | Path) -> Path:
        """The tree's DataFrame (``tree.to_pandas()``) as CSV."""
        return write_csv(self._require_tree(), path)

    def to_json(self, path: str | Path) -> Path:
        """The tree as versioned JSON (``TokenTree.from_json`` reads it back)."""
        return write_json(self._require_tree(), path)

    def to_html(self, path: str | Path) -> Path:
        """A standalone offline HTML page of the current tree view (read-only), with the
        attributions computed for this tree (the Why tab) under it."""
        return write_html(self.session, self._require_tree(), self.selected, path)

    @property
    def export_dir(self) -> Path:
        """The folder the Export buttons write to (``export.policy``): per session in a
        dashboard, ``./inferviz-exports`` in a notebook, or the ``export_dir`` given."""
        return self._export.export_dir

    # ------------------------------------------------------------ helpers
    def _require_tree(self) -> TokenTree:
        if self.tree is None:
            raise ValueError("there is no tree yet: give a prompt and press New tree or Run")
        return self.tree

    def _clear_error(self) -> None:
        if "inferviz-error" in self.status.value:
            self.status.value = ""

    def _status(self, message: str, level: str = "info") -> None:
        """Show ``message`` (HTML: every piece of text in it already went through ``esc``)."""
        self.status.value = status_html(message, level)

    def _guard(self, action: Any, *args: Any) -> None:
        """Run a button's action; show an error in the status line instead of raising in the
        kernel (where nobody would see it in Voila)."""
        try:
            action(*args)
        except Exception as exc:  # noqa: BLE001 -- a button has no caller to raise to
            self._status(error_html(exc), "error")


def _model_label(session: Any) -> str:
    """The model's name as the heading shows it: the session's name, and for ``default`` the
    model it stands for (SmolLM2-135M-Instruct.Q4_1)."""
    from ...models import DEFAULT_GGUF, DEFAULT_MODEL

    name = str(getattr(session, "name", "") or "model")
    shown = f"<code>{esc(name)}</code>"
    if name == DEFAULT_MODEL:
        shown += f" ({esc(DEFAULT_GGUF.removesuffix('.gguf'))})"
    return shown
