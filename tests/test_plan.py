"""Planning the dialogues (synth/dialogues.py: prompts × characters → tasks) and the character split
(personas/split.py `assign_splits`), on the real instruction files and real Persona Hub seeds. No LLM involved."""

from collections import Counter, defaultdict

import pytest

from personas.errors import DramatisError
from personas.profiles import EXAMPLES, character
from personas.records import ProfileFields
from personas.seeds import load_seeds
from personas.split import assign_splits
from synth.dialogues import deal, draw_turns, parse_turns, plan_tasks
from synth.prompts import load_prompts
from synth.recipe import load_recipe
from tests.helpers import SEEDS_5K, SHARED

INSTRUCTIONS = SHARED / "instructions"
FILES = ["self_instruct_seed_tasks.jsonl", "self_instruct_user_oriented.jsonl", "mt_bench_questions.jsonl"]
FIRST_NAMES = ["Eamon", "Siobhan", "Maire", "Padraig", "Aoife", "Ciaran", "Niamh", "Declan", "Orla", "Fergus"]


@pytest.fixture(scope="module")
def prompts():
    return load_prompts([str(INSTRUCTIONS / name) for name in FILES])


@pytest.fixture(scope="module")
def personas():
    return [p for p in load_seeds(str(SEEDS_5K)) if p.language == "en"][:100]


def characters_of(personas, n: int):
    return [
        character(
            p,
            ProfileFields.model_validate({**EXAMPLES[0][2], "name": f"{FIRST_NAMES[i % 10]} Gallagher-{i}"}),
            "en",
            "tiny",
            0,
            1,
        )
        for i, p in enumerate(personas[:n])
    ]


@pytest.fixture(scope="module")
def characters(personas):
    """30 characters: 20 train, 5 validation, 5 held out."""
    splits = ["train"] * 20 + ["validation"] * 5 + ["heldout"] * 5
    return [c.model_copy(update={"split": s}) for c, s in zip(characters_of(personas, 30), splits, strict=False)]


def plan(prompts, characters, *overrides, counters=None):
    return plan_tasks(load_recipe(None, ["dialogues.modes=[R,G]", *overrides]), prompts, characters, counters)


# parse_turns / draw_turns


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("2-10:0.9,11-24:0.1", [(2, 10, 0.9), (11, 24, 0.1)]),
        ("4-6", [(4, 6, 1.0)]),
        (" 3 ", [(3, 3, 1.0)]),
        ("1-1:0, 2-2:2", [(1, 1, 0.0), (2, 2, 2.0)]),
    ],
)
def test_user_turn_specs_parse_into_weighted_ranges(spec, expected):
    assert parse_turns(spec) == expected


@pytest.mark.parametrize("spec", ["", "two-ten", "2-10:x", "2-10-12", "10-2", "0-3", "2-3:-1", "2-3:0", "2-10:0.9,"])
def test_bad_user_turn_specs_name_the_knob(spec):
    with pytest.raises(DramatisError, match=r"dialogues\.user_turns="):
        parse_turns(spec)


def test_drawn_turns_stay_in_range_follow_the_weights_and_repeat():
    ranges = parse_turns("2-10:0.9,11-24:0.1,30-40:0")
    draws = [draw_turns(ranges, 0, f"d-{i}") for i in range(2000)]
    assert all(2 <= d <= 24 for d in draws) and set(range(2, 25)) <= set(draws)
    assert 0.85 < sum(d <= 10 for d in draws) / len(draws) < 0.95
    assert draws == [draw_turns(ranges, 0, f"d-{i}") for i in range(2000)]
    assert draws != [draw_turns(ranges, 1, f"d-{i}") for i in range(2000)]


# deal


def test_deal_gives_each_prompt_k_distinct_characters_and_levels_the_counts(prompts, characters):
    dealt = list(deal(prompts, characters, 3, seed=0))
    assert sorted(p.id for p, _ in dealt) == sorted(p.id for p in prompts)
    assert all(len({c.id for c in picked}) == 3 for _, picked in dealt)
    counts = Counter(c.id for _, picked in dealt for c in picked)
    assert len(counts) == 30 and max(counts.values()) - min(counts.values()) <= 1
    assert [(p.id, [c.id for c in cs]) for p, cs in dealt] == [
        (p.id, [c.id for c in cs]) for p, cs in deal(prompts, characters, 3, 0)
    ]


