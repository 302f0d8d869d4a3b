"""The views: anywidgets (``tree_widget``, ``lens_widget``, ``text_view``) on one base
(``base``), their binary column protocol (``columns``) and request protocol (``protocol``), the
attribution view (plain HTML) and tokens as every view shows them (``visible_text``)."""
