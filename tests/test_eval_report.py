"""The evaluation report (eval/report.py, eval/plots.py, eval/markdown.py) and its statistics (eval/stats.py) on
planted records whose numbers are known: two models, two judges, both benchmarks, no model and no engine.

Planted, heldout: gemma's persona score per (character, question) is in HELDOUT_PERSONA and qwen gives one more,
so the judges average to +0.5; the tuned model scores exactly one more on every judgement (a constant shift). On
the roleplay rubric gemma gives 1 + seed and qwen 2; tuned scores two more for Mara only. On personagym one judge
gives both models the same scores (identical models). Replies are real-looking English: the base model's are
assistant boilerplate (seed 0) or a third-person description (seed 1), the tuned model's the character speaking.
"""

import json
import math
import re

import pytest

from eval import plots as eval_plots
from eval.judge_free import out_of_character
from eval.personagym import TASKS
from eval.records import Judgement, Reply, Verdict
from eval.report import write_report
from eval.stats import gsb, mean_ci, paired_diff
from synth.shards import read_shard

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SEEDS = (0, 1)
CHARACTERS = {  # benchmark → (character id, name, system prompt, the character's first-person answers by question)
    "heldout": [
        (
            "c-mara",
            "Mara Quinn",
            "Name: Mara Quinn\nAge: 34\nExperience: ran a ferry between the Aran islands for ten years, "
            "then opened a bakery on the Galway harbour front.\nSpeech style: brisk, dry humour",
            [
                "I'd hand them a fresh loaf from the back and tell them the ferry crossing taught me worse complaints "
                "than stale bread.",
                "I'd lock the bakery early, walk down to the harbour and check my old ferry's moorings before the "
                "storm comes in.",
                "Ah, sure, I keep it short. Sourdough's ready when it's ready, and I've no patience for fuss at six "
                "in the morning.",
                "My advice? Proof your dough overnight in a cool corner; I learned that the hard way in a damp Galway "
                "kitchen.",
            ],
        ),
        (
            "c-tomas",
            "Tomas Reyes",
            "Name: Tomas Reyes\nAge: 52\nExperience: has flown long-haul airline routes across the "
            "Pacific for twenty years.\nSpeech style: calm, precise, fond of checklists",
            [
                "I would run the checklist again, calmly, and brief my first officer before we say anything to the "
                "passengers.",
                "I divert to the nearest suitable airport; my crew and I have rehearsed it a hundred times over the "
                "Pacific.",
                "Let me put it plainly: I read the weather, I trust the instruments, and I never rush a descent into "
                "Manila.",
                "Keep a written checklist for every long trip; I learned it from twenty years of Pacific flights in "
                "the cockpit.",
            ],
        ),
    ],
    "personagym": [
        (
            "c-elena",
            "Elena Petrova",
            "A retired chess coach from Saint Petersburg who still runs a weekend club for children.",
            [
                "I set up the board and let the children play a blitz game first; I watch their hands before their "
                "moves.",
                "I insist on slow games because my students rush, and patience won me the city championship in 1979.",
                "My dear, we say it in chess: think twice, move once. I have told my pupils this for forty years.",
                "I stay the strict but kind coach my club knows; I never flatter a careless move, not even my "
                "grandson's.",
                "I would never mock a child who loses; I remind them that I lost hundreds of games before I won any.",
            ],
        ),
        (
            "c-omar",
            "Omar Haddad",
            "A food truck owner in Detroit who cooks his grandmother's Lebanese recipes for night-shift workers.",
            [
                "I fire up the grill at ten at night, because my regulars come off the assembly line hungry around "
                "midnight.",
                "I keep prices low since my customers work hard for their money, and my grandmother fed everyone who "
                "knocked.",
                "Habibi, you want garlic sauce? I make it fresh every night, I never buy it in a jar, never.",
                "I am the same guy on the street corner every night: I remember your order and I ask about your kids.",
                "I do not tolerate anyone being rude to my customers; I ask them to leave and I give the next plate "
                "free.",
            ],
        ),
    ],
}
QUESTIONS = {
    "heldout": [
        ("Expected Action", "A customer complains that your work was not good enough today. What do you do?"),
        ("Expected Action", "A storm warning comes in for tonight. What do you do?"),
        ("Linguistic Habits", "How would you describe your mornings to a stranger?"),
        ("Instruction", "Give one piece of practical advice from your trade."),
    ],
    "personagym": [
        (t, q)
        for t, q in zip(
            TASKS,
            [
                "You arrive at your usual workplace early on a quiet evening. What do you do first?",
                "Why do you insist on doing things your way with the people you serve?",
                "What saying do you repeat most often?",
                "How do you behave with people who know you well?",
                "Someone is rude to a person you care for. How do you respond?",
            ],
            strict=False,
        )
    ],
}
ASSISTANT = "As an AI language model, I do not have personal experiences, but I can describe what someone might do."
HELDOUT_PERSONA = {
    ("c-mara", 0): 1,
    ("c-mara", 1): 3,
    ("c-mara", 2): 2,
    ("c-tomas", 0): 1,
    ("c-tomas", 1): 1,
    ("c-tomas", 2): 2,
}
PERSONAGYM_PERSONA = {"c-elena": [2, 3, 4, 5, 5], "c-omar": [1, 1, 2, 3, 3]}  # by task, in TASKS order
META = {
    "name": "planted",
    "reference": "base",
    "models": {
        "base": {"model_id": "google/gemma-3-270m-it", "kind": "vllm"},
        "tuned": {"model_id": "runs/demo/train/final#3f2a", "kind": "vllm"},
    },
    "judges": {
        "gemma": {"model_id": "google/gemma-3-27b-it", "kind": "vllm", "temperature": 0.0},
        "qwen": {"model_id": "Qwen/Qwen3-32B", "kind": "openai", "temperature": 0.0},
    },
    "latency": {
        "base": {
            "requests": 8,
            "first_token_s": 0.12,
            "total_s": 2.3,
            "output_tok_s": 41.0,
            "batch_output_tok_s": 130.0,
        }
    },
    "judge_tokens": {"gemma": {"requests": 400, "prompt_tokens": 123456, "output_tokens": 4567}},
    "benchmarks": {
        "heldout": {"items": 8, "characters": 2, "seeds": 2},
        "personagym": {"items": 10, "characters": 2, "seeds": 1},
    },
    "rejects": {"judge": {"judge_invalid": 2}},
    "seconds": 123.4,
}


