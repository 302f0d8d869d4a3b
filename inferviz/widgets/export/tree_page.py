"""Standalone, offline HTML of a token tree: the TreeWidget's own JS bundle and CSS inlined in
one file, rendered against a tiny read-only stand-in for the widget model. No CDN, no network:
the page opens from disk in any modern browser.

The page is a finished artefact: the tree opens fitted to its view with its legend, the Fit
button works, and there are no sampler inputs (nothing can be expanded without a kernel).

The page keeps timing marks in ``window.inferviz`` (``renderStart``, ``renderEnd``, from
``performance.now()``) so a browser test can measure drawing time.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from ... import files
from ...html_text import esc
from ...tree import TokenTree
from ..views.base import STATIC
from ..views.columns import encode_columns

STATIC_READ_ONLY = "this is a static export: expanding a node needs a running kernel"


def _json_ready(value: Any) -> Any:
    """Widget state -> JSON: bytes (binary columns) become ``{"__b64__": "..."}``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"__b64__": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def _script_safe(text: str) -> str:
    """Serialised JSON made safe inside ``<script>``: every ``<`` becomes ``\\u003c`` (the same
    character in JSON and JS strings, the only place JSON has one). Replacing ``</`` alone is
    not enough: ``<!--<script>`` in a token or prompt puts the HTML parser in a state where the
    element's own ``</script>`` no longer ends it, and the page breaks."""
    return text.replace("<", "\\u003c")


EXPORT_HEIGHT = 640


def tree_state(tree: TokenTree, selected: int | None = None,
               height: int = EXPORT_HEIGHT) -> dict[str, Any]:
    """The TreeWidget state for ``tree`` in a static page: read-only, no sampler settings
    (``static`` hides the inputs), ``height`` the view's maximum height in pixels."""
    if not isinstance(tree, TokenTree):
        raise TypeError(f"tree must be an inferviz TokenTree, got {type(tree).__name__}")
    if selected is not None and selected not in tree:
        raise ValueError(f"selected node {selected!r} is not in this tree")
    if isinstance(height, bool) or not isinstance(height, int) or not 160 <= height <= 4000:
        raise ValueError(f"height must be an integer number of pixels in 160..4000, got {height!r}")
    return {
        "nodes": {**encode_columns(tree.to_columns()), "version": 0},
        "selected": selected,
        "selected_text": "" if selected is None else tree.text(selected),
        "pending": [],
        "error": "",
        "read_only": True,
        "static": True,
        "height": height,
    }


