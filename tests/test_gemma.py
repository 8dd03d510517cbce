"""Persona → character profile: validation and rendering; then the real Gemma 3 270M on real Persona Hub seeds
(profiles) and on real self-instruct tasks (R and G dialogues). One module, so one Gemma engine serves both."""

import json

import pytest

from personas.errors import Rejected
from personas.profiles import EXAMPLES, parse_profile, profile_messages, profile_schema, render_system_prompt
from personas.records import Character, ProfileFields
from personas.seeds import load_seeds
from synth.cache import RequestCache
from synth.dialogues import dialogues_stage, names_of, plan_tasks
from synth.pipeline import profiles_stage
from synth.prompts import load_prompts
from synth.quality import check_turn, kept_facts
from synth.records import Dialogue
from synth.recipe import load_recipe
from synth.runner import load_records, run_stage
from synth.shards import read_shard
from tests.conftest import SEEDS_5K, SHARED

GOOD = json.dumps(EXAMPLES[0][2])


def test_a_valid_profile_parses():
    assert parse_profile(GOOD, "stop", "en").name == "Eamon Gallagher"


@pytest.mark.parametrize("text,finish,reason", [
    (GOOD[:40], "length", "truncated"),
    ('{"name": "x", ', "stop", "invalid_json"),
    (json.dumps({**EXAMPLES[0][2], "age": 400}), "stop", "schema_violation"),
    (json.dumps({k: v for k, v in EXAMPLES[0][2].items() if k != "likes"}), "stop", "schema_violation"),
    (json.dumps({**EXAMPLES[0][2], "catchphrases": []}), "stop", "schema_violation"),
    (json.dumps(EXAMPLES[1][2], ensure_ascii=False), "stop", "wrong_language"),
])
def test_unusable_outputs_are_rejected_with_their_reason(text, finish, reason):
    with pytest.raises(Rejected) as e:
        parse_profile(text, finish, "en")
    assert e.value.reason == reason and e.value.detail


def test_schema_forbids_extra_keys_and_requires_every_field():
    schema = profile_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(ProfileFields.model_fields)


def test_untrusted_text_is_never_a_template():
    fields = ProfileFields.model_validate({**EXAMPLES[0][2], "name": "{name} {0} {{x}}", "experience": "{% for x in y %}"})
    prompt = render_system_prompt(fields, "en")
    assert prompt.startswith("You are {name} {0} {{x}}.") and "{% for x in y %}" in prompt
    persona = load_seeds("builtin")[0].model_copy(update={"text": "{persona} {{ 7*7 }}"})
    assert profile_messages(persona, "en")[-1]["content"].startswith("Persona: {persona} {{ 7*7 }}")


def test_system_prompt_is_rendered_in_the_profile_language():
    zh = render_system_prompt(ProfileFields.model_validate(EXAMPLES[1][2]), "zh")
    assert zh.startswith("你是刘桂芬。") and "口头禅: 莫着急，先喝口茶。" in zh


@pytest.fixture(scope="module")
def gemma_profiles(gemma_engine, tmp_path_factory):
    out = tmp_path_factory.mktemp("gemma")
    seeds = load_seeds(str(SEEDS_5K))
    sample = [p for p in seeds if p.language == "en"][:4] + [p for p in seeds if p.language == "zh"][:2]
    recipe = load_recipe("synth/recipes/demo.yaml", [f"out={out}"])
    cache = RequestCache(out / "cache.sqlite")
    manifest = run_stage(profiles_stage(recipe, lambda: gemma_engine, cache), sample, out / "profiles", {})
    cache.close()
    return out, sample, manifest


def test_gemma_writes_valid_profiles_for_real_english_and_chinese_seeds(gemma_profiles):
    out, sample, manifest = gemma_profiles
    counters = manifest["counters"]
    assert counters["kept"] + sum(v for k, v in counters.items() if k.startswith("dropped_")) == 6
    characters = load_records(out / "profiles", Character)
    assert len(characters) >= 4, counters  # seen: 5-6 of 6 with three attempts each
    assert {c.language for c in characters} == {"en", "zh"}
    for c in characters:
        assert c.persona_id in {p.id for p in sample} and c.system_prompt.count(c.name) >= 2
        assert c.model == "gemma3-270m" and 1 <= c.attempts <= 3
    rejects = [r for f in sorted((out / "profiles").glob("rejects-*.arrow")) for r in read_shard(f).to_pylist()]
    assert len(rejects) == 6 - len(characters) and all(r["reason"] and r["record"] for r in rejects)


def test_gemma_writes_r_and_g_dialogues_for_real_tasks_that_pass_every_check(gemma_profiles, gemma_engine):
    out = gemma_profiles[0]
    made = load_records(out / "profiles", Character)
    cast = [c.model_copy(update={"split": "train"}) for c in
            [c for c in made if c.language == "en"][:2] + [c for c in made if c.language == "zh"][:1]]
    # Real self-instruct tasks whose reference answers hold numbers, so R's fact check has work to do.
    prompts = [p for p in load_prompts([str(SHARED / "instructions" / "self_instruct_seed_tasks.jsonl")])
               if any(ch.isdigit() for ch in p.references[0]) and len(p.references[0]) < 400][:2]
    recipe = load_recipe("synth/recipes/demo.yaml", [f"out={out}", "dialogues.characters_per_prompt=3",
                                                      "dialogues.multi_turn_share=0.5", "dialogues.user_turns=2",
                                                      "split.heldout_prompts=0"])
    tasks = plan_tasks(recipe, prompts, cast)
    assert {t.mode for t in tasks} == {"R", "G"} and len(tasks) == 2 * 2 * len(cast)
    cache = RequestCache(out / "cache.sqlite")
    manifest = run_stage(dialogues_stage(recipe, lambda: gemma_engine, cache, prompts, cast), tasks, out / "dialogues", {})
    cache.close()
    counters = manifest["counters"]
    assert counters["kept"] + sum(v for k, v in counters.items() if k.startswith("dropped_")) == len(tasks)
    dialogues = load_records(out / "dialogues", Dialogue)
    assert any(d.mode == "G" for d in dialogues), counters
    by_id = {p.id: p for p in prompts}
    names = names_of(cast)
    for d in dialogues:
        replies = [m.content for m in d.messages if m.role == "assistant"]
        assert len(replies) == d.turns and d.messages[0].content.startswith(next(c for c in cast if c.id == d.character_id).system_prompt)
        for text in replies:
            assert check_turn(text, "stop", d.language, own_name=d.character_name, other_names=names) == text
        if d.mode == "R":
            kept_facts(by_id[d.prompt_id].references[0], replies[0])  # raises if a number went missing