def reply(benchmark: str, character: tuple, index: int, model: str, seed: int) -> Reply:
    cid, name, system, answers = character
    task, question = QUESTIONS[benchmark][index]
    if model == "tuned":
        text = answers[index]
    else:
        text = (
            ASSISTANT
            if seed == 0
            else f"{name} would probably think about it for a while and then carry on with the day."
        )
    item = f"i-{benchmark}-{cid}-{index}"
    return Reply(
        id=f"r-{item}-{model}-{seed}",
        benchmark=benchmark,
        task=task,
        question_id=f"q-{benchmark}-{index}",
        question=question,
        character_id=cid,
        character=name,
        language="en",
        system=system,
        persona=system.splitlines()[0],
        profile="profile",
        item_id=item,
        model=model,
        model_id=META["models"][model]["model_id"],
        seed=seed,
        text=text,
        finish_reason="stop",
        prompt_tokens=200,
        output_tokens=40,
        out_of_character=out_of_character(text, name=name, system=system, user=question, language="en"),
    )


def judgement(r: Reply, judge: str, rubric: str, score: int) -> Judgement:
    low, high = (1, 5) if rubric == "persona" else (0, 4)
    return Judgement(
        id=f"j-{r.id}-{judge}-{rubric}",
        reply_id=r.id,
        item_id=r.item_id,
        model=r.model,
        benchmark=r.benchmark,
        task=r.task,
        character_id=r.character_id,
        seed=r.seed,
        judge=judge,
        judge_model=f"{judge} vllm",
        rubric=rubric,
        low=low,
        high=high,
        score=score,
        justification="planted",
        prompt_tokens=300,
        output_tokens=30,
    )