def test_deal_with_fewer_characters_than_k_gives_each_prompt_all_of_them(prompts, characters):
    assert all(len(picked) == 2 for _, picked in deal(prompts[:10], characters[:2], 3, 0))
    assert list(deal(prompts, [], 3, 0)) == []


# plan_tasks


def test_plan_is_deterministic_and_follows_the_recipe_seed(prompts, characters):
    first = plan(prompts, characters)
    assert first == plan(prompts, characters)
    other = plan(prompts, characters, "seed=1")
    assert other != first and {t.id for t in other} != {t.id for t in first}


@pytest.mark.parametrize(
    "mode",
    [
        "G",
        "R",
    ],
)
def test_trained_characters_get_balanced_task_counts_per_mode(prompts, characters, mode):
    counts = Counter(t.character_id for t in plan(prompts, characters) if t.mode == mode and t.split != "heldout")
    assert len(counts) == 25 and max(counts.values()) - min(counts.values()) <= 1


def test_each_prompt_gets_k_distinct_characters_per_mode_and_r_only_with_a_reference(prompts, characters):
    counters = Counter()
    tasks = plan(prompts, characters, counters=counters)
    by_prompt_mode = defaultdict(list)
    for t in tasks:
        by_prompt_mode[t.prompt_id, t.mode].append(t.character_id)
    assert all(len(cs) == len(set(cs)) == 3 for cs in by_prompt_mode.values())
    no_reference = {p.id for p in prompts if not any(p.references)}
    assert len(no_reference) == 41  # the MT-Bench questions without a 'reference' key
    assert {pid for pid, mode in by_prompt_mode if mode == "G"} == {p.id for p in prompts}
    assert {pid for pid, mode in by_prompt_mode if mode == "R"} == {p.id for p in prompts} - no_reference
    assert counters["tasks_no_reference"] == 41 * 3
    assert len({t.id for t in tasks}) == len(tasks) == (507 + 466) * 3


def test_held_out_characters_get_only_the_held_out_prompts(prompts, characters):
    split_of = {c.id: c.split for c in characters}
    tasks = plan(prompts, characters, "split.heldout_prompts=0.1")
    held = {t.prompt_id for t in tasks if split_of[t.character_id] == "heldout"}
    trained = {t.prompt_id for t in tasks if split_of[t.character_id] != "heldout"}
    assert len(held) == round(507 * 0.1) and len(trained) == 507 - len(held) and not held & trained
    assert {t.character_id for t in tasks if t.prompt_id in held} == {c.id for c in characters if c.split == "heldout"}
    assert all(t.split == split_of[t.character_id] for t in tasks)


def test_without_held_out_prompts_held_out_characters_get_no_tasks(prompts, characters):
    tasks = plan(prompts, characters, "split.heldout_prompts=0")
    assert {t.split for t in tasks} == {"train", "validation"}
    assert {t.prompt_id for t in tasks} == {p.id for p in prompts}
    trained_only = [c for c in characters if c.split != "heldout"]
    assert plan(prompts, trained_only) == plan(prompts, trained_only, "split.heldout_prompts=0")


def test_multi_turn_share_one_draws_user_turns_for_every_g_task(prompts, characters):
    turns_of = {p.id: len(p.turns) for p in prompts}
    tasks = plan(prompts, characters, "dialogues.multi_turn_share=1.0", "dialogues.user_turns=4-6")
    g = [t for t in tasks if t.mode == "G"]
    assert {t.user_turns for t in g} == {4, 5, 6}
    assert all(t.user_turns == turns_of[t.prompt_id] for t in tasks if t.mode == "R")
    assert any(turns_of[t.prompt_id] == 2 for t in g)  # MT-Bench prompts are among them


def test_multi_turn_never_shortens_a_multi_turn_prompt(prompts, characters):
    turns_of = {p.id: len(p.turns) for p in prompts}
    tasks = plan(prompts, characters, "dialogues.multi_turn_share=1.0", "dialogues.user_turns=1")
    assert {(turns_of[t.prompt_id], t.user_turns) for t in tasks} == {(1, 1), (2, 2)}


