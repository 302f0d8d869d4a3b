"""Clear outputs, execution counts and saved widget state from notebooks (``make
clear-notebooks``): a notebook run in JupyterLab saves what it showed into the file, and the
notebooks in notebooks/ are committed without it (tests/test_setup.py checks).

    python scripts/clear_notebooks.py notebooks/*.ipynb
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def clear(nb: dict) -> dict:
    """``nb`` (a notebook's JSON) without outputs, execution counts or widget state."""
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
            cell.get("metadata", {}).pop("execution", None)
    return nb


def main(paths: list[str]) -> int:
    if not paths:
        print("usage: clear_notebooks.py NOTEBOOK.ipynb ...", file=sys.stderr)
        return 2
    for name in paths:
        path = Path(name)
        text = path.read_text(encoding="utf-8")
        cleared = json.dumps(clear(json.loads(text)), indent=1, ensure_ascii=False) + "\n"
        if cleared != text:
            path.write_text(cleared, encoding="utf-8")
            print(f"cleared {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