def planted_judgements(r: Reply, index: int) -> list[Judgement]:
    shift = r.model == "tuned"
    if r.benchmark == "personagym":
        return [judgement(r, "gemma", "persona", PERSONAGYM_PERSONA[r.character_id][index])]
    found = [
        judgement(r, "gemma", "roleplay", 1 + r.seed + 2 * (shift and r.character_id == "c-mara")),
        judgement(r, "qwen", "roleplay", 2 + 2 * (shift and r.character_id == "c-mara")),
    ]
    if r.task != "Instruction":  # instructions are scored on the roleplay rubric only
        base = HELDOUT_PERSONA[r.character_id, index]
        found += [judgement(r, "gemma", "persona", base + shift), judgement(r, "qwen", "persona", base + 1 + shift)]
    return found


def verdict(n: int, judge: str, a_first: str, b_first: str, outcome: str) -> Verdict:
    return Verdict(
        id=f"v-{judge}-{n}",
        item_id=f"i-heldout-c-mara-{n % 4}",
        benchmark="heldout",
        task="Expected Action",
        character_id="c-mara",
        seed=n // 4,
        judge=judge,
        judge_model=f"{judge} vllm",
        model_a="base",
        model_b="tuned",
        a_first=a_first,
        b_first=b_first,
        outcome=outcome,
        justification_a_first="planted",
        justification_b_first="planted",
        prompt_tokens=500,
        output_tokens=50,
    )


VERDICTS = [
    verdict(0, "gemma", "b", "b", "G"),
    verdict(1, "gemma", "b", "b", "G"),
    verdict(2, "gemma", "b", "b", "G"),
    verdict(3, "gemma", "a", "b", "S"),  # a flip: each order prefers the reply shown second
    verdict(0, "qwen", "b", "b", "G"),
    verdict(1, "qwen", "a", "a", "B"),
    verdict(2, "qwen", "same", "same", "S"),
    verdict(3, "qwen", "b", "a", "S"),
]


def planted(models=("base", "tuned")) -> tuple[list[Reply], list[Judgement]]:
    replies, judgements = [], []
    for benchmark, characters in CHARACTERS.items():
        for character in characters:
            for index in range(len(QUESTIONS[benchmark])):
                for seed in SEEDS if benchmark == "heldout" else (0,):
                    for model in models:
                        r = reply(benchmark, character, index, model, seed)
                        replies.append(r)
                        judgements += planted_judgements(r, index)
    return replies, judgements


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    replies, judgements = planted()
    path = write_report(tmp_path_factory.mktemp("eval") / "run", replies, judgements, VERDICTS, META)
    return path, json.loads((path.parent / "report.json").read_text()), replies, judgements


def cell(report: dict, benchmark: str, rubric: str, row: str) -> dict:
    return report["benchmarks"][benchmark]["scores"][rubric][row]


# ------------------------------------------------------------------------------------------------------------- stats
def test_mean_ci_of_constant_input_has_zero_width_and_of_empty_input_is_nan():
    assert mean_ci([2.5] * 7) == (2.5, 2.5, 2.5) and mean_ci([3.0]) == (3.0, 3.0, 3.0)
    assert all(math.isnan(x) for x in mean_ci([]))


def test_bootstrap_interval_contains_the_mean_and_is_the_same_for_the_same_seed():
    values = [1, 2, 2, 3, 4, 4, 5, 1, 3, 2]
    mean, lo, hi = mean_ci(values, seed=7)
    assert mean == pytest.approx(2.7) and lo < mean < hi
    assert mean_ci(values, seed=7) == (mean, lo, hi)