BOOTSTRAP = r"""
const state = JSON.parse(document.getElementById("inferviz-state").textContent);
const unpack = (v) => {
  if (v && typeof v === "object" && !Array.isArray(v)) {
    if (typeof v.__b64__ === "string") {
      const raw = atob(v.__b64__);
      const bytes = new Uint8Array(raw.length);
      for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
      return new DataView(bytes.buffer);
    }
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unpack(x)]));
  }
  return Array.isArray(v) ? v.map(unpack) : v;
};
const values = unpack(state);
const prompt = values.nodes.columns.token.data[0] ?? "";
const parents = new Float64Array(values.nodes.columns.parent_id.data.buffer);
const ids = new Float64Array(values.nodes.columns.node_id.data.buffer);
const rowOf = new Map(Array.from(ids, (id, row) => [id, row]));
function textOf(id) {
  const tokens = [];
  for (let row = rowOf.get(id); row !== undefined && !Number.isNaN(parents[row]);
       row = rowOf.get(parents[row])) tokens.push(values.nodes.columns.token.data[row] ?? "");
  return prompt + tokens.reverse().join("");
}
const listeners = new Map();
const emit = (event, ...args) => (listeners.get(event) ?? []).forEach((cb) => cb(...args));
// A read-only stand-in for the anywidget model: enough for the tree view, no kernel.
const model = {
  get: (name) => values[name],
  set(name, value) {
    values[name] = value;
    if (name === "selected") values.selected_text = value === null ? "" : textOf(value);
    emit(`change:${name}`);
  },
  save_changes() {},
  on(event, cb) { listeners.set(event, [...(listeners.get(event) ?? []), cb]); },
  off(event, cb) { listeners.set(event, (listeners.get(event) ?? []).filter((x) => x !== cb)); },
  send(msg) {
    setTimeout(() => emit("msg:custom", {kind: "inferviz:response", id: msg.id, ok: false,
      action: msg.action ?? null, node_id: msg.node_id ?? null, child_ids: [],
      error: READ_ONLY}), 0);
  },
};
const url = URL.createObjectURL(new Blob([BUNDLE], {type: "text/javascript"}));
const widget = (await import(url)).default;
window.inferviz = {model, renderStart: performance.now()};
widget.render({model, el: document.getElementById("inferviz-root")});
window.inferviz.renderEnd = performance.now();
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="inferviz">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #111827; }}
#inferviz-root {{ max-width: 100%; }}
h1 {{ font-size: 1.2rem; margin: 0 0 .25rem; }}
.inferviz-export-meta {{ color: #6b7280; font-size: .85rem; margin-bottom: .75rem; }}
</style>
<style>{css}</style>
</head>
<body>
<h1>{title}</h1>
<div class="inferviz-export-meta">{meta}</div>
<div id="inferviz-root"></div>
{attributions}
<script id="inferviz-state" type="application/json">{state}</script>
<script type="module">
const BUNDLE = {bundle};
const READ_ONLY = {read_only};
{bootstrap}
</script>
</body>
</html>
"""


def attributions_html(results: list) -> str:
    """The section of an export listing attributions already computed (plain HTML, escaped
    by :func:`inferviz.widgets.views.attribution_view.attribution_html`); empty without any."""
    if not results:
        return ""
    from ..views.attribution_view import attribution_html

    items = "".join(f"<div class='inferviz-export-attribution' data-node-id='{int(r.node_id)}'"
                    f" style='margin:.5rem 0 1rem'>{attribution_html(r)}</div>"
                    for r in results)
    return (f"<section class='inferviz-export-attributions'><h2 style='font-size:1rem;"
            f"margin:1.25rem 0 .25rem'>Attributions ({len(results)})</h2>{items}</section>")


def tree_html(tree: TokenTree, selected: int | None = None, title: str | None = None,
              attributions: list | None = None) -> str:
    """A self-contained HTML page showing ``tree`` with the TreeWidget front end (read-only:
    select, hover, collapse, pan and zoom work; expanding needs a kernel). ``attributions``:
    :class:`~inferviz.attribution.AttributionResult` objects to show under the tree (the
    explorer passes those computed for this tree)."""
    state = tree_state(tree, selected=selected)
    bundle = (STATIC / "tree.js").read_text(encoding="utf-8")
    css = (STATIC / "tree.css").read_text(encoding="utf-8")
    title = title or f"inferviz tree: {tree.prompt[:60]}"
    depth = max(n.depth for n in tree.nodes.values())
    meta = f"model {tree.model or '?'} · {len(tree)} nodes · depth {depth} · static export"
    return PAGE.format(
        title=esc(title),
        meta=esc(meta),
        css=css.replace("</", "<\\/"),
        state=_script_safe(json.dumps(_json_ready(state), allow_nan=False)),
        bundle=_script_safe(json.dumps(bundle)),
        read_only=json.dumps(STATIC_READ_ONLY),
        bootstrap=BOOTSTRAP,
        attributions=attributions_html(list(attributions or [])),
    )


def write_tree_html(path: str | Path, tree: TokenTree, selected: int | None = None,
                    title: str | None = None, attributions: list | None = None) -> Path:
    """Write :func:`tree_html` to ``path`` (UTF-8) and return the path."""
    path = Path(path)
    files.write_text(path, tree_html(tree, selected=selected, title=title,
                                     attributions=attributions))  # atomic
    return path
