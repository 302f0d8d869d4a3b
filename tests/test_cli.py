"""The command line: generate streams text and prints the per-token table; info; bad input."""

from __future__ import annotations

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