def test_multi_turn_share_zero_keeps_each_prompt_its_own_turn_count(prompts, characters):
    turns_of = {p.id: len(p.turns) for p in prompts}
    tasks = plan(prompts, characters, "dialogues.multi_turn_share=0")
    assert all(t.user_turns == turns_of[t.prompt_id] for t in tasks)
    assert Counter(t.user_turns for t in tasks) == {1: (427 + 427) * 3, 2: (80 + 39) * 3}


def test_user_persona_share_one_gives_every_task_another_character_of_its_split(prompts, characters):
    pool = {c.id: c.split for c in characters}
    tasks = plan(prompts, characters, "dialogues.user_persona_share=1.0")
    assert all(t.user_character_id in pool and t.user_character_id != t.character_id for t in tasks)
    assert all(pool[t.user_character_id] == pool[t.character_id] for t in tasks)
    assert len({t.user_character_id for t in tasks}) == 30
    assert all(t.user_character_id == "" for t in plan(prompts, characters))  # the default share is 0


def test_character_order_keeps_each_characters_tasks_contiguous(prompts, characters):
    tasks = plan(prompts, characters, "dialogues.order=character")
    runs = [cid for i, cid in enumerate(t.character_id for t in tasks) if i == 0 or tasks[i - 1].character_id != cid]
    assert len(runs) == len(set(runs)) == 30
    assert runs == [c.id for c in characters]  # in the order the characters were given


def test_shuffled_order_is_a_permutation_of_the_same_tasks(prompts, characters):
    by_character = plan(prompts, characters)
    shuffled = plan(prompts, characters, "dialogues.order=shuffled")
    assert shuffled != by_character and sorted(shuffled, key=lambda t: t.id) == sorted(
        by_character, key=lambda t: t.id
    )
    switches = sum(a.character_id != b.character_id for a, b in zip(shuffled, shuffled[1:], strict=False))
    assert switches > len(shuffled) / 2


@pytest.mark.parametrize(
    "override, message",
    [
        ("dialogues.modes=[X]", r"dialogues\.modes=\['X'\]: use R and/or G"),
        ("dialogues.modes=[R,g]", r"dialogues\.modes=.*: use R and/or G"),
        ("dialogues.modes=[]", r"dialogues\.modes=\[\]"),
        ("dialogues.order=random", r"dialogues\.order=random"),
        ("dialogues.user_turns=5-2", r"dialogues\.user_turns='5-2'"),
    ],
)
def test_bad_dialogue_knobs_fail_before_any_task(override, message):
    with pytest.raises(DramatisError, match=message):
        plan_tasks(load_recipe(None, [override]), [], [])


# assign_splits

FRACTIONS = {"train": 0.8, "validation": 0.1, "heldout": 0.1}


@pytest.mark.parametrize(
    "n, expected",
    [
        (100, {"train": 80, "validation": 10, "heldout": 10}),
        (6, {"train": 4, "validation": 1, "heldout": 1}),
        (3, {"train": 1, "validation": 1, "heldout": 1}),
        (2, {"train": 2}),  # too few to go round: nobody is taken from training
    ],
)
def test_split_counts_follow_the_fractions_with_at_least_one_per_split(personas, n, expected):
    assert Counter(assign_splits(characters_of(personas, n), 0, FRACTIONS).values()) == expected


def test_split_is_deterministic_order_free_and_follows_the_seed(personas):
    chars = characters_of(personas, 100)
    first = assign_splits(chars, 0, FRACTIONS)
    assert set(first) == {c.id for c in chars}
    assert assign_splits(list(reversed(chars)), 0, FRACTIONS) == first
    assert assign_splits(chars, 1, FRACTIONS) != first


def test_split_fractions_need_not_sum_to_one(personas):
    chars = characters_of(personas, 100)
    assert assign_splits(chars, 0, {"train": 8, "validation": 1, "heldout": 1}) == assign_splits(chars, 0, FRACTIONS)


@pytest.mark.parametrize(
    "fractions",
    [
        {"train": 0, "validation": 0, "heldout": 0},
        {"train": 1.0, "validation": -0.1, "heldout": 0.1},
        {},
    ],
)
def test_bad_split_fractions_are_refused(personas, fractions):
    with pytest.raises(DramatisError, match="split fractions"):
        assign_splits(characters_of(personas, 10), 0, fractions)
