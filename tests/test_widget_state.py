"""Widget state: columnar, small, follows the tree as it grows; the built bundle ships."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from inferviz.tree import CORE_COLUMNS, TokenTree
from inferviz.widgets import LensWidget, TreeWidget
from inferviz.widgets.views.columns import decode_column, encode_columns

STATIC = Path(__file__).resolve().parent.parent / "inferviz" / "static"


def make_tree() -> TokenTree:
    tree = TokenTree("Hi", [1, 2])
    tree.add_child(0, 11, b" there", -0.3, 0.7, 0, 1.2)
    tree.add_child(0, 12, b"!", -1.5, 0.2, 1, 1.2)
    return tree


def decoded(widget: TreeWidget) -> dict[str, list]:
    nodes = widget.nodes
    return {name: decode_column(nodes["columns"][name]) for name in nodes["names"]}


class CountingSession:
    def expand(self, tree, node_id, *, k, temperature, top_k, top_p, min_p):
        return [
            tree.add_child(node_id, 200 + i, f"<{i}>".encode(), -1.0, 0.1, i, 2.0) for i in range(k)
        ]


# ------------------------------------------------------------------ columnar state
def test_nodes_trait_is_columnar_and_matches_to_columns():
    tree = make_tree()
    widget = TreeWidget(tree)
    nodes = widget.nodes
    assert nodes["n"] == 3
    assert nodes["names"][: len(CORE_COLUMNS)] == list(CORE_COLUMNS)
    assert set(nodes["columns"]) == set(nodes["names"])
    assert decoded(widget) == tree.to_columns()


def test_numeric_columns_travel_as_binary_buffers():
    widget = TreeWidget(make_tree())
    columns = widget.nodes["columns"]
    for name in ("node_id", "parent_id", "raw_logprob", "prob", "rank", "entropy"):
        assert columns[name]["dtype"] == "f64"
        assert isinstance(columns[name]["data"], bytes)
        assert len(columns[name]["data"]) == 8 * 3
    assert columns["token"] == {"dtype": "str", "data": ["Hi", " there", "!"]}


def test_ipywidgets_ships_the_numeric_columns_as_binary_buffers():
    from ipywidgets.widgets.widget import _remove_buffers

    _, paths, buffers = _remove_buffers({"nodes": TreeWidget(make_tree()).nodes})
    assert ["nodes", "columns", "prob", "data"] in paths
    assert len(buffers) == len(paths) >= len(CORE_COLUMNS) - 1  # every column but token


def test_synced_traits_do_not_grow_with_the_tree():
    tree = make_tree()
    widget = TreeWidget(tree)
    keys_before = set(widget.keys)
    for i in range(50):
        tree.add_child(1, 1000 + i, b"x", -3.0, 0.01, i, 3.0)
    assert set(widget.keys) == keys_before
    assert widget.nodes["n"] == 53


def test_strategy_meta_columns_are_encoded_by_type():
    tree = make_tree()
    tree.add_child(
        1,
        21,
        b" a",
        -0.1,
        0.9,
        0,
        0.5,
        meta={
            "beam_kept": True,
            "beam_score": -0.4,
            "smc_count": 3,
            "cd_score": -math.inf,
            "label": "kept",
        },
    )
    cols = TreeWidget(tree).nodes["columns"]
    assert cols["beam_kept"]["dtype"] == "bool"
    assert cols["smc_count"]["dtype"] == "f64"
    assert cols["label"]["dtype"] == "str"
    assert decode_column(cols["beam_kept"]) == [None, None, None, True]
    assert decode_column(cols["cd_score"])[-1] == -math.inf


def test_mixed_meta_values_fall_back_to_strict_json():
    encoded = encode_columns({"x": [None, {"a": math.nan}, [1, math.inf]]})
    assert encoded["columns"]["x"] == {"dtype": "json", "data": [None, {"a": "nan"}, [1, "inf"]]}


# ------------------------------------------------------------------ live growth
def test_new_nodes_appear_when_the_tree_grows():
    tree = make_tree()
    widget = TreeWidget(tree)
    child = tree.add_child(1, 31, b"\n", -0.2, 0.8, 0, 0.9)
    assert widget.nodes["n"] == 4
    assert decoded(widget)["node_id"][-1] == child.node_id
    assert decoded(widget)["token"][-1] == "\n"


def test_updated_nodes_are_resent():
    tree = make_tree()
    widget = TreeWidget(tree)
    tree.add_child(0, 11, b" there", -0.3, 0.25, 0, 1.2)  # same token, new sampler settings
    assert decoded(widget)["prob"][1] == 0.25


def test_one_expansion_sends_the_tree_once():
    tree = make_tree()
    widget = TreeWidget(tree, session=CountingSession(), k=5)
    changes: list[int] = []
    widget.observe(lambda change: changes.append(change["new"]["n"]), names="nodes")
    widget.expand(1)
    assert changes == [8]


def test_a_late_view_gets_the_current_tree_from_the_trait_state():
    tree = make_tree()
    widget = TreeWidget(tree, session=CountingSession(), k=2)
    widget.expand(2)
    state = widget.get_state()
    assert state["nodes"]["n"] == 5


def test_selected_text_follows_the_selection():
    tree = make_tree()
    widget = TreeWidget(tree)
    widget.selected = 1
    assert widget.selected_text == "Hi there"
    widget.selected = None
    assert widget.selected_text == ""


def test_closed_widget_stops_following_the_tree():
    tree = make_tree()
    widget = TreeWidget(tree)
    widget.close()
    tree.add_child(1, 99, b"z", -1.0, 0.1, 0, 1.0)
    assert not tree._listeners


def test_settings_traits_hold_the_constructor_values():
    widget = TreeWidget(make_tree(), k=8, temperature=0.5, top_k=40, top_p=0.95, min_p=0.05)
    assert widget.params() == {
        "k": 8,
        "temperature": 0.5,
        "top_k": 40,
        "top_p": 0.95,
        "min_p": 0.05,
    }
    assert widget.read_only is True and widget.error == "" and widget.pending == []


# ------------------------------------------------------------------ bundle
@pytest.mark.parametrize("name", ["tree.js", "lens.js", "tree.css", "lens.css"])
def test_built_static_files_exist_and_are_not_empty(name):
    path = STATIC / name
    assert path.is_file(), f"{path} missing: run `cd js && npm install && npm run build`"
    assert path.stat().st_size > 0


def test_widgets_load_their_bundle_from_static():
    assert "inferviz-tree" in TreeWidget(make_tree())._esm
    assert "inferviz-lens" in LensWidget(lens_result())._esm


def test_importing_the_core_does_not_import_widgets():
    code = (
        "import sys, inferviz, inferviz.tree; "
        "assert 'inferviz.widgets' not in sys.modules and 'anywidget' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ lens
def lens_result(layers: int = 3, positions: int = 4, k: int = 2):
    rng = np.random.default_rng(0)
    shape = (layers, positions)
    return SimpleNamespace(
        token_ids=rng.integers(0, 100, size=(*shape, k)),
        probs=rng.random((*shape, k)),
        entropy=rng.random(shape),
        kl_to_final=rng.random(shape),
        final_top_rank=rng.integers(0, 5, size=shape),
        top_tokens=[
            [[f"t{layer}{p}{r}" for r in range(k)] for p in range(positions)] for layer in range(layers)
        ],
        input_tokens=[f"in{p}" for p in range(positions)],
        layer_names=["embed", *[str(i) for i in range(1, layers - 1)], "final"],
    )


def test_lens_state_is_compact_arrays():
    result = lens_result()
    lens = LensWidget(result).lens
    assert (lens["n_layers"], lens["n_positions"], lens["k"]) == (3, 4, 2)
    assert lens["probs"]["shape"] == [3, 4, 2] and isinstance(lens["probs"]["data"], bytes)
    probs = np.frombuffer(lens["probs"]["data"], "<f4").reshape(3, 4, 2)
    np.testing.assert_allclose(probs, result.probs, rtol=1e-6)
    ids = np.frombuffer(lens["token_ids"]["data"], "<i4").reshape(3, 4, 2)
    np.testing.assert_array_equal(ids, result.token_ids)
    assert lens["top_tokens"][:3] == ["t000", "t001", "t010"]
    assert lens["layer_names"] == ["embed", "1", "final"]


def test_lens_color_by_and_pinned_are_validated():
    widget = LensWidget(lens_result(), color_by="entropy")
    assert widget.color_by == "entropy"
    with pytest.raises(ValueError, match="color_by"):
        LensWidget(lens_result(), color_by="rainbow")
    widget.pinned = [2, 3]
    with pytest.raises(ValueError, match="pinned"):
        widget.pinned = [3, 0]


def test_lens_rejects_mismatched_shapes():
    result = lens_result()
    result.entropy = np.zeros((2, 4))
    with pytest.raises(ValueError, match="entropy"):
        LensWidget(result)
    result = lens_result()
    result.input_tokens = ["a"]
    with pytest.raises(ValueError, match="input_tokens"):
        LensWidget(result)


# ------------------------------------------------------------------ deltas
def capture_messages(widget: TreeWidget) -> list[tuple[dict, list]]:
    sent: list[tuple[dict, list]] = []
    widget._send_delta = lambda content, buffers=None: sent.append((content, list(buffers or [])))
    return sent


def deltas(sent: list[tuple[dict, list]]) -> list[tuple[dict, list]]:
    return [(c, b) for c, b in sent if c.get("kind") == "inferviz:delta"]


def test_a_change_sends_only_the_new_rows_as_a_delta():
    tree = make_tree()
    widget = TreeWidget(tree, session=CountingSession(), k=3)
    sent = capture_messages(widget)
    widget.expand(1)
    [(content, buffers)] = deltas(sent)
    rows = np.frombuffer(buffers[content["rows"]["buffer"]], "<f8").tolist()
    assert rows == [3.0, 4.0, 5.0]
    assert content["base"] == 0 and content["version"] == 1 and content["n"] == 6
    assert content["columns"]["token"] == {"dtype": "str", "data": ["<0>", "<1>", "<2>"]}


def apply_delta(columns: dict[str, list], content: dict[str, Any],
                buffers: list[bytes]) -> dict[str, list]:
    """Python twin of ``applyDelta`` in ``js/src/tree/store.js``: the new columns dict."""
    rows = [int(r) for r in np.frombuffer(bytes(buffers[content["rows"]["buffer"]]), "<f8")]
    n = max(content["n"], len(columns.get("node_id", [])))
    out = {name: list(values) + [None] * (n - len(values)) for name, values in columns.items()}
    for name in content["names"]:
        encoded = dict(content["columns"][name])
        if "buffer" in encoded:
            encoded["data"] = buffers[encoded.pop("buffer")]
        values = decode_column(encoded)
        column = out.setdefault(name, [None] * n)
        for row, value in zip(rows, values):
            column[row] = value
    return out


def test_applying_the_deltas_gives_the_tree_and_the_snapshot_stays_current():
    tree = make_tree()
    widget = TreeWidget(tree, session=CountingSession(), k=2)
    view = decoded(widget)
    sent = capture_messages(widget)
    widget.expand(1)
    tree.add_child(0, 11, b" there", -0.3, 0.25, 0, 1.2, meta={"beam_kept": True})  # an update
    widget.expand(4)
    for content, buffers in deltas(sent):
        view = apply_delta(view, content, buffers)
    assert view == tree.to_columns()
    assert decoded(widget) == tree.to_columns()
    assert widget.nodes["version"] == len(deltas(sent)) == 3


def test_an_update_resends_only_the_changed_row():
    tree = make_tree()
    widget = TreeWidget(tree)
    sent = capture_messages(widget)
    tree.add_child(0, 12, b"!", -1.5, 0.05, 1, 1.2)
    [(content, buffers)] = deltas(sent)
    assert np.frombuffer(buffers[0], "<f8").tolist() == [2.0]


def test_the_nodes_snapshot_is_not_sent_on_each_change():
    tree = make_tree()
    widget = TreeWidget(tree)
    states: list = []
    widget.send_state = lambda key=None: states.append(key)
    tree.add_child(1, 31, b"\n", -0.2, 0.8, 0, 0.9)
    assert "nodes" not in states and widget.nodes["n"] == 4


def test_a_view_that_missed_a_delta_gets_the_snapshot_on_request():
    tree = make_tree()
    widget = TreeWidget(tree)
    states: list = []
    widget.send_state = lambda key=None: states.append(key)
    widget._handle_message({"kind": "inferviz:request", "id": "s1", "action": "snapshot"}, [])
    assert states == ["nodes"]


def test_no_message_when_nothing_changed():
    widget = TreeWidget(make_tree())
    sent = capture_messages(widget)
    widget.refresh()
    assert sent == []


def test_changed_rows_sees_new_rows_updates_and_new_columns():
    from inferviz.widgets.views.columns import changed_rows

    before = {"node_id": [0, 1, 2], "prob": [1.0, 0.5, 0.25]}
    after = {"node_id": [0, 1, 2, 3], "prob": [1.0, 0.5, 0.3, 0.1], "beam_kept": [None, True, None, None]}
    assert changed_rows(before, after) == [1, 2, 3]
    with pytest.raises(ValueError, match="only grows"):
        changed_rows(after, before)


def bytes_per_click(n: int = 5000, clicks: int = 10) -> dict:
    """What one click adding 5 nodes to an ``n``-node tree sends (a delta) vs the whole
    snapshot, and the kernel's time a click (also reported by bench/tree_view.py)."""
    import json
    import random
    import time

    rng = random.Random(0)
    tree = TokenTree("Once upon a time", [1, 2, 3])
    ids = [tree.root_id]
    while len(tree) < n:
        child = tree.add_child(rng.choice(ids[-300:]), rng.randrange(50_000), b" w", -1.0,
                               rng.random(), rng.randrange(10), 2.0, notify=False,
                               meta={"strategy": "sample"})
        ids.append(child.node_id)
    widget = TreeWidget(tree, session=CountingSession(), k=5)
    snapshot = sum(len(c["data"]) if isinstance(c["data"], bytes) else len(json.dumps(c["data"]))
                   for c in widget.nodes["columns"].values())
    sent = capture_messages(widget)
    t0 = time.perf_counter()
    for leaf in [node.node_id for node in tree.leaves()[:clicks]]:
        widget.expand(leaf)
    kernel_ms = (time.perf_counter() - t0) * 1000 / clicks
    sizes = [len(json.dumps(c)) + sum(len(b) for b in bufs) for c, bufs in deltas(sent)]
    per_click = sum(sizes) / max(1, len(sizes))
    return {"nodes": n, "clicks": len(sizes), "bytes_per_click": round(per_click),
            "max_click_bytes": max(sizes, default=0), "snapshot_bytes": snapshot,
            "ratio_snapshot_over_click": round(snapshot / per_click, 1),
            "kernel_ms_per_click": round(kernel_ms, 2)}


