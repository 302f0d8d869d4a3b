"""A tiny model made broken on purpose: its unembedding puts NaN or +inf into some columns."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def broken_logits(session, token_ids, value=float("nan")):
    """While active, every forward of ``session.model`` (engine, table, lens) returns ``value``
    in the logits of ``token_ids`` at every position; the hook is always removed."""
    head = session.model.get_output_embeddings()

    def poison(_module, _args, output):
        output = output.clone()
        output[..., list(token_ids)] = value
        return output

    handle = head.register_forward_hook(poison)
    try:
        yield
    finally:
        handle.remove()


def broken_lens_adapter(adapter, token_id: int, call: int | None = None):
    """A copy of ``adapter`` whose ``lens_logits`` puts NaN in column ``token_id`` (on every
    call, or only on the ``call``-th, 0-based). The model's own logits are untouched."""
    import dataclasses

    calls = []

    class BrokenLens(type(adapter)):
        def lens_logits(self, hidden):
            out = super().lens_logits(hidden)
            calls.append(1)
            if call is None or len(calls) - 1 == call:
                out = out.clone()
                out[..., token_id] = float("nan")
            return out

    fields = {f.name: getattr(adapter, f.name) for f in dataclasses.fields(adapter)}
    return BrokenLens(**fields)
