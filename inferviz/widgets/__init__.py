"""anywidget views of inferviz results. Importing this imports anywidget; the core never does."""

from .lens_widget import LensWidget
from .text_view import TextView
from .tree_widget import TreeWidget

__all__ = ["LensWidget", "TextView", "TreeWidget"]