def test_bytes_per_click_on_a_5000_node_tree(capsys):
    figures = bytes_per_click()
    assert figures["clicks"] == 10
    with capsys.disabled():
        print(f"\n[measure] 5,000-node tree, one click adding 5 nodes: "
              f"{figures['bytes_per_click']} bytes per click as a delta vs "
              f"{figures['snapshot_bytes']} bytes for the whole snapshot "
              f"({figures['ratio_snapshot_over_click']:.0f}x less); kernel "
              f"{figures['kernel_ms_per_click']:.1f} ms per click")
    assert figures["max_click_bytes"] < figures["snapshot_bytes"] / 20


# ------------------------------------------------------------------ errors and hooks
def test_error_is_cleared_by_a_later_valid_change():
    widget = TreeWidget(make_tree(), session=CountingSession())
    widget.set_state({"k": 0})
    assert "k must be" in widget.error
    widget.set_state({"k": 3})
    assert widget.error == ""
    widget.set_state({"top_p": 7})
    assert widget.error
    widget.expand(2)
    assert widget.error == ""


def test_select_and_mark_hooks_for_other_views():
    from inferviz.widgets.views.columns import decode_column

    widget = TreeWidget(make_tree())
    widget.select(2)
    assert widget.selected == 2 and widget.selected_text == "Hi!"
    with pytest.raises(ValueError, match="not in this tree"):
        widget.select(99)
    sent = capture_messages(widget)
    widget.mark([1], "diverges")
    assert decode_column(widget.nodes["columns"]["mark"]) == [None, "diverges", None]
    assert len(deltas(sent)) == 1
    widget.mark(1, None)
    assert decode_column(widget.nodes["columns"]["mark"]) == [None, None, None]
    with pytest.raises(ValueError, match="label"):
        widget.mark(1, "")


