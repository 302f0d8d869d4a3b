"""The explorer's "Why" tab: attribution of the selected node's token to its context, and an
"Intervene" control that grows a steered / ablated / patched sibling branch from it.

- **Why this token**: a method picker (input × gradient, integrated gradients, attention,
  attention rollout) and a contrast picker (none, or a sibling's token: "why this and not
  that?"); *Attribute* computes ``session.attribute`` for the selected node and shows the
  context shaded on a diverging scale with its legend (``AttributionView``). A node attributed
  before shows its result at once (results are cached per node).
- **Intervene**: a kind (steer with two contrasting prompts or a given direction is
  ``Steer``; zero-ablate heads or a whole layer is ``Ablate``; patch a residual from a source
  prompt is ``Patch``), its layer and parameters, and how many tokens to grow; *Grow branch*
  runs greedy under it from the selected node. The branch is drawn dashed in its own colour,
  each node badged with its KL divergence from the plain model.

Both hold the explorer's run lock while they compute (a click meanwhile is refused, as during
a run); errors show in the panel's status line, escaped.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import ipywidgets as widgets

from ...html_text import esc
from ...tree import TokenTree
from .panel_actions import PanelActions

METHODS = (("input × gradient", "input_x_gradient"),
           ("integrated gradients (64 steps)", "integrated_gradients"),
           ("attention (last layer)", "attention"),
           ("attention rollout", "attention_rollout"))
KINDS = (("steer: add α·(positive − negative) at layer L", "steer"),
         ("zero-ablate attention heads", "heads"),
         ("zero-ablate the whole layer", "layer"),
         ("patch the residual from a source prompt", "patch"))
NO_CONTRAST = -1  # the "none" choice (node ids are >= 0; a None value shows as a blank box)
_FIELDS = {"steer": ("alpha", "positive", "negative"), "heads": ("heads",),
           "layer": (), "patch": ("source", "position")}


def _heads(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ValueError(f"heads must be head numbers separated by commas, e.g. 0,3; got "
                         f"{text!r}") from None


class WhyPanel(PanelActions, widgets.VBox):
    """``WhyPanel(session, lock, on_grown)``: ``show(tree, node_id)`` when the selection
    changes; ``attribute()`` and ``grow()`` are the buttons' actions (``grow`` returns the run's
    result and calls ``on_grown(result)``)."""

    def __init__(self, session: Any, lock: threading.RLock,
                 on_grown: Callable[[Any], None] | None = None,
                 wait_idle: Callable[[], None] | None = None) -> None:
        self.session = session
        self._lock = lock
        self._on_grown = on_grown
        self._wait_idle = wait_idle or (lambda: None)
        self.tree: TokenTree | None = None
        self.node_id: int | None = None
        local = getattr(session, "adapter", None) is not None
        layers = session.adapter.num_layers if local else 1
        style = {"description_width": "initial"}

        self.method = widgets.Dropdown(options=METHODS, value="input_x_gradient",
                                       description="method", style=style)
        self.contrast = widgets.Dropdown(options=[("none", NO_CONTRAST)], value=NO_CONTRAST,
                                         description="and not", style=style)
        self.attribute_button = widgets.Button(description="Attribute",
                                               button_style="primary")
        self.result_box = widgets.VBox([])
        self.kind = widgets.Dropdown(options=KINDS, value="steer", description="intervene",
                                     style=style, layout=widgets.Layout(width="380px"))
        self.layer = widgets.BoundedIntText(value=layers // 3, min=0, max=max(0, layers - 1),
                                            description="layer", style=style,
                                            layout=widgets.Layout(width="120px"))
        self.fields = {
            "alpha": widgets.FloatText(value=0.25, description="α", style=style,
                                       layout=widgets.Layout(width="110px")),
            "positive": widgets.Text(value="Love", description="positive", style=style,
                                     layout=widgets.Layout(width="190px")),
            "negative": widgets.Text(value="Hate", description="negative", style=style,
                                     layout=widgets.Layout(width="190px")),
            "heads": widgets.Text(value="0", description="heads", style=style,
                                  placeholder="0,3", layout=widgets.Layout(width="160px")),
            "source": widgets.Text(value="", description="source prompt", style=style,
                                   layout=widgets.Layout(width="260px")),
            "position": widgets.BoundedIntText(value=0, min=0, max=1_000_000,
                                               description="position", style=style,
                                               layout=widgets.Layout(width="140px")),
        }
        self.tokens = widgets.BoundedIntText(value=8, min=1, max=256, description="tokens",
                                             style=style, layout=widgets.Layout(width="120px"))
        self.grow_button = widgets.Button(description="Grow branch")
        self.status = widgets.HTML("")

        self.attribute_button.on_click(lambda _b: self._guard(self.attribute))
        self.grow_button.on_click(lambda _b: self._guard(self.grow))
        self.kind.observe(lambda _c: self._show_fields(), names="value")
        self._show_fields()
        why = widgets.VBox([
            widgets.HTML("<b>Why this token?</b> Attribution of the selected node's token to "
                         "its context (the prompt and the path above it)."),
            widgets.HBox([self.method, self.contrast, self.attribute_button]),
            self.result_box])
        intervene = widgets.VBox([
            widgets.HTML("<b>What if?</b> Grow a sibling branch from the selected node "
                         "under an intervention (greedy); its nodes show their KL from the "
                         "plain model."),
            widgets.HBox([self.kind, self.layer, *self.fields.values()],
                         layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.tokens, self.grow_button])])
        super().__init__([why, widgets.HTML("<hr style='margin:8px 0'>"), intervene,
                          self.status])
        self.add_class("inferviz-why")
        if not local:
            for control in (self.attribute_button, self.grow_button):
                control.disabled = True
            self._say("attribution and interventions need the model's weights and "
                      "activations: this session's model runs on a server, which returns "
                      "only log-probabilities; load the model locally to use this tab",
                      "warn")
        self._hint()

    # ------------------------------------------------------------------ selection
    def show(self, tree: TokenTree, node_id: int | None) -> None:
        """Follow the explorer's selection: the contrast choices are the node's siblings, and
        an attribution computed before is shown."""
        self.tree, self.node_id = tree, node_id
        node = tree.node(node_id) if node_id is not None and node_id in tree else None
        options: list[tuple[str, Any]] = [("none", NO_CONTRAST)]
        if node is not None and not node.is_root:
            for sibling in sorted(tree.children(node.parent_id), key=lambda n: -n.raw_logprob):
                if sibling.node_id != node.node_id and sibling.token_id != node.token_id:
                    options.append((f"{sibling.token!r} (node {sibling.node_id})",
                                    sibling.node_id))
        self.contrast.options = options[:21]
        self.contrast.value = NO_CONTRAST
        self._show_cached()

    def _show_cached(self) -> None:
        from ...attribution import cached

        if self.tree is None or self.node_id is None or self.session.adapter is None:
            self._hint()
            return
        done = cached(self.session, self.tree, self.node_id)
        if done:
            self.result_box.children = [done[-1].widget()]
        else:
            self._hint()

    def _hint(self) -> None:
        node = None
        if self.tree is not None and self.node_id is not None and self.node_id in self.tree:
            node = self.tree.node(self.node_id)
        text = ("select a generated node (not the prompt) to attribute it" if node is None
                or node.is_root else "press <b>Attribute</b> to see which context tokens "
                "pushed this token up (red) or down (blue)")
        self.result_box.children = [widgets.HTML(f"<i>{text}</i>")]

    def _show_fields(self) -> None:
        wanted = _FIELDS[self.kind.value]
        for name, control in self.fields.items():
            control.layout.display = "" if name in wanted else "none"

    # ------------------------------------------------------------------ actions
    def _selected_node(self) -> int:
        if self.tree is None or self.node_id is None:
            raise ValueError("select a node of the tree first")
        if self.tree.node(self.node_id).is_root:
            raise ValueError("the prompt has no token to attribute: select a generated node")
        return self.node_id

    def attribute(self) -> Any:
        """Attribute the selected node's token (the *Attribute* button)."""
        node_id = self._selected_node()
        with self._holding():
            self._say("computing the attribution…")
            contrast = None if self.contrast.value == NO_CONTRAST else self.contrast.value
            result = self.session.attribute(self.tree, node_id, method=self.method.value,
                                            contrast=contrast)
        self.result_box.children = [result.widget()]
        self._say(f"attributed in {result.seconds:.2f} s")
        return result

    def intervention(self) -> Any:
        """The intervention the controls describe."""
        from ...interventions import Ablate, Patch, Steer

        kind, layer, f = self.kind.value, self.layer.value, self.fields
        if kind == "steer":
            return Steer(layer=layer, alpha=f["alpha"].value, positive=f["positive"].value,
                         negative=f["negative"].value)
        if kind == "heads":
            return Ablate(layer=layer, heads=_heads(f["heads"].value))
        if kind == "layer":
            return Ablate(layer=layer, whole_layer=True)
        return Patch(layer=layer, position=f["position"].value, source=f["source"].value)

    def grow(self) -> Any:
        """Grow the branch (the *Grow branch* button): greedy under the intervention from the
        selected node; returns the run's result."""
        if self.tree is None or self.node_id is None:
            raise ValueError("select a node of the tree first")
        intervention = self.intervention()
        with self._holding():
            self._say(f"growing a branch under {esc(intervention.label)}…")
            result = self.session.generate(self.tree, "greedy", start_id=self.node_id,
                                           max_new_tokens=self.tokens.value,
                                           intervention=intervention)
        leaf = self.tree.node(result.leaf_ids[0])
        kl = leaf.meta.get("kl")
        self._say(f"grew <b>{esc(result.text)}</b> under {esc(intervention.label)} "
                  f"({esc(result.finish_reason)}); KL from the plain model at its last step: "
                  f"{'n/a' if kl is None else f'{kl:.3f}'} nats")
        if self._on_grown is not None:
            self._on_grown(result)
        return result
