"""The seams of docs/architecture.md, checked on the source: strategies see a session's
capabilities, never where its logits come from; importing the core pulls in no view code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "inferviz"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def test_strategies_import_nothing_from_backends():
    for path in sorted((PACKAGE / "strategies").glob("*.py")):
        bad = [name for name in _imports(path) if "backends" in name]
        assert not bad, f"{path.name} imports {bad}"


def test_strategies_never_touch_the_engine_or_the_adapter():
    for path in sorted((PACKAGE / "strategies").glob("*.py")):
        text = path.read_text()
        for attr in ("session.engine", "session.adapter", "session.backend", '"backend"'):
            assert attr not in text, f"{path.name} reads {attr}"


def test_importing_the_core_and_running_greedy_loads_no_view_code():
    code = ("import sys\n"
            "sys.path.insert(0, 'tests')\n"
            "from tiny_models import tiny_session\n"
            "s = tiny_session('llama')\n"
            "s.generate('Hello', 'greedy', max_new_tokens=2)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('plotly', 'pandas', 'ipywidgets', 'anywidget') or m.startswith('inferviz.widgets'))\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PACKAGE.parent, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_widget_views_and_exports_import_neither_the_explorer_nor_the_dashboard():
    widgets = PACKAGE / "widgets"
    for room in ("views", "export"):
        for path in sorted((widgets / room).glob("*.py")):
            bad = [name for name in _imports(path)
                   if name.startswith(("..app", "..dashboard", "inferviz.widgets.app",
                                       "inferviz.widgets.dashboard"))]
            assert not bad, f"{room}/{path.name} imports {bad}"
