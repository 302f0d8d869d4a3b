"""The explorer's Charts tab: probability and entropy along the selected path, the ESS of an
SMC run (filled in while it goes) and beam scores, as plotly figures.

Plotly's front end is a large bundle: the figures are made on first use of the tab, so the page
does not load it (anywidget gives a model 2 s to initialise) with everything else."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from ...tree import TokenTree
from .. import figures


class ChartsTab(widgets.VBox):
    """``path_fig``, ``ess_fig``, ``beam_fig``: None until :meth:`show` first runs."""

    def __init__(self) -> None:
        self.path_fig = self.ess_fig = self.beam_fig = None
        self._chart_boxes: dict[int, widgets.Box] = {}  # id(figure) -> the box showing it
        super().__init__([widgets.HTML("<i>loading charts…</i>")])

    def show(self, tree: TokenTree | None, node_id: int | None, result: Any,
             live_ess: tuple[list[float], int | None] | None) -> None:
        """Create the figures (once) and draw the path to ``node_id``, the ESS and beams."""
        if self.path_fig is None:
            self.path_fig = go.FigureWidget(figures.path_figure())
            self.ess_fig = go.FigureWidget(figures.ess_figure())
            self.beam_fig = go.FigureWidget(figures.beam_figure())
        if tree is not None and node_id is not None:
            self.show_path(tree, node_id)
        self.show_run(tree, result, live_ess)

    def show_path(self, tree: TokenTree, node_id: int) -> None:
        if self.path_fig is not None:
            figures.update_figure(self.path_fig, figures.path_figure(tree, node_id))

    @property
    def shown(self) -> list[Any]:
        """The figures shown now (path, then ESS and beam when a run has them)."""
        return [box.children[0] for box in self.children
                if box in self._chart_boxes.values() and box.layout.display != "none"]

    def show_run(self, tree: TokenTree | None, result: Any,
                 live_ess: tuple[list[float], int | None] | None) -> None:
        """The ESS (of the SMC run going on, ``live_ess``, or of ``result``) and the beam
        scores of ``tree``; a chart with nothing to show is hidden."""
        if self.path_fig is None:
            return
        if live_ess is not None:  # an SMC run going on
            ess, particles = live_ess
        else:
            ess = getattr(result, "ess", None)
            particles = getattr(result, "params", {}).get("particles")
        if ess is not None and len(ess):
            figures.update_figure(self.ess_fig, figures.ess_figure(list(ess), particles))
        has_beam = tree is not None and bool(figures.beam_points(tree)["step"])
        if has_beam:
            figures.update_figure(self.beam_fig, figures.beam_figure(tree))
        show = [(self.path_fig, True), (self.ess_fig, ess is not None and len(ess) > 0),
                (self.beam_fig, has_beam)]
        # A chart, once on the page, stays there and is hidden when it has nothing to show:
        # taking a FigureWidget off the page purges its plot while its view keeps listening
        # to the figure, and the next update throws 'gd.data must be an array' in the page.
        children = [box for box in self.children if box in self._chart_boxes.values()]
        for fig, visible in show:
            box = self._chart_boxes.setdefault(id(fig), widgets.Box([fig]))
            if visible and box not in children:
                children.append(box)
            box.layout.display = None if visible else "none"
        if children != list(self.children):
            self.children = children
