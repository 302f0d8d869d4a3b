"""The Voila dashboard: ``serve`` starts it (``inferviz demo``), ``load_session`` is what its
notebook calls. ``launcher`` builds the notebook and the Voila command, ``voila_app`` is the
server with its policies, ``owned_processes`` and ``model_warmup`` what ``inferviz demo`` runs."""

from .launcher import load_session, serve

__all__ = ["load_session", "serve"]
