"""What an SMC run leaves behind: its step-by-step history (:class:`SMCRecord`) and the result
it returns (:class:`SMCResult`). The algorithm lives in :mod:`inferviz.strategies.smc`; this
module only stores and exports (llamppl keeps algorithm and record apart the same way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .result import GenerationResult


@dataclass
class SMCStep:
    """One SMC step, all arrays of length N (particles).

    node_ids       node each particle sits on after this step's proposal
    log_weights    unnormalised log-weights after this step's update, BEFORE any resampling
    ancestors      index of the particle of the previous step each one descends from
                   (None at step 0)
    finished       particle has emitted EOS (it stays on its node from then on)
    moved          particle advanced onto ``node_ids[i]`` at this step (live, not finished before)
    resampled_to   ancestor indices drawn after this step, or None if no resampling happened
    """

    step: int
    node_ids: list[int]
    log_weights: list[float]
    ancestors: list[int] | None
    finished: list[bool]
    moved: list[bool]
    ess: float
    resampled_to: list[int] | None = None


@dataclass
class SMCRecord:
    """History of one SMC run: step 0 (every particle on the start node) then one
    :class:`SMCStep` per step. Node ids are those of the tree the run wrote into."""

    num_particles: int
    steps: list[SMCStep] = field(default_factory=list)
    final_node_ids: list[int] = field(default_factory=list)
    final_log_weights: list[float] = field(default_factory=list)

    def add(self, step: SMCStep) -> None:
        self.steps.append(step)

    def finish(self, node_ids: list[int], log_weights: list[float]) -> None:
        """The particles at the end (the last step's, or their resampled copies)."""
        self.final_node_ids = list(node_ids)
        self.final_log_weights = [float(x) for x in log_weights]

    @property
    def ess(self) -> list[float]:
        return [s.ess for s in self.steps[1:]]

    @property
    def resampling_events(self) -> list[dict[str, Any]]:
        return [{"step": s.step, "ancestors": list(s.resampled_to)}
                for s in self.steps if s.resampled_to is not None]

    def node_meta(self) -> dict[int, dict[str, Any]]:
        """Tree meta of every node a particle moved onto: ``smc_step``, ``smc_count`` (particles
        that reached it), ``smc_weight`` (their normalised weight, before resampling),
        ``smc_resampled`` (resampling followed that step), ``smc_alive`` (a final particle sits on
        it or below it) and, on final particle nodes, ``smc_final_weight``."""
        meta: dict[int, dict[str, Any]] = {}
        for s in self.steps[1:]:
            meta.update(step_node_meta(s))  # a node is reached at one step only (its depth)
        for node_id, weight in final_node_weights(self).items():
            if node_id in meta:
                meta[node_id]["smc_final_weight"] = weight
        return meta

    def genealogy_columns(self) -> dict[str, list]:
        """Column-wise genealogy: one row per (step, particle), step 0 included."""
        cols: dict[str, list] = {k: [] for k in ("step", "particle", "node_id", "ancestor",
                                                 "log_weight", "weight", "finished", "resampled")}
        for s in self.steps:
            weights = normalized(s.log_weights)
            for i in range(self.num_particles):
                cols["step"].append(s.step)
                cols["particle"].append(i)
                cols["node_id"].append(s.node_ids[i])
                cols["ancestor"].append(None if s.ancestors is None else s.ancestors[i])
                cols["log_weight"].append(s.log_weights[i])
                cols["weight"].append(float(weights[i]))
                cols["finished"].append(s.finished[i])
                cols["resampled"].append(s.resampled_to is not None)
        return cols


def step_node_meta(step: SMCStep) -> dict[int, dict[str, Any]]:
    """Meta of the nodes particles moved onto at ``step`` (see :meth:`SMCRecord.node_meta`)."""
    weights = normalized(step.log_weights)
    meta: dict[int, dict[str, Any]] = {}
    for i, node_id in enumerate(step.node_ids):
        if not step.moved[i]:
            continue
        m = meta.setdefault(node_id, {"strategy": "smc", "smc_step": step.step, "smc_count": 0,
                                      "smc_weight": 0.0,
                                      "smc_resampled": step.resampled_to is not None,
                                      "smc_alive": False})
        m["smc_count"] += 1
        m["smc_weight"] += float(weights[i])
    return meta


def normalized(log_weights: list[float]) -> np.ndarray:
    """exp(log_w - logsumexp(log_w)); all zeros when every weight is 0."""
    log_w = np.asarray(log_weights, dtype=np.float64)
    top = log_w.max()
    if top == -np.inf:
        return np.zeros_like(log_w)
    w = np.exp(log_w - top)
    return w / w.sum()


def final_node_weights(record: SMCRecord) -> dict[int, float]:
    """Normalised weight per distinct final node, heaviest first (ties: lower node id)."""
    out: dict[int, float] = {}
    for node_id, w in zip(record.final_node_ids, normalized(record.final_log_weights)):
        out[node_id] = out.get(node_id, 0.0) + float(w)
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass(repr=False)
class SMCResult(GenerationResult):
    """A finished SMC run.

    log_ml             log of the unbiased estimate of Z = sum over completed sequences x in the
                       proposal's support of p(x) * exp(potential(x)) (p: the model at temperature
                       1); -inf when every particle ended with weight 0
    ess                effective sample size after each step's weight update (before resampling)
    resampling_events  ``[{"step": t, "ancestors": [N ints, sorted]}]``, one per resampling
    posterior          distinct completed texts -> normalised weight, heaviest first
    particles          final ``(node_id, log_weight)`` of each of the N particles
    record             the full :class:`SMCRecord`
    """

    log_ml: float = -math.inf
    ess: list[float] = field(default_factory=list)
    resampling_events: list[dict[str, Any]] = field(default_factory=list)
    posterior: dict[str, float] = field(default_factory=dict)
    particles: list[tuple[int, float]] = field(default_factory=list)
    record: SMCRecord | None = None

    def genealogy(self):
        """DataFrame, one row per (step, particle): step, particle, node_id, ancestor (particle
        index at step-1, <NA> at step 0), log_weight (before resampling), weight (normalised),
        finished (EOS seen), resampled (resampling followed this step)."""
        import pandas as pd

        df = pd.DataFrame(self.record.genealogy_columns())
        df["ancestor"] = df["ancestor"].astype("Int64")
        return df

    def posterior_frame(self):
        """DataFrame of the posterior: text, weight (heaviest first)."""
        import pandas as pd

        return pd.DataFrame({"text": list(self.posterior), "weight": list(self.posterior.values())})

    def __repr__(self) -> str:
        partial = ", partial=True" if self.partial else ""
        return (f"SMCResult(particles={len(self.particles)}, log_ml={self.log_ml:.4f}, "
                f"resamplings={len(self.resampling_events)}, "
                f"finish_reason={self.finish_reason!r}{partial}, text={self.text!r})")
