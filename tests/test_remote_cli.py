"""``inferviz generate --server URL`` and the dashboard over a server, against the fake server."""

from __future__ import annotations

import pytest
from fake_server import FakeServer
from tiny_models import VOCAB, tiny_model, tiny_tokenizer

import inferviz as iv
from inferviz.cli import main
from inferviz.widgets.dashboard.launcher import dashboard_notebook

PROMPT = "t5 t17 t20"


@pytest.fixture(scope="module")
def pair():
    return tiny_model("llama"), tiny_tokenizer()


def test_generate_against_a_vllm_server_prints_the_local_tokens_and_table(pair, capsys,
                                                                          tmp_path):
    model, tok = pair
    tok.save_pretrained(tmp_path)  # vLLM does not say its vocabulary: give the tokenizer
    want = iv.Session(model, tok).generate(PROMPT, max_new_tokens=5).text
    with FakeServer(model, tok, max_logprobs=VOCAB) as server:
        code = main(["generate", PROMPT, "--server", server.url + "/v1", "--max-new-tokens", "5",
                     "--top-logprobs", "full", "--tokenizer", str(tmp_path)])
        assert server.requests[-1][0] == "/v1/completions"
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(PROMPT + want)
    assert "perplexity:" in out


def test_generate_against_llamacpp_says_why_there_is_no_table(pair, capsys):
    model, tok = pair
    with FakeServer(model, tok, dialect="llama.cpp") as server:
        code = main(["generate", PROMPT, "--server", server.url, "--max-new-tokens", "3"])
    out = capsys.readouterr().out
    assert code == 0 and "no prompt log-probabilities" in out


def test_generate_with_an_unreachable_server_exits_with_a_clear_error(capsys):
    code = main(["generate", PROMPT, "--server", "localhost:1"])
    assert code == 2 and "base_url must be an http" in capsys.readouterr().err


def test_dashboard_notebook_for_a_server_connects_instead_of_loading(pair):
    nb = dashboard_notebook({"base_url": "http://gpu-box:8000", "tokenizer": None,
                             "top_logprobs": 20})
    code = nb.cells[1].source
    assert "iv.Session.connect(base_url='http://gpu-box:8000', top_logprobs=20)" in code
    assert "from_pretrained" not in code and "session.explore(" in code
    assert "load_session(\"default\")" in dashboard_notebook().cells[1].source


def test_explorer_runs_against_a_server_and_explains_the_missing_lens(pair):
    model, tok = pair
    with FakeServer(model, tok, max_logprobs=VOCAB) as server:
        session = iv.Session.connect(server.url, tokenizer=tok, top_logprobs="full")
        explorer = session.explore(PROMPT, expand_root=True, max_new_tokens=3)
        result = explorer.run(wait=True)
        assert len(result.token_ids) >= 1
        from inferviz.widgets.app.explorer import LENS_TAB

        explorer.tabs.selected_index = LENS_TAB
        explorer._refresh_lens()
        assert "hidden state" in explorer.lens_box.children[0].value
        session.backend.close()


def test_dashboard_notebook_for_a_server_runs_top_to_bottom(pair, tmp_path, monkeypatch):
    import os
    import sys
    from pathlib import Path

    nbclient = pytest.importorskip("nbclient")
    from inferviz.widgets.dashboard.launcher import write_dashboard

    model, tok = pair
    root = Path(__file__).resolve().parents[1]  # the kernel imports this checkout's inferviz
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH",
                                                                                "")]))
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent),
                                                os.environ.get("PATH", "")]))
    with FakeServer(model, tok, dialect="llama.cpp") as server:
        path = write_dashboard(tmp_path / "dashboard.ipynb", {"base_url": server.url})
        import nbformat

        nb = nbformat.read(str(path), as_version=4)
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
        assert any(body["prompt"] for path_, body in server.requests if path_ == "/completion")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
