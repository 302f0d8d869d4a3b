"""Interventions: what if the model were steered, ablated or patched from a node on?

Three kinds, each a small record a researcher writes down (checked against the model when it
is first used with a session, :meth:`Intervention.bind`):

- :class:`Steer` — add ``alpha * v`` to the residual stream leaving decoder layer ``layer``
  (0-based) at every position from the branch's start on. ``v`` is given (``vector``), or built
  from two contrasting prompts in the way of ActAdd (Turner et al. 2023): the layer's residual
  at the last token of ``positive`` minus that of ``negative``, each read after a BOS (else
  EOS) token so that neither is the first position, the attention sink. ``alpha`` is in units
  of that difference, whose norm is about the residual stream's own: small values (0.1-1)
  already change a small model's text, large ones break it (docs/why.md).
- :class:`Ablate` — zero (``mode="zero"``) or mean-ablate (``mode="mean"``: the mean over the
  positions of a ``reference`` text, its first position, the attention sink, left out) chosen attention ``heads`` (their slice of the input of the
  attention output projection), MLP ``neurons`` (the input of the MLP's down projection) or the
  ``whole_layer`` (its output replaced by its input: the block's contribution removed, or
  replaced by its mean contribution), from the branch's start on.
- :class:`Patch` — replace the residual leaving layer ``layer`` at ``position`` (0-based, in the
  whole sequence) with ``source`` text's residual at the same layer and position (activation
  patching).

"From the branch's start on" means from the position of the node the branch grows from (its
last token: the one whose output predicts the branch's first token), unless ``from_position``
says another position (0: the whole context, as ActAdd steers a prompt).

How they run (:mod:`inferviz.backends.intervened`): the hooks are PyTorch forward hooks on the
modules :mod:`inferviz.adapter` names (the one place that knows layers), installed only around
the forwards of the intervened branch, which has a KV cache of its own: no key or value computed
under an intervention is ever read by a plain forward, nor the other way round. Each hook reads
the positions of the tokens in the forward from the model's ``position_ids`` (explicit in both
of the engine's layouts, padded rows and packed tree attention), so it applies at the same
positions whatever the batch looks like.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from .validate import check_int

ABLATION_MODES = ("zero", "mean")


def _check_layer(layer: Any, adapter: Any, name: str = "layer") -> int:
    return check_int(name, layer, 0, adapter.num_layers - 1)


def _check_text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty str (a text); got {value!r}")
    return value


def _check_finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number; got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    return value


def _sink_prefixed(session: Any, ids: list[int]) -> list[int]:
    """``ids`` after a BOS (else EOS) token when they do not start with one. The first position
    of a sequence is the model's attention sink, whose residual is orders of magnitude larger
    than the others' (SmolLM2: ~22000 against ~180 at layer 15): a one-word prompt without BOS
    would give a steering vector that is all sink."""
    tokenizer = session.tokenizer
    first = tokenizer.bos_token_id if tokenizer.bos_token_id is not None \
        else tokenizer.eos_token_id
    return ids if first is None or (ids and ids[0] == first) else [int(first), *ids]


def _residual(session: Any, text: str, layer: int, sink: bool = False) -> torch.Tensor:
    """Residual stream leaving ``layer`` for every position of ``text``: ``[T, d]`` (float32).
    ``sink=True``: after a BOS/EOS token (:func:`_sink_prefixed`)."""
    ids = session.encode(text)
    if sink:
        ids = _sink_prefixed(session, ids)
    with session.engine.lock, torch.no_grad():
        out = session.model(input_ids=torch.tensor([ids], device=session.device),
                            output_hidden_states=True, use_cache=False)
    return out.hidden_states[layer + 1][0].float()


def _site_input(session: Any, text: str, module: torch.nn.Module) -> torch.Tensor:
    """The input of ``module`` over ``text``'s positions, ``[T, width]`` (float32): a
    projection's input, or a decoder layer's ``hidden_states``."""
    seen: list[torch.Tensor] = []

    def grab(_module, args, kwargs):
        seen.append((args[0] if args else kwargs["hidden_states"]).detach())

    handle = module.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        ids = session.encode(text)
        with session.engine.lock, torch.no_grad():
            session.model(input_ids=torch.tensor([ids], device=session.device), use_cache=False)
    finally:
        handle.remove()
    return seen[0][0].float()


class Intervention:
    """Base of :class:`Steer`, :class:`Ablate` and :class:`Patch`."""

    kind = ""

    def spec(self) -> dict[str, Any]:
        """The intervention as JSON values (written into the tree's meta)."""
        raise NotImplementedError

    @functools.cached_property
    def key(self) -> str:
        """A short fingerprint of :meth:`spec`: the same intervention has the same key
        (computed once: the records are frozen)."""
        text = json.dumps(self.spec(), sort_keys=True)
        return self.kind + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]

    @property
    def label(self) -> str:
        raise NotImplementedError

    def bind(self, session: Any) -> "Bound":
        """Check the intervention against ``session``'s model; the tensors its hooks use."""
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class Steer(Intervention):
    layer: int
    alpha: float = 1.0
    vector: Any = None
    positive: str | None = None
    negative: str | None = None
    from_position: int | None = None
    kind = "steer"

    def spec(self) -> dict[str, Any]:
        vec = None if self.vector is None else [float(x) for x in
                                                 torch.as_tensor(self.vector).flatten().tolist()]
        return {"kind": self.kind, "layer": self.layer, "alpha": self.alpha, "vector": vec,
                "positive": self.positive, "negative": self.negative,
                "from_position": self.from_position}

    @property
    def label(self) -> str:
        what = f" '{self.positive}'−'{self.negative}'" if self.positive is not None else ""
        return f"steer L{self.layer} α={self.alpha:g}{what}"

    def bind(self, session: Any) -> "Bound":
        adapter = session.adapter
        layer = _check_layer(self.layer, adapter)
        alpha = _check_finite("alpha", self.alpha)
        from_position = _check_from(self.from_position)
        d = adapter.hidden_size
        if self.vector is not None:
            if self.positive is not None or self.negative is not None:
                raise TypeError("Steer takes vector= or positive= and negative=, not both")
            try:
                vector = torch.as_tensor(self.vector, dtype=torch.float32).flatten()
            except (TypeError, ValueError, RuntimeError):
                raise TypeError(f"vector must be a list or tensor of {d} numbers; got "
                                f"{type(self.vector).__name__}") from None
            if vector.numel() != d:
                raise ValueError(f"vector must have the residual stream's size {d} (the model's "
                                 f"hidden size); got {vector.numel()} numbers")
            if not bool(torch.isfinite(vector).all()):
                raise ValueError("vector holds NaN or infinite values; give finite numbers")
        else:
            if self.positive is None or self.negative is None:
                raise TypeError("Steer needs vector= (the direction, hidden size numbers) or "
                                "both positive= and negative= (two contrasting prompts)")
            pos = _residual(session, _check_text("positive", self.positive), layer, True)[-1]
            neg = _residual(session, _check_text("negative", self.negative), layer, True)[-1]
            vector = (pos - neg).cpu()
        delta = (alpha * vector).to(session.device, adapter.dtype)

        def on_layer(hidden: torch.Tensor, positions: torch.Tensor, start: int,
                     _hidden_in: torch.Tensor) -> torch.Tensor:
            mask = (positions >= start).unsqueeze(-1).to(hidden.dtype)
            return hidden + mask * delta

        return Bound(self, from_position, layer_hooks={layer: on_layer},
                     vector=vector)


