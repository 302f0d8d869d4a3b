"""Markup in text that reaches a page (an error message, a token, a prompt, a label, a server's
reply) is shown as text and never becomes markup: one test per HTML producer, each sending
``<img onerror>``, ``<script>`` and quote breakers through it. Every producer escapes with
``inferviz.html_text.esc``; the JS views are covered by ``js/test/html_text.test.js``."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("plotly")

from fake_server import FakeServer

import inferviz as iv
from inferviz.backends import ServerLacks
from inferviz.html_text import esc
from inferviz.widgets import figures
from inferviz.widgets.app.explorer import LENS_TAB
from inferviz.widgets.app.run_controls import RunControls
from inferviz.widgets.dashboard.launcher import remote_cells
from inferviz.widgets.export.compare_view import comparison_html
from inferviz.widgets.export.token_table_html import token_table_html
from inferviz.widgets.export.tree_page import tree_html
from inferviz.widgets.views.text_view import text_view_html
from inferviz.widgets.views.visible_text import display_token

IMG = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(1)</script>"
QUOTES = "x' onmouseover='alert(1)' y=\"z\" onfocus=\"alert(1)"
MARKUP = (IMG, SCRIPT)
ERROR_PAGE = ("<html><body><h1>500 Internal Server Error</h1>"
              "<img src=x onerror=\"window.__xss=3;alert(3)\"><script>alert(3)</script>"
              "</body></html>")


class HtmlErrorServer(FakeServer):
    """The fake inference server, answering every POST with HTTP 500 and an HTML page (as a
    proxy in front of a crashed server does) while ``misbehave == "html_error"``. A stand-in
    for that mode of ``tests/fake_server.py`` (the browser test has its own proxy,
    ``tests/e2e/test_xss.py``)."""

    misbehave: str | None = None

    def _handle(self, handler, method: str, body) -> None:
        if method != "POST" or self.misbehave != "html_error":
            return super()._handle(handler, method, body)
        data = ERROR_PAGE.encode()
        handler.send_response(500)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        return None


class _Elements(HTMLParser):
    """Start tags with their attributes, and the text, of an HTML string as a browser reads
    them (entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def elements(html_text: str) -> _Elements:
    parser = _Elements()
    parser.feed(html_text)
    parser.close()
    return parser


def assert_inert(html_text: str, own_scripts: int = 0) -> _Elements:
    """No ``<img>``, no script but our own ``own_scripts``, no ``on...`` attribute: the markup
    sent in made no element and broke out of no attribute."""
    found = elements(html_text)
    assert not [t for t, _ in found.tags if t == "img"], html_text
    assert sum(t == "script" for t, _ in found.tags) == own_scripts, html_text
    handlers = [(t, a) for t, attrs in found.tags for a in attrs if a.startswith("on")]
    assert not handlers, handlers
    for markup in MARKUP:
        assert markup not in html_text
    return found


def shown(found: _Elements) -> str:
    """Everything a reader can see: the text and the attribute values (hover titles)."""
    values = [v or "" for _, attrs in found.tags for v in attrs.values()]
    return "".join(found.text) + "\n".join(values)


def markup_tree(session):
    """A tree whose prompt and tokens are markup (tokens crafted as bytes, as any tokenizer's
    could be)."""
    tree = session.tree(f"prompt {SCRIPT}")
    first = tree.add_child(tree.root_id, 5, IMG.encode(), -0.2, 0.8, 0, 1.0)
    second = tree.add_child(first.node_id, 6, QUOTES.encode(), -0.5, 0.6, 0, 1.2)
    tree.add_child(tree.root_id, 7, SCRIPT.encode(), -2.0, 0.1, 1, 1.0)
    return tree, second.node_id


@pytest.fixture()
def explorer(tiny_session):
    return tiny_session.explore("Hello world", max_new_tokens=2)


# ------------------------------------------------------------------ the explorer's status line
def test_failed_run_shows_markup_from_an_extra_parameter_as_text(explorer):
    explorer.controls.strategy.value = "sample"
    explorer.controls.extra.value = f"temperature={IMG + SCRIPT!r}"
    assert explorer.run(wait=True) is None  # the run failed on the bad temperature
    status = explorer.status.value
    assert "sample failed" in status
    found = assert_inert(status)
    assert esc(IMG) in status and esc(SCRIPT) in status
    assert IMG + SCRIPT in shown(found)


def test_guarded_action_error_shows_markup_as_text(explorer):
    explorer.controls.extra.value = f"{IMG} {QUOTES}"  # not name=value: refused by _guard
    explorer._guard(explorer.run)
    status = explorer.status.value
    assert "ValueError" in status and "inferviz-error" in status
    found = assert_inert(status)
    assert esc(IMG) in status
    assert IMG in shown(found) and "onmouseover=" in shown(found)


def test_finished_run_shows_generated_markup_as_text(explorer, monkeypatch):
    result = explorer.run(wait=True)
    monkeypatch.setattr(type(result), "text", property(lambda _self: IMG + QUOTES))
    explorer._finish(result)
    found = assert_inert(explorer.status.value)
    assert IMG + QUOTES in shown(found)


def test_failed_remote_run_shows_the_servers_html_error_page_as_text():
    from tiny_models import tiny_model, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    with HtmlErrorServer(tiny_model("llama"), tokenizer) as server, \
            iv.Session.connect(server.url, tokenizer=tokenizer, max_retries=0) as session:
        explorer = session.explore("t5 t6", max_new_tokens=2)
        server.misbehave = "html_error"
        assert explorer.run(wait=True) is None
    status = explorer.status.value
    assert "failed" in status and "500" in status
    text = shown(assert_inert(status))
    assert "<h1>500 Internal Server Error</h1>" in text and "onerror=" in text


def test_explorer_heading_shows_a_markup_model_name_as_text(tiny_session):
    tiny_session.name = IMG
    heading = tiny_session.explore().children[0].value
    assert IMG in shown(assert_inert(heading))


def test_token_table_and_lens_errors_from_a_server_show_as_text(explorer, monkeypatch):
    def lacks(*_args, **_kwargs):
        raise ServerLacks(f"the server says {IMG}{SCRIPT}")

    monkeypatch.setattr(explorer.session, "token_table", lacks)
    monkeypatch.setattr(explorer.session, "logit_lens", lacks)
    explorer.tabs.selected_index = LENS_TAB
    explorer.select(explorer.tree.root_id)
    for html_text in (explorer.table_html.value, explorer.lens_box.children[0].value):
        assert IMG + SCRIPT in shown(assert_inert(html_text))


# ------------------------------------------------------------------ tables, text, exports
def test_token_table_shows_markup_tokens_as_text():
    df = pd.DataFrame({"position": [0], "token": [IMG], "prob": [0.5], "logprob": [-0.7],
                       "rank": [0], "entropy": [1.0], "top_tokens": [[SCRIPT, QUOTES]]})
    df.attrs["perplexity"] = 2.0
    html_text = token_table_html(df)
    found = assert_inert(html_text)
    assert esc(display_token(IMG)) in html_text  # spaces shown as '·', as in the tree
    for markup in (IMG, SCRIPT, QUOTES):
        assert display_token(markup) in shown(found)


def test_text_view_offline_page_shows_markup_prompt_tokens_and_marks_as_text(tiny_session):
    tree, leaf = markup_tree(tiny_session)
    page = text_view_html(tree, leaf, full_page=True, marks={leaf: QUOTES + IMG})
    found = assert_inert(page)
    text = shown(found)
    assert SCRIPT in text and IMG in text and QUOTES in text
    titles = [a["title"] for t, a in found.tags if "title" in a]
    assert any(QUOTES in t for t in titles)  # the quote breaker stayed inside its title


def test_tree_html_export_shows_markup_in_title_and_keeps_tokens_out_of_markup(tiny_session):
    tree, leaf = markup_tree(tiny_session)
    tree.model = IMG
    page = tree_html(tree, selected=leaf, title=f"{SCRIPT}{QUOTES}")
    found = assert_inert(page, own_scripts=2)  # the state and the bootstrap
    assert SCRIPT + QUOTES in "".join(found.text) and IMG in "".join(found.text)
    state_text = page.split('<script id="inferviz-state" type="application/json">')[1]
    state_text = state_text.split("</script>")[0]
    assert "<" not in state_text  # no "</script>" nor "<!--<script>" can end it early
    assert IMG in json.loads(state_text)["selected_text"]


def test_tree_html_export_survives_a_token_that_opens_an_html_comment(tiny_session):
    tree = tiny_session.tree("Hi")
    tree.add_child(tree.root_id, 5, b"<!--<script>", -0.1, 0.9, 0, 1.0)
    page = tree_html(tree)
    # Inside <script>, "<!--<script>" makes the parser skip the element's own "</script>"
    # (the page's code would become data): the page must not contain it in any form.
    assert "<!--" not in page
    assert_inert(page, own_scripts=2)
    state_text = page.split('type="application/json">')[1].split("</script>")[0]
    assert json.loads(state_text)["nodes"]  # the state still parses, the token inside it


def test_comparison_view_shows_markup_labels_and_tokens_as_text(tiny_session):
    cmp = tiny_session.compare(f"prompt {SCRIPT}",
                               [{"strategy": "greedy", "label": IMG},
                                {"strategy": "sample", "label": QUOTES, "temperature": 5.0}],
                               max_new_tokens=3, seed=1)
    html_text = comparison_html(cmp)
    found = assert_inert(html_text)
    text = shown(found)
    assert IMG in text and QUOTES in text and SCRIPT in text
    # The offline tree page sits in the iframe's srcdoc, itself escaped: read it as the
    # browser does and check it the same way.
    srcdoc = next(a["srcdoc"] for t, a in found.tags if t == "iframe")
    assert IMG in "".join(assert_inert(srcdoc, own_scripts=2).text)


# ------------------------------------------------------------------ charts, controls, dashboard
def test_plotly_hover_texts_escape_markup_tokens(tiny_session):
    tree, leaf = markup_tree(tiny_session)
    for node in tree.nodes.values():
        if node.node_id != tree.root_id:
            node.meta.update(beam_score=-1.0, beam_step=node.depth, beam_kept=True)
    hovers = [text for fig in (figures.path_figure(tree, leaf), figures.beam_figure(tree))
              for trace in fig.data for text in trace.text]
    assert len(hovers) >= 5
    for text in hovers:
        assert "<" not in text and ">" not in text  # plotly draws tags in hover labels
        assert "&quot;" not in text  # plotly shows this entity as it is; "&#34;" it decodes
    assert any(esc(IMG) in text for text in hovers)


def test_run_controls_labels_are_text_not_html():
    controls = RunControls("greedy")
    labelled = [*controls.boxes.values(), controls.extra, controls.strategy,
                controls.from_selected]
    assert all(w.description_allow_html is False for w in labelled)


def test_remote_dashboard_markdown_shows_a_markup_url_as_text():
    markdown = remote_cells({"base_url": f"http://127.0.0.1:1/{IMG}"})[0][1]
    assert IMG not in markdown and esc(IMG) in markdown


def test_esc_escapes_quotes_and_replaces_lone_surrogates():
    assert esc(QUOTES) == QUOTES.replace("'", "&#x27;").replace('"', "&quot;")
    assert esc("a\ud800b") == "a\ufffdb"
    assert esc(3) == "3"
    assert re.fullmatch(r"[^<>]*", esc(IMG + SCRIPT))
