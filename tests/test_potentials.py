"""Built-in SMC potentials and the explorer's potential row (issue 16): a page without code
can weight SMC's particles, so the ESS chart shows something; nothing typed is run."""

from __future__ import annotations

import pytest
from tiny_models import tiny_session

from inferviz.potentials import AvoidWord, IncludeWord, ShorterText, built_in
from inferviz.widgets.app.run_controls import RunControls


@pytest.fixture(scope="module")
def session():
    return tiny_session("llama")


def test_avoid_word_costs_strength_per_whole_word_any_case():
    assert AvoidWord("the", 2.0)("The theme of the day") == -4.0


def test_include_word_rewards_once():
    assert IncludeWord("cat", 1.5)("a cat, a Cat") == 1.5
    assert IncludeWord("cat", 1.5)("concatenate") == 0.0


def test_the_word_is_matched_literally_never_as_a_pattern():
    assert AvoidWord("a.b", 1.0)("axb") == 0.0
    assert AvoidWord("a.b", 1.0)("see a.b here") == -1.0
    assert AvoidWord("(x+)+$", 1.0)("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxy") == 0.0


def test_shorter_text_costs_strength_per_ten_characters():
    assert ShorterText(2.0)("0123456789" * 3) == pytest.approx(-6.0)


def test_bad_input_names_the_box():
    with pytest.raises(ValueError, match="word box is empty"):
        built_in("avoid a word", "  ", 2.0)
    with pytest.raises(ValueError, match="potential strength"):
        built_in("shorter text", "", -1.0)
    with pytest.raises(ValueError, match="potential 'eval' is unknown"):
        built_in("eval", "", 1.0)


def test_a_run_names_its_potential_readably(session):
    res = session.generate(session.tree("t5 t6"), strategy="smc", max_new_tokens=2,
                           particles=4, seed=0, potential=AvoidWord("t5", 1.0))
    assert res.params["potential"] == "avoid_word('t5', strength=1.0)"


def test_the_row_shows_for_smc_only_and_is_sent_to_smc_only():
    controls = RunControls("greedy")
    assert controls.potential.widget.layout.display == "none"
    controls.potential.choice.value = "avoid a word"
    controls.potential.word.value = "the"
    assert "potential" not in controls.values()[1]
    controls.strategy.value = "smc"
    assert controls.potential.widget.layout.display is None
    assert controls.values()[1]["potential"] == AvoidWord("the", 2.0)


def test_a_chosen_potential_wins_over_extra_params_and_none_leaves_it():
    controls = RunControls("smc")
    code_potential = ShorterText(1.0)
    assert controls.values({"potential": code_potential})[1]["potential"] is code_potential
    controls.potential.choice.value = "shorter text"
    controls.potential.strength.value = "3"
    assert controls.values({"potential": code_potential})[1]["potential"] == ShorterText(3.0)


def test_a_bad_strength_is_refused_in_the_status_line(session):
    explorer = session.explore("t5 t6", strategy="smc", max_new_tokens=2)
    explorer.controls.potential.choice.value = "shorter text"
    explorer.controls.potential.strength.value = "lots"
    explorer.controls.run_button.click()
    assert "inferviz-error" in explorer.status.value
    assert "potential strength must be a number" in explorer.status.value
    explorer.controls.potential.strength.value = "2"
    assert explorer.status.value == ""  # the fixed box clears its error


def test_the_explorers_smc_ess_moves_with_a_built_in_potential(session):
    explorer = session.explore("t5 t6", strategy="smc", max_new_tokens=4, particles=8, seed=0)
    flat = explorer.run(wait=True)
    assert min(flat.ess) == pytest.approx(8.0)  # no potential, temperature 1: weights equal
    explorer.controls.potential.choice.value = "shorter text"
    explorer.controls.potential.strength.value = "5"
    weighted = explorer.run(wait=True)
    assert weighted.params["potential"] == "shorter_text(strength=5.0)"
    assert min(weighted.ess) < 7.9