@dataclass(frozen=True, eq=False)
class Ablate(Intervention):
    layer: int
    heads: tuple[int, ...] | list[int] = ()
    neurons: tuple[int, ...] | list[int] = ()
    whole_layer: bool = False
    mode: str = "zero"
    reference: str | None = None
    from_position: int | None = None
    kind = "ablate"

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "layer": self.layer, "heads": list(self.heads),
                "neurons": list(self.neurons), "whole_layer": self.whole_layer,
                "mode": self.mode, "reference": self.reference,
                "from_position": self.from_position}

    @property
    def label(self) -> str:
        parts = []
        if self.whole_layer:
            parts.append("layer")
        if self.heads:
            parts.append("heads " + ",".join(map(str, self.heads)))
        if self.neurons:
            shown = ",".join(map(str, list(self.neurons)[:4]))
            parts.append(f"neurons {shown}{'…' if len(self.neurons) > 4 else ''}")
        return f"{self.mode}-ablate L{self.layer} {' + '.join(parts)}"

    def bind(self, session: Any) -> "Bound":
        adapter = session.adapter
        layer = _check_layer(self.layer, adapter)
        from_position = _check_from(self.from_position)
        if not isinstance(self.whole_layer, bool):
            raise TypeError(f"whole_layer must be a bool; got {self.whole_layer!r}")
        if not isinstance(self.mode, str) or self.mode not in ABLATION_MODES:
            raise ValueError(f"mode must be one of {', '.join(map(repr, ABLATION_MODES))}; got "
                             f"{self.mode!r}")
        heads = _check_indices("heads", self.heads, adapter.num_heads,
                               f"the model's {adapter.num_heads} attention heads")
        mlp_width = adapter.mlp_width(layer)
        neurons = _check_indices("neurons", self.neurons, mlp_width,
                                 f"layer {layer}'s {mlp_width} MLP neurons")
        if not (heads or neurons or self.whole_layer):
            raise ValueError("Ablate needs something to ablate: heads=[...], neurons=[...] or "
                             "whole_layer=True")
        mean = self.mode == "mean"
        if mean:
            reference = _check_text("reference", self.reference)
        elif self.reference is not None:
            raise ValueError("reference= is the text whose mean activation mode='mean' uses; "
                             "with mode='zero' leave it out")
        pre: dict[torch.nn.Module, Any] = {}
        layer_hooks: dict[int, Any] = {}
        dtype, device = adapter.dtype, session.device
        if heads:
            out_proj = adapter.attention_out(layer)
            head_dim = adapter.head_dim(layer)
            idx = torch.tensor(heads, device=device)
            fill = None
            if mean:
                seen = _mean_over_positions(_site_input(session, reference, out_proj))
                fill = seen.view(adapter.num_heads, head_dim)[idx.cpu()].to(device, dtype)

            def on_heads(x: torch.Tensor, positions: torch.Tensor, start: int) -> torch.Tensor:
                shaped = x.view(*x.shape[:-1], adapter.num_heads, head_dim)
                mask = (positions >= start)[..., None, None]
                new = shaped.clone()
                chosen = new[..., idx, :]
                value = torch.zeros_like(chosen) if fill is None else fill.expand_as(chosen)
                new[..., idx, :] = torch.where(mask, value, chosen)
                return new.view_as(x)

            pre[out_proj] = on_heads
        if neurons:
            down = adapter.mlp_down(layer)
            nidx = torch.tensor(neurons, device=device)
            nfill = None
            if mean:
                nfill = _mean_over_positions(_site_input(session, reference, down))[
                    nidx.cpu()].to(device, dtype)

            def on_neurons(x: torch.Tensor, positions: torch.Tensor, start: int) -> torch.Tensor:
                mask = (positions >= start).unsqueeze(-1)
                new = x.clone()
                chosen = new[..., nidx]
                value = torch.zeros_like(chosen) if nfill is None else nfill.expand_as(chosen)
                new[..., nidx] = torch.where(mask, value, chosen)
                return new

            pre[down] = on_neurons
        if self.whole_layer:
            contribution = None
            if mean:
                before = _site_input(session, reference, adapter.layers[layer])
                after = _residual(session, reference, layer)
                contribution = _mean_over_positions(after - before).to(device, dtype)

            def on_whole(output: torch.Tensor, positions: torch.Tensor, start: int,
                         hidden_in: torch.Tensor) -> torch.Tensor:
                replaced = hidden_in if contribution is None else hidden_in + contribution
                mask = (positions >= start).unsqueeze(-1)
                return torch.where(mask, replaced.to(output.dtype), output)

            layer_hooks[layer] = on_whole
        return Bound(self, from_position, layer_hooks=layer_hooks, pre_hooks=pre)