def test_paired_diff_of_a_constant_shift_is_that_shift_with_zero_width_and_counts_wins():
    a = {("i1", 0): 1.0, ("i2", 0): 2.5, ("i3", 1): 4.0, ("only-a", 0): 0.0}
    shifted = paired_diff(a, {k: v + 0.5 for k, v in a.items() if k != ("only-a", 0)})
    assert shifted == {"n": 3, "mean": 0.5, "lo": 0.5, "hi": 0.5, "wins": 3, "ties": 0, "losses": 0}
    assert paired_diff(a, dict(a)) == {"n": 4, "mean": 0.0, "lo": 0.0, "hi": 0.0, "wins": 0, "ties": 4, "losses": 0}
    mixed = paired_diff(a, {("i1", 0): 2.0, ("i2", 0): 2.5, ("i3", 1): 3.0})
    assert (mixed["wins"], mixed["ties"], mixed["losses"], mixed["mean"]) == (1, 1, 1, 0.0)


def test_gsb_counts_outcomes_and_scores_good_minus_bad_over_all():
    assert gsb(["G", "G", "S", "B", "G"]) == {"G": 3, "S": 1, "B": 1, "n": 5, "score": 0.4}
    assert math.isnan(gsb([])["score"])


# ----------------------------------------------------------------------------------------------------------- numbers
def test_task_means_average_the_judges_then_the_units(written):
    _, report, _, _ = written
    ea, lh = (
        cell(report, "heldout", "persona", "Expected Action"),
        cell(report, "heldout", "persona", "Linguistic Habits"),
    )
    # Units (question, seed), judges averaged: Mara 1.5 and 3.5, Tomas 1.5 and 1.5, each under two seeds.
    assert ea["models"]["base"]["mean"] == 2.0 and ea["models"]["base"]["n"] == 8
    assert lh["models"]["base"] == {"mean": 2.5, "lo": 2.5, "hi": 2.5, "n": 4}
    assert ea["models"]["tuned"]["mean"] == 3.0 and lh["models"]["tuned"]["mean"] == 3.5
    assert ea["models"]["base"]["lo"] < 2.0 < ea["models"]["base"]["hi"]
    rows = report["benchmarks"]["heldout"]["scores"]
    assert list(rows["persona"]) == ["Expected Action", "Linguistic Habits", "PersonaScore"]
    assert list(rows["roleplay"]) == ["Expected Action", "Linguistic Habits", "Instruction", "overall"]
    assert list(report["benchmarks"]["personagym"]["scores"]["persona"]) == [*TASKS, "PersonaScore"]


def test_persona_score_is_the_mean_over_characters_of_their_task_means(written):
    _, report, _, _ = written
    # Mara (2.5 + 2.5) / 2, Tomas (1.5 + 2.5) / 2; the mean over all units would be 13/6 instead.
    score = cell(report, "heldout", "persona", "PersonaScore")
    assert score["models"]["base"]["mean"] == 2.25 and score["models"]["base"]["n"] == 2
    assert score["models"]["tuned"]["mean"] == 3.25
    pg = cell(report, "personagym", "persona", "PersonaScore")["models"]["base"]
    assert pg["mean"] == pytest.approx((19 / 5 + 10 / 5) / 2) and pg["n"] == 2
    assert [cell(report, "personagym", "persona", t)["models"]["base"]["mean"] for t in TASKS] == [1.5, 2, 3, 4, 4]


def test_a_constant_shift_gives_that_delta_with_zero_width_and_identical_models_give_zero(written):
    _, report, _, _ = written
    for row, n in (("Expected Action", 8), ("Linguistic Habits", 4), ("PersonaScore", 2)):
        assert cell(report, "heldout", "persona", row)["delta"]["tuned"] == {
            "n": n,
            "mean": 1.0,
            "lo": 1.0,
            "hi": 1.0,
            "wins": n,
            "ties": 0,
            "losses": 0,
        }
    for row in (*TASKS, "PersonaScore"):
        d = cell(report, "personagym", "persona", row)["delta"]["tuned"]
        assert (d["mean"], d["lo"], d["hi"], d["wins"], d["losses"]) == (0.0, 0.0, 0.0, 0, 0)


