"""Every file inferviz writes is written atomically (inferviz/files.py): a write that fails keeps
the old file byte for byte and leaves no temporary file (docs/reliability.md, "Security")."""

from __future__ import annotations

import pytest

from inferviz import files
from inferviz.tree import TokenTree


def test_a_write_that_cannot_encode_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "page.html"
    target.write_text("old page")
    with pytest.raises(UnicodeEncodeError):
        files.write_text(target, "new \ud800 page")
    assert target.read_text() == "old page"
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]


def test_a_write_that_fails_midway_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "tree.json"
    target.write_text("old tree")

    def broken_replace(*_a):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        files.write_bytes(target, b"new tree")
    assert target.read_text() == "old tree"
    assert [p.name for p in tmp_path.iterdir()] == ["tree.json"]


def test_an_overwrite_keeps_the_file_mode(tmp_path):
    target = tmp_path / "x.csv"
    target.write_text("a")
    target.chmod(0o640)
    files.write_text(target, "b")
    assert target.read_text() == "b" and oct(target.stat().st_mode & 0o777) == "0o640"


def test_a_tree_page_with_a_lone_surrogate_in_the_prompt_is_written_whole(tmp_path):
    pytest.importorskip("anywidget")
    from inferviz.widgets.export.tree_page import write_tree_html

    target = tmp_path / "tree.html"
    target.write_text("old page")
    tree = TokenTree("broken prompt", [1, 2])
    tree.add_child(0, 5, b" a", -0.5, 0.6, 0, 1.2)
    tree.prompt = "broken \ud800 prompt"  # as a tree read from another tool's file may hold
    try:
        write_tree_html(target, tree)
    except UnicodeEncodeError:
        assert target.read_text() == "old page"  # refused, but nothing lost
    else:
        page = target.read_text(encoding="utf-8")
        assert "\ufffd" in page or "\\ud800" in page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree.html"]


def test_the_text_view_and_dashboard_writers_go_through_the_atomic_writer(tmp_path,
                                                                        monkeypatch):
    pytest.importorskip("nbformat")
    from inferviz.widgets.dashboard import launcher as dashboard

    calls = []
    real = files.write_text
    monkeypatch.setattr(files, "write_text", lambda p, t: calls.append(p) or real(p, t))
    dashboard.write_dashboard(tmp_path / "d.ipynb")
    assert calls == [tmp_path / "d.ipynb"]
