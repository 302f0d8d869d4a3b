"""The command line: generate streams text and prints the per-token table; info; bad input."""

from __future__ import annotations

import io
import sys

import pytest

from inferviz.cli import main


@pytest.mark.model
def test_generate_streams_and_prints_the_table(capsys):
    assert main(["generate", "The capital of France is", "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("The capital of France is Paris")
    assert "perplexity:" in out and "' Paris'" in out and "entropy" in out


@pytest.mark.model
def test_generate_with_sampling_is_reproducible(capsys):
    args = ["generate", "Once upon a time", "--max-new-tokens", "6", "--top-p", "0.9",
            "--seed", "3"]
    main(args)
    first = capsys.readouterr().out
    main(args)
    assert capsys.readouterr().out == first


def test_generate_rejects_bad_sampler_before_printing(capsys):
    assert main(["generate", "x", "--top-p", "2", "--model", "./missing-model"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "does not exist" in captured.err


@pytest.mark.model
def test_generate_rejects_bad_top_p(capsys):
    assert main(["generate", "x", "--top-p", "2"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "top_p" in captured.err


@pytest.mark.model
def test_info_prints_versions_and_model(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("torch", "transformers", "device", "family        llama", "layers        30"):
        assert word in out


def test_demo_without_voila_is_one_line_saying_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "voila", None)  # as if voila were not installed
    assert main(["demo", "--port", "0"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err
    assert "'voila' is not installed" in lines[0] and "pip install 'inferviz[demo]'" in lines[0]


def test_a_missing_optional_import_becomes_an_install_hint(monkeypatch, capsys):
    import inferviz.cli as cli

    def generate_without_pandas(args):
        raise ModuleNotFoundError("No module named 'pandas'", name="pandas")

    monkeypatch.setattr(cli, "cmd_generate", generate_without_pandas)
    assert main(["generate", "x"]) == 2
    err = capsys.readouterr().err
    assert err == "inferviz: error: the Python package 'pandas' is not installed; run: " \
                  "pip install pandas\n"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_load_progress_is_a_tqdm_bar_on_a_terminal_only():
    from inferviz.cli import TerminalProgress
    from inferviz.models import GGUF_STAGE, LOAD_STAGE

    terminal = _Terminal()
    progress = TerminalProgress(terminal)
    for done in range(0, 273, 34):
        progress(GGUF_STAGE, min(done, 272), 272)
    progress(GGUF_STAGE, 272, 272)
    progress(LOAD_STAGE, 1, 1)
    assert GGUF_STAGE in terminal.getvalue() and "/272" in terminal.getvalue()
    assert progress.bar is None  # closed when the stage finished

    piped = io.StringIO()
    quiet = TerminalProgress(piped)
    quiet(GGUF_STAGE, 5, 272)
    assert piped.getvalue() == "" and quiet.bar is None


@pytest.mark.model
def test_generate_writes_nothing_to_stderr(capfd):
    assert main(["generate", "Hi", "--max-new-tokens", "3"]) == 0
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out.startswith("Hi")