def test_height_is_checked():
    assert TreeWidget(make_tree(), height=800).height == 800
    with pytest.raises(ValueError, match="height"):
        TreeWidget(make_tree(), height=10)


def test_static_export_state_has_no_sampler_settings_and_is_read_only():
    from inferviz.widgets.export.tree_page import tree_html, tree_state

    state = tree_state(make_tree(), selected=1)
    assert state["static"] is True and state["read_only"] is True
    assert not {"k", "temperature", "top_k", "top_p", "min_p"} & set(state)
    assert state["selected_text"] == "Hi there" and state["nodes"]["version"] == 0
    with pytest.raises(ValueError, match="height"):
        tree_state(make_tree(), height=5)
    assert '"static": true' in tree_html(make_tree())


def test_a_rolled_back_run_sends_the_smaller_snapshot_not_a_delta():
    tree = make_tree()
    widget = TreeWidget(tree)
    journal = tree.begin_journal()
    tree.add_child(1, 31, b"\n", -0.2, 0.8, 0, 0.9)  # a delta: version 1
    assert widget.nodes["n"] == 4
    sent = capture_messages(widget)
    tree.rollback(journal)  # the run failed: its node goes away
    tree.end_journal()
    assert deltas(sent) == []
    assert decoded(widget) == tree.to_columns() and widget.nodes["n"] == 3
    assert widget.nodes["version"] == 2  # newer than every delta a view has applied


def test_a_view_opening_behind_the_kernel_gets_the_snapshot_and_one_up_to_date_does_not():
    tree = make_tree()
    widget = TreeWidget(tree)
    states: list = []
    widget.send_state = lambda key=None: states.append(key)
    opened = {"kind": "inferviz:request", "id": "snapshot-open", "action": "snapshot"}
    widget._handle_message({**opened, "version": widget.nodes["version"]}, [])
    assert states == []  # the page holds the current version: nothing to send
    widget.mark([1], "diverges")  # a change made before the page listened for deltas
    widget._handle_message({**opened, "version": 0}, [])
    assert states == ["nodes"] and decoded(widget)["mark"][1] == "diverges"
