"""HTML of results: the standalone tree page (``tree_page``), where exports are written
(``policy``), the token table (``token_table_html``) and comparisons (``compare_view``)."""
