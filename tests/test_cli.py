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
    assert "top_p" in captured.err


def test_generate_with_a_missing_model_names_it(capsys):
    assert main(["generate", "x", "--model", "./missing-model"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--strategy", "beams"], "--strategy 'beams' is unknown; valid names: beam, beam_search"),
    (["--strategy", "custom"], "--strategy 'custom' is unknown"),
    (["--max-new-tokens", "0"], "--max-new-tokens"),
    (["--seed", "-1"], "--seed"),
    (["--top-logprobs", "abc"], "--top-logprobs must be an integer >= 1 or 'full'"),
    (["--device", "cude"], "--device: device 'cude' is not valid"),
    (["--temperature", "0"], "temperature"),
    (["--top-k", "0"], "top_k"),
])
def test_generate_checks_its_arguments_before_loading_a_model(argv, message, monkeypatch,
                                                              capsys):
    import inferviz.cli as cli

    def no_load(*_a, **_k):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(cli, "_load_session", no_load)
    assert main(["generate", "x", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""


def test_a_cuda_device_on_a_machine_without_one_is_refused_before_loading(monkeypatch,
                                                                         capsys):
    import torch

    import inferviz.cli as cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(cli, "_load_session", lambda *_a, **_k: pytest.fail("model loaded"))
    assert main(["generate", "x", "--device", "cuda"]) == 2
    assert "--device 'cuda': CUDA is not available here" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["generate"], ["info"], ["demo"]])
def test_help_has_no_restructuredtext_markup(argv, capsys):
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    out = capsys.readouterr().out
    assert "usage: inferviz" in out and "``" not in out and ":func:" not in out


def test_beam_prints_one_line_per_beam_instead_of_interleaving(tiny_session, monkeypatch,
                                                                capsys):
    import inferviz.cli as cli

    monkeypatch.setattr(cli, "_load_session", lambda *_a, **_k: tiny_session)
    assert main(["generate", "Hello", "--strategy", "beam", "--max-new-tokens", "3"]) == 0
    out = capsys.readouterr().out
    result = tiny_session.generate("Hello", strategy="beam", max_new_tokens=3)
    lines = out.splitlines()[1:1 + len(result.texts)]
    assert out.startswith("(beam: 3 tokens, the results print when it ends)\n")
    assert lines == [f"{'*' if i == 0 else ' '}{i + 1:>2}  Hello{text}".replace("\n", "↵")
                     for i, text in enumerate(result.texts)]


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