@dataclass(frozen=True, eq=False)
class Patch(Intervention):
    layer: int
    position: int
    source: str
    kind = "patch"

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "layer": self.layer, "position": self.position,
                "source": self.source}

    @property
    def label(self) -> str:
        return f"patch L{self.layer}@{self.position} from '{self.source}'"

    def bind(self, session: Any) -> "Bound":
        adapter = session.adapter
        layer = _check_layer(self.layer, adapter)
        source = _check_text("source", self.source)
        states = _residual(session, source, layer)
        position = check_int("position", self.position, 0, states.shape[0] - 1)
        value = states[position].to(session.device, adapter.dtype)

        def on_layer(hidden: torch.Tensor, positions: torch.Tensor, start: int,
                     _hidden_in: torch.Tensor) -> torch.Tensor:
            mask = (positions == position).unsqueeze(-1)
            return torch.where(mask, value.expand_as(hidden), hidden)

        return Bound(self, 0, layer_hooks={layer: on_layer}, fixed_start=True)


def _mean_over_positions(values: torch.Tensor) -> torch.Tensor:
    """Mean of ``[T, width]`` over the positions after the first (the attention sink, whose
    activations are far from typical), or the one position there is."""
    return (values[1:] if values.shape[0] > 1 else values).mean(0)


def _check_from(value: Any) -> int | None:
    if value is None:
        return None
    return check_int("from_position", value, 0)


