"""Request batching: concurrent "expand this node" requests coalesced into one forward.

Widget clicks, several explorers or several threads each ask for the children of one node. A
:class:`RequestBatcher` queues them; its worker thread takes the first waiting request, waits up
to ``batch_timeout`` seconds for more (at most ``batch_size`` in all),
computes every node's next-token scores in one backend call (one forward locally, requests all
in flight together on a server; rows may come from different trees; identical rows are computed
once), and records each node's top-``k`` children into its own tree
before resolving that request's future. Children are keyed by token id, so two requests for the
same node never duplicate a child.

    with RequestBatcher(session, batch_size=16, batch_timeout=0.005) as batcher:
        future = batcher.submit(tree, node_id, k=5, temperature=0.7)
        children = future.result()        # list[Node], best first

``Session.expand`` stays synchronous; the batcher is for callers that arrive concurrently.
Every session has one, made on first use (``session.batcher``, or ``session.submit_expand``);
the tree widget sends its clicks through it, so clicks in several explorers on one session
(or a click while a thread expands) share a forward.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from .processors import SamplerSettings
from .tree import Node, TokenTree
from .validate import check_int

_STOP = object()


@dataclass
class _Request:
    tree: TokenTree
    node_id: int
    seq: list[int]
    k: int
    settings: SamplerSettings
    future: Future
    constraint: Any = None  # an iv.Regex / JSONSchema / ... the children keep to, or None


@dataclass
class BatcherStats:
    requests: int = 0   # requests served
    batches: int = 0    # engine calls (each one forward unless the engine had to split)
    largest_batch: int = 0


def check_batch_args(batch_size: Any, batch_timeout: Any) -> tuple[int, float]:
    """Validated ``(batch_size, batch_timeout)``; ValueError naming the argument otherwise."""
    check_int("batch_size", batch_size, 1)
    if isinstance(batch_timeout, bool) or not isinstance(batch_timeout, (int, float)) \
            or not 0 <= batch_timeout <= 60:
        raise ValueError(f"batch_timeout must be a number of seconds in [0, 60]; "
                         f"got {batch_timeout!r}")
    return batch_size, float(batch_timeout)


class RequestBatcher:
    """Coalesces concurrent expand requests on one :class:`~inferviz.session.Session`.

    ``batch_size``: most requests in one forward (int >= 1). ``batch_timeout``: seconds the
    worker waits after the first request of a batch for more to arrive (>= 0)."""

    def __init__(self, session: Any, batch_size: int = 16, batch_timeout: float = 0.005) -> None:
        batch_size, batch_timeout = check_batch_args(batch_size, batch_timeout)
        self.session = session
        self.batch_size = batch_size
        self.batch_timeout = batch_timeout
        self.stats = BatcherStats()
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._close_lock = threading.Lock()
        self._worker = threading.Thread(target=self._loop, name="inferviz-batcher", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------ public
    def submit(self, tree: TokenTree, node_id: int, k: int = 5, temperature: float = 1.0,
               top_k: int | None = None, top_p: float | None = None,
               min_p: float | None = None, constraint: Any = None,
               **processors: Any) -> "Future[list[Node]]":
        """Queue an expansion of ``node_id``; the future resolves to its ``k`` most likely
        children (by raw probability, best first; under ``constraint`` the most likely legal
        ones), as ``Session.expand`` would return them. Invalid arguments raise here, in the
        caller's thread."""
        from .constraints import check_constraint

        if not isinstance(tree, TokenTree):
            raise TypeError(f"tree must be a TokenTree; got {type(tree).__name__}")
        tree.node(node_id)  # KeyError naming the id if it is not in the tree
        settings = self.session.expand_settings(k, temperature=temperature, top_k=top_k,
                                                top_p=top_p, min_p=min_p, **processors)
        constraint = check_constraint(constraint)
        if constraint is not None:
            self.session.constrained(constraint)  # a session that cannot says so now
        seq = tree.token_ids(node_id)
        self.session.check_context(seq)
        future: Future = Future()
        with self._close_lock:
            if self._closed:
                raise RuntimeError("this RequestBatcher is closed; create a new one")
            self._queue.put(_Request(tree, node_id, seq, k, settings, future, constraint))
        return future

    def expand(self, tree: TokenTree, node_id: int, k: int = 5, **settings: Any) -> list[Node]:
        """``submit(...).result()``: blocks this thread while others' requests join the batch."""
        return self.submit(tree, node_id, k, **settings).result()

    def close(self, wait: bool = True) -> None:
        """Serve what is queued, then stop the worker."""
        with self._close_lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_STOP)
        if wait and threading.current_thread() is not self._worker:
            self._worker.join()

    def __enter__(self) -> "RequestBatcher":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ worker
    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            deadline = time.monotonic() + self.batch_timeout
            while len(batch) < self.batch_size:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True  # serve this batch, then stop
                    break
                batch.append(item)
            self._serve(batch)

    def _serve(self, batch: list[_Request]) -> None:
        live = [r for r in batch if r.future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            scores = self.session.backend.next_token([r.seq for r in live])
        except BaseException as err:  # every waiting caller hears about it
            for request in live:
                request.future.set_exception(err)
            return
        self.stats.batches += 1
        self.stats.requests += len(live)
        self.stats.largest_batch = max(self.stats.largest_batch, len(live))
        groups: dict[tuple, list[int]] = {}  # rows sharing settings are scored together
        for row, request in enumerate(live):
            key = request.constraint.key if request.constraint is not None else None
            groups.setdefault((request.settings, key), []).append(row)
        for rows in groups.values():
            requests = [live[row] for row in rows]
            try:
                dists = self._distributions(requests, scores.rows(rows))
            except BaseException as err:
                for request in requests:
                    request.future.set_exception(err)
                continue
            scorer = self.session.constrained(requests[0].constraint)
            for i, request in enumerate(requests):
                try:
                    children = scorer.add_top_children(request.tree, dists, [request.node_id],
                                                       request.k, rows=[i])
                except BaseException as err:
                    request.future.set_exception(err)
                else:
                    request.future.set_result(children)

    def _distributions(self, requests: list[_Request], scores: Any):
        """Distributions of requests sharing settings and constraint, from their scores."""
        seqs, ids = [r.seq for r in requests], [r.node_id for r in requests]
        constraint = requests[0].constraint
        if constraint is None:
            return self.session.sequence_distributions(seqs, ids, requests[0].settings,
                                                       scores=scores)
        import numpy as np

        from .constraint_masks import tracker_for

        legal = np.concatenate([tracker_for(self.session, r.tree, constraint).legal([r.node_id])
                                for r in requests])
        view = self.session.constrained(constraint)
        dists = view.sequence_distributions(seqs, ids, requests[0].settings, scores=scores,
                                            legal=legal)
        for request in requests:
            self.session._record_constraint(request.tree, constraint)
        return dists
