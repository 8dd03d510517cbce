"""Careless values a user types, refused when the recipe loads (before any model does), each with the key and what
to use: numbers that are not finite, split shares that do not add up, a range with its end left out. The values
that pass on either side of each bound still load."""

import pytest

from personas.errors import DramatisError
from synth.recipe import load_recipe

DEMO = "synth/recipes/demo.yaml"


def refusal(overrides: list[str]) -> str:
    with pytest.raises(DramatisError) as exc:
        load_recipe(DEMO, overrides)
    return str(exc.value)


@pytest.mark.parametrize(
    "override",
    [
        "profiles.temperature=nan",
        "profiles.temperature=.nan",
        "split.train=.inf",
        "backend.kv_cache_gb=-.inf",
        "backend.timeout_s=inf",
    ],
)
def test_a_float_knob_refuses_what_is_not_a_finite_number(override):
    key = override.partition("=")[0]
    message = refusal([override])
    assert message.startswith(f"{key}=") and message.endswith(": give a finite number"), message


def test_a_non_finite_value_set_in_code_is_refused_by_check_recipe():
    from synth.config import check_recipe

    recipe = load_recipe(DEMO)
    recipe.dialogues.temperature = float("nan")  # nan < 0 and nan > 2 are both False: no bound would catch it
    with pytest.raises(DramatisError, match=r"^dialogues\.temperature=nan: give a finite number$"):
        check_recipe(recipe)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (
            ["split.train=0.9", "split.validation=0.5"],
            "split.train=0.9, split.validation=0.5, split.heldout=0.15: the shares sum to 1.55, not 1; "
            "e.g. split.train=0.8 split.validation=0.1",
        ),
        (
            ["split.train=0.5"],
            "split.train=0.5, split.validation=0.15, split.heldout=0.15: the shares sum to 0.8, not 1; "
            "split.heldout=0.35",
        ),
    ],
)
def test_split_shares_must_sum_to_one(overrides, expected):
    assert refusal(overrides) == expected


def test_split_shares_that_sum_to_one_load_and_keep_their_values():
    recipe = load_recipe(DEMO, ["split.train=0.5", "split.validation=0.25", "split.heldout=0.25"])
    assert (recipe.split.train, recipe.split.validation, recipe.split.heldout) == (0.5, 0.25, 0.25)
    recipe = load_recipe(DEMO, ["split.train=0.7", "split.validation=0.2", "split.heldout=0.1"])  # 0.99999.. in floats
    assert recipe.split.heldout == 0.1


@pytest.mark.parametrize("spec", ["2-:0.5", "2-", "2-3:nan", "2-3:inf", "1-2:0.5,3-:0.5"])
def test_user_turns_with_an_open_range_or_a_non_finite_weight_are_refused(spec):
    assert refusal([f"dialogues.user_turns={spec}"]).startswith(f"dialogues.user_turns='{spec}': write 'lo-hi:weight")


@pytest.mark.parametrize("spec, turns", [("2", "2"), ("2-2", "2-2"), ("3-5:1,6-8:0.5", "3-5:1,6-8:0.5")])
def test_well_formed_user_turns_still_load(spec, turns):
    assert load_recipe(DEMO, [f"dialogues.user_turns={spec}"]).dialogues.user_turns == turns


@pytest.mark.parametrize(
    "override, expected",
    [
        ("split.similarity=1.5", "split.similarity=1.5: use a value from 0 to 1"),
        ("split.same_name_similarity=-0.1", "split.same_name_similarity=-0.1: use a value from 0 to 1"),
        ("dedup.semantic_threshold=2", "dedup.semantic_threshold=2.0: use a value from 0 to 1"),
    ],
)
def test_similarity_thresholds_are_shares(override, expected):
    assert refusal([override]) == expected