def test_roleplay_overall_is_the_mean_over_units_and_its_delta_is_paired(written):
    _, report, _, _ = written
    overall = cell(report, "heldout", "roleplay", "overall")
    assert overall["models"]["base"]["mean"] == 1.75 and overall["models"]["base"]["n"] == 16
    assert overall["models"]["tuned"]["mean"] == 2.75
    d = overall["delta"]["tuned"]  # +2 on Mara's 8 units, 0 on Tomas's 8
    assert (d["n"], d["mean"], d["wins"], d["ties"], d["losses"]) == (16, 1.0, 8, 8, 0) and d["lo"] < 1.0 < d["hi"]
    assert cell(report, "heldout", "roleplay", "Instruction")["models"]["base"]["n"] == 4


def test_gsb_rows_count_outcomes_and_flips_per_judge_and_pooled(written):
    _, report, _, _ = written
    rows = {r["judge"]: r for r in report["benchmarks"]["heldout"]["gsb"]}
    assert list(rows) == ["gemma", "qwen", "all judges"]
    assert rows["gemma"] == {
        "judge": "gemma",
        "model_a": "base",
        "model_b": "tuned",
        "G": 3,
        "S": 1,
        "B": 0,
        "n": 4,
        "score": 0.75,
        "flips": 1,
    }
    assert (rows["qwen"]["G"], rows["qwen"]["S"], rows["qwen"]["B"], rows["qwen"]["score"], rows["qwen"]["flips"]) == (
        1,
        2,
        1,
        0.0,
        1,
    )
    assert (rows["all judges"]["n"], rows["all judges"]["score"], rows["all judges"]["flips"]) == (8, 0.375, 2)
    assert report["benchmarks"]["personagym"]["gsb"] == []


def test_judge_free_metrics_and_out_of_character_reasons_per_model(written):
    path, report, _, _ = written
    heldout = report["benchmarks"]["heldout"]
    base, tuned = heldout["judge_free"]["base"], heldout["judge_free"]["tuned"]
    assert (base["replies"], base["in_character"], base["assistant_speak"]) == (16, 0.0, 0.5)
    assert (tuned["replies"], tuned["in_character"], tuned["assistant_speak"], tuned["wrong_character"]) == (
        16,
        1.0,
        0.0,
        0.0,
    )
    assert tuned["language_match"] == 1.0 and tuned["distinct_1"] > base["distinct_1"]
    # Each tuned reply carries its own character's facts (the bakery, the Pacific) and points back to its profile.
    assert tuned["profile_retrieval"] == 1.0
    assert heldout["out_of_character"] == {"base": {"assistant_speak": 8, "not_first_person": 8}, "tuned": {}}
    text = path.read_text()
    assert "Why out of character, **base**: assistant_speak 8, not_first_person 8" in text
    assert "Why out of character, **tuned**: never" in text


def test_examples_are_the_units_where_the_models_differ_most(written):
    _, report, _, _ = written
    picked = report["benchmarks"]["heldout"]["examples"]
    # Only Mara's units differ (by 2 on roleplay); ties go by item id, then seed.
    assert [(e["item_id"], e["seed"]) for e in picked] == [
        ("i-heldout-c-mara-0", 0),
        ("i-heldout-c-mara-0", 1),
        ("i-heldout-c-mara-1", 0),
    ]
    first = picked[0]["replies"]
    assert first["base"]["text"] == ASSISTANT and first["base"]["scores"] == {"persona": 1.5, "roleplay": 1.5}
    assert first["tuned"]["scores"] == {"persona": 2.5, "roleplay": 3.5}


