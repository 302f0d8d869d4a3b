"""The standalone HTML export opens from disk with no network and draws the tree; a synthetic
5,000-node tree is timed (printed, not asserted)."""

from __future__ import annotations

import random

import pytest
from e2e_helpers import NODES

from inferviz.tree import TokenTree
from inferviz.widgets.export.tree_page import write_tree_html

pytestmark = pytest.mark.browser


def synthetic_tree(n: int, seed: int = 0) -> TokenTree:
    rng = random.Random(seed)
    tree = TokenTree("Once upon a time", [1, 2, 3], model="synthetic")
    ids = [tree.root_id]
    while len(tree) < n:
        parent = rng.choice(ids[-200:])
        token = rng.randrange(50_000)
        child = tree.add_child(parent, token, f" w{token}".encode(), -3 * rng.random(),
                               rng.random(), rng.randrange(10), 4 * rng.random(), notify=False)
        ids.append(child.node_id)
    return tree


def open_offline(page, path):
    """Open a file URL, failing any request that is not for that file."""
    requests: list[str] = []

    def route(r):
        if r.request.url.startswith("file://") or r.request.url.startswith("blob:"):
            r.continue_()
        else:
            requests.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(path.as_uri())
    return requests


def test_export_draws_the_tree_offline_and_selects_on_click(page, tmp_path):
    tree = synthetic_tree(40)
    path = write_tree_html(tmp_path / "tree.html", tree)
    requests = open_offline(page, path)
    page.wait_for_selector(NODES)
    assert page.locator(NODES).count() == 40
    page.locator(".inferviz-tree g.inferviz-node[data-node-id='5']").dispatch_event("click")
    page.wait_for_selector(".inferviz-tree g.inferviz-node.selected[data-node-id='5']")
    # Expanding needs a kernel: the static page says so instead of failing silently.
    page.locator(".inferviz-tree g.inferviz-node.leaf").first.dispatch_event("click")
    page.wait_for_function("document.querySelector('.inferviz-tree .inferviz-error')"
                           ".textContent.includes('read-only')")
    assert page.locator(NODES).count() == 40
    assert requests == [] and not page.js_errors


def test_five_thousand_node_export_draw_time(page, tmp_path):
    tree = synthetic_tree(5000)
    path = write_tree_html(tmp_path / "big.html", tree, selected=5)
    size_kb = path.stat().st_size / 1024
    open_offline(page, path)
    page.wait_for_function(f"document.querySelectorAll({NODES!r}).length === 5000",
                           timeout=120_000)
    marks = page.evaluate("() => ({render: window.inferviz.renderEnd - window.inferviz.renderStart,"
                          " total: performance.now()})")
    print(f"\n[measure] static export: 5,000-node tree ({size_kb:.0f} KiB file) drawn in "
          f"{marks['render']:.0f} ms (render call); nodes in DOM {marks['total']:.0f} ms after "
          f"navigation start")
    assert not page.js_errors
