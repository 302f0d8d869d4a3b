"""What inferviz shows in Jupyter, in rooms: ``views`` (the anywidgets and their protocol),
``export`` (HTML of results: static pages, fragments), ``figures`` (plotly), ``app`` (the
explorer application) and ``dashboard`` (the Voila launcher). Imports point one way: ``app``
and ``dashboard`` use ``views`` and ``export``; ``export`` uses ``views``; ``views`` never
imports ``app`` or ``dashboard``. Importing this imports anywidget; the core never does."""

from .views.lens_widget import LensWidget
from .views.text_view import TextView
from .views.tree_widget import TreeWidget

__all__ = ["LensWidget", "TextView", "TreeWidget"]