def _check_indices(name: str, values: Any, size: int, what: str) -> list[int]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a list of ints (indices into {what}); got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must be a list of ints; got {v!r}")
        if not 0 <= v < size:
            raise ValueError(f"{name}: {v} is not one of {what} (0..{size - 1})")
        out.append(v)
    if len(set(out)) != len(out):
        raise ValueError(f"{name} lists an index twice: {out}")
    return sorted(out)


@dataclass(eq=False)
class Bound:
    """An intervention checked against one session's model: the hooks to install.

    ``layer_hooks``: decoder layer index -> ``f(hidden_out, positions, start, hidden_in)``
    returning the new output; ``pre_hooks``: module -> ``f(input, positions, start)`` returning
    the module's new input. ``start``: the first position intervened on."""

    intervention: Intervention
    from_position: int | None
    layer_hooks: dict[int, Any] = field(default_factory=dict)
    pre_hooks: dict[Any, Any] = field(default_factory=dict)
    vector: torch.Tensor | None = None
    fixed_start: bool = False  # a patch: its position is its own, no branch start

    def unaffected_before(self, start: int) -> int:
        """How many leading positions the hooks leave as they are (their keys and values are
        the plain model's): those before ``start``, or before the patched position."""
        if self.fixed_start:
            return int(self.intervention.position)
        return start

    def start_for(self, branch_position: int) -> int:
        """The first intervened position for a branch growing from ``branch_position``."""
        if self.fixed_start:
            return 0
        return branch_position if self.from_position is None else self.from_position

    @contextlib.contextmanager
    def installed(self, adapter: Any, start: int) -> Iterator[None]:
        """The hooks on ``adapter``'s model for the forwards inside the block; always removed.
        The caller holds the model's lock (no other forward runs meanwhile)."""
        state = threading.local()
        state.positions = None

        def capture(_module, args, kwargs):
            positions = kwargs.get("position_ids")
            ids = kwargs.get("input_ids", args[0] if args else None)
            if positions is None:
                length = (ids if ids is not None else kwargs["inputs_embeds"]).shape[1]
                positions = torch.arange(length, device=adapter.device)[None]
            state.positions = positions

        def layer_hook(fn):
            def hook(_module, args, kwargs, output):
                hidden = output if torch.is_tensor(output) else output[0]
                positions = state.positions.to(hidden.device)
                hidden_in = args[0] if args else kwargs["hidden_states"]
                new = fn(hidden, positions, start, hidden_in)
                return new if torch.is_tensor(output) else (new, *output[1:])
            return hook

        def pre_hook(fn):
            def hook(_module, args):
                positions = state.positions.to(args[0].device)
                return (fn(args[0], positions, start), *args[1:])
            return hook

        handles = [adapter.model.register_forward_pre_hook(capture, with_kwargs=True)]
        try:
            for index, fn in self.layer_hooks.items():
                handles.append(adapter.layers[index].register_forward_hook(
                    layer_hook(fn), with_kwargs=True))
            for module, fn in self.pre_hooks.items():
                handles.append(module.register_forward_pre_hook(pre_hook(fn)))
            yield
        finally:
            for handle in handles:
                handle.remove()


def check_intervention(value: Any) -> Intervention:
    if not isinstance(value, Intervention):
        raise TypeError(f"intervention must be an inferviz Steer, Ablate or Patch; got "
                        f"{type(value).__name__}")
    return value


def divergence(intervention: Intervention, logprobs: torch.Tensor,
               plain_logprobs: torch.Tensor, k: int = 5) -> list[dict[str, Any]]:
    """Per row, what an intervened child records: the intervention (``intervention`` label,
    ``intervention_key``), ``kl`` = KL(intervened ‖ plain) in nats over the whole vocabulary,
    and ``top5_overlap``: how many of the intervened top-5 tokens are in the plain top-5."""
    p = logprobs.exp()
    terms = torch.where(p > 0, p * (logprobs - plain_logprobs), torch.zeros_like(p))
    kl = terms.sum(-1).clamp_min(0.0)
    top = torch.topk(logprobs, k, dim=-1).indices
    top_plain = torch.topk(plain_logprobs, k, dim=-1).indices
    out = []
    for row in range(logprobs.shape[0]):
        overlap = len(set(top[row].tolist()) & set(top_plain[row].tolist()))
        value = float(kl[row])
        out.append({"intervention": intervention.label, "intervention_key": intervention.key,
                    "kl": value if math.isfinite(value) else None, "top5_overlap": overlap})
    return out