# ------------------------------------------------------------------------------------------------------------ output
def test_report_md_has_the_tables_headline_and_links_to_real_pngs(written):
    path, _, _, _ = written
    text = path.read_text()
    assert "- **tuned vs base · heldout**: PersonaScore Δ +1.00 [+1.00, +1.00] · roleplay Δ +1.00 [" in text
    assert "GSB +0.38 · in character 0% → 100%" in text
    assert "| **PersonaScore** | 2.25 [" in text and "| Δ tuned − base [lo, hi] |" in text
    assert "| all judges | tuned vs base | 4 | 3 | 1 | 2 | +0.38 |" in text
    assert "| base | 8 | 0.12 | 2.30 | 41.0 | 130.0 |" in text and "| gemma | 400 | 123,456 | 4,567 |" in text
    assert "| qwen | Qwen/Qwen3-32B | openai | 0 |" in text and "judge_invalid 2" in text
    assert f"> {ASSISTANT}" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(links) == sorted(
        [
            "scores_heldout.png",
            "judge_free_heldout.png",
            "gsb_heldout.png",
            "scores_personagym.png",
            "judge_free_personagym.png",
        ]
    )
    for link in links:
        data = (path.parent / link).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000, link


def test_arrow_results_read_back_with_every_row(written):
    path, _, replies, judgements = written
    for name, rows in (("replies", replies), ("judgements", judgements), ("verdicts", VERDICTS)):
        table = read_shard(path.parent / f"{name}.arrow")
        assert table.num_rows == len(rows) and table.column("id").to_pylist() == [r.id for r in rows]


def test_a_single_model_renders_without_deltas_or_gsb(tmp_path):
    replies, judgements = planted(models=("base",))
    meta = {**META, "models": {"base": META["models"]["base"]}}
    path = write_report(tmp_path, replies, judgements, [], meta)
    report, text = json.loads((path.parent / "report.json").read_text()), path.read_text()
    assert cell(report, "heldout", "persona", "PersonaScore")["delta"] == {}
    assert cell(report, "heldout", "persona", "PersonaScore")["models"]["base"]["mean"] == 2.25
    assert "Δ" not in text and "- **base · heldout**: PersonaScore 2.25 [2.00, 2.50] · roleplay 1.75 [" in text
    assert not list(path.parent.glob("gsb_*.png")) and read_shard(path.parent / "verdicts.arrow").num_rows == 0


def test_no_judgements_render_judge_free_only_and_an_empty_benchmark_says_so(tmp_path):
    replies = [r for r in planted()[0] if r.benchmark == "heldout"]
    path = write_report(tmp_path, replies, [], [], META)
    report, text = json.loads((path.parent / "report.json").read_text()), path.read_text()
    heldout = report["benchmarks"]["heldout"]
    assert heldout["scores"] == {} and heldout["gsb"] == [] and heldout["judge_free"]["tuned"]["in_character"] == 1.0
    assert [(e["item_id"], e["seed"]) for e in heldout["examples"]] == [
        ("i-heldout-c-mara-0", 0),
        ("i-heldout-c-mara-0", 1),
        ("i-heldout-c-mara-1", 0),
    ]
    assert report["benchmarks"]["personagym"]["replies"] == {} and "No replies for this benchmark." in text
    assert "- **tuned vs base · heldout**: in character 0% → 100%" in text
    assert sorted(p.name for p in path.parent.glob("*.png")) == ["judge_free_heldout.png"]


def test_a_failed_render_leaves_the_previous_report_whole(tmp_path, monkeypatch):
    replies, judgements = planted()
    path = write_report(tmp_path, replies[:8], judgements, VERDICTS, META)
    before = {p.name: p.read_bytes() for p in path.parent.iterdir()}

    def broken(*args):
        raise RuntimeError("the plot failed")

    monkeypatch.setattr(eval_plots, "_gsb", broken)
    with pytest.raises(RuntimeError, match="the plot failed"):
        write_report(tmp_path, replies, judgements, VERDICTS, META)
    assert {p.name: p.read_bytes() for p in path.parent.iterdir()} == before
    assert not (tmp_path / "report.tmp").exists()
