"""The evaluation report of one run: `RUN/report/report.md`, PNG plots, `report.json` (every number in its tables)
and the results as Arrow files (`replies.arrow`, `judgements.arrow`, `verdicts.arrow`).

    .venv/bin/dramatis eval eval/recipes/demo.yaml        # writes RUN/report/ when the evaluation ends

`gather` turns the records and the run's meta into one dict of plain data; eval.plots and eval.markdown only draw
it. The folder is built beside the old report and renamed into place, so a failed render leaves the previous
report whole.

A unit is one item under one seed; its score on a rubric is the mean over judges. PersonaScore is PersonaGym's
(Samuel et al. 2024): per character the mean of its task means, then the mean over characters — so the character
is its unit. Every Δ is paired: b − a over the units both models have, the units resampled for its interval.
"""

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from eval.judge_free import Answer, judge_free_metrics
from eval.markdown import ALL_JUDGES, OVERALL, REPLY_CHARS, headline, render_markdown
from eval.personagym import TASKS
from eval.plots import draw_plots
from eval.records import Judgement, Reply, Verdict
from eval.stats import gsb, mean_ci, paired_diff
from synth.shards import arrow_schema, staged_folder, write_shard


def task_order(tasks) -> list[str]:
    """PersonaGym's tasks in its order, then 'Instruction', then any other task sorted."""
    return [t for t in (*TASKS, "Instruction") if t in tasks] + sorted(set(tasks) - {*TASKS, "Instruction"})


def unit_scores(judgements: list[Judgement]) -> tuple[dict, dict]:
    """(benchmark, rubric) → model → (item_id, seed) → score averaged over judges; and item_id → (task,
    character_id)."""
    raw, units = defaultdict(list), {}
    for j in judgements:
        raw[j.benchmark, j.rubric, j.model, (j.item_id, j.seed)].append(j.score)
        units[j.item_id] = (j.task, j.character_id)
    scores = defaultdict(lambda: defaultdict(dict))
    for (benchmark, rubric, model, unit), s in raw.items():
        scores[benchmark, rubric][model][unit] = sum(s) / len(s)
    return scores, units


def _row(values: dict[str, dict], reference: str) -> dict:
    """Each model's mean [CI] over its units; each other model's paired Δ against the reference."""
    # Values in unit order: the bootstrap's bounds depend on the order it is handed, not only on the seed.
    models = {
        m: dict(zip(("mean", "lo", "hi"), mean_ci([v[k] for k in sorted(v)]), strict=False), n=len(v))
        for m, v in values.items()
    }
    return {
        "models": models,
        "delta": {m: paired_diff(values[reference], v) for m, v in values.items() if m != reference},
    }


def persona_score(values: dict, units: dict) -> dict[str, float]:
    """character_id → the mean over tasks of that character's task means (PersonaGym's PersonaScore, per character)."""
    by = defaultdict(lambda: defaultdict(list))
    for (item, _), s in values.items():
        task, character = units[item]
        by[character][task].append(s)
    return {c: float(np.mean([np.mean(v) for v in tasks.values()])) for c, tasks in by.items()}


def score_table(per_model: dict, units: dict, rubric: str, models: list[str], reference: str) -> dict:
    """Row name → _row: one row per task, then the overall row (PersonaScore for the persona rubric)."""
    values = {m: per_model.get(m, {}) for m in models}
    rows = {
        task: _row({m: {u: s for u, s in v.items() if units[u[0]][0] == task} for m, v in values.items()}, reference)
        for task in task_order({units[i][0] for v in values.values() for i, _ in v})
    }
    if rubric == "persona":
        values = {m: persona_score(v, units) for m, v in values.items()}
    return {**rows, OVERALL[rubric]: _row(values, reference)}


def gsb_rows(verdicts: list[Verdict]) -> list[dict]:
    """One row per (judge, model pair), then each pair's outcomes pooled over judges; a flip is the two orders naming
    different winners (position bias), counted as S in the outcome."""
    groups = defaultdict(list)
    for v in verdicts:
        for judge in (v.judge, ALL_JUDGES):
            groups[v.model_a, v.model_b, judge].append(v)
    return [
        {
            "judge": j,
            "model_a": a,
            "model_b": b,
            **gsb([v.outcome for v in vs]),
            "flips": sum({v.a_first, v.b_first} == {"a", "b"} for v in vs),
        }
        for (a, b, j), vs in sorted(groups.items(), key=lambda kv: (*kv[0][:2], kv[0][2] == ALL_JUDGES, kv[0][2]))
    ]


def judge_free(replies: list[Reply], models: list[str]) -> dict[str, dict]:
    """Model → eval.judge_free metrics over its replies (models with no replies left out)."""
    return {
        m: judge_free_metrics(
            [
                Answer(
                    text=r.text,
                    finish_reason=r.finish_reason,
                    character=r.character,
                    language=r.language,
                    profile=r.system,
                    question_id=r.question_id,
                    question=r.question,
                )
                for r in replies
                if r.model == m
            ]
        )
        for m in models
        if any(r.model == m for r in replies)
    }


def examples(replies: list[Reply], scores: dict, models: list[str], reference: str, count: int) -> list[dict]:
    """Up to `count` units side by side: where the reference and the first other model differ most in score, summed
    over the rubrics (ties and unjudged units by item id), so the examples show what the Δ is made of."""
    by_unit = defaultdict(dict)
    for r in replies:
        by_unit[r.item_id, r.seed][r.model] = r
    other = next((m for m in models if m != reference), reference)

    def gap(unit) -> float:
        pairs = [(s.get(reference, {}).get(unit), s.get(other, {}).get(unit)) for s in scores.values()]
        found = [abs(b - a) for a, b in pairs if a is not None and b is not None]
        return sum(found) if found else -1.0

    picked = sorted(by_unit, key=lambda u: (-gap(u), u))[:count]
    return [_side_by_side(u, by_unit[u], scores, models) for u in picked]


def _side_by_side(unit: tuple, answered: dict[str, Reply], scores: dict, models: list[str]) -> dict:
    asked = next(iter(answered.values()))
    return {
        "item_id": unit[0],
        "seed": unit[1],
        "task": asked.task,
        "character": asked.character,
        "question": asked.question,
        "replies": {
            m: {
                "text": _clip(answered[m].text),
                "scores": {rubric: s[m][unit] for rubric, s in scores.items() if unit in s.get(m, {})},
            }
            for m in models
            if m in answered
        },
    }


def _clip(text: str) -> str:
    return text if len(text) <= REPLY_CHARS else text[: REPLY_CHARS - 1] + "…"


def gather(replies: list[Reply], judgements: list[Judgement], verdicts: list[Verdict], meta: dict) -> dict:
    """Every number and example the report shows, as plain data (report.json)."""
    models = list(dict.fromkeys([*meta["models"], *sorted({r.model for r in replies})]))
    reference = meta.get("reference") or models[0]
    scores, units = unit_scores(judgements)
    found = {r.benchmark for r in replies} | {j.benchmark for j in judgements} | {v.benchmark for v in verdicts}
    benchmarks = {}
    for bench in dict.fromkeys([*meta.get("benchmarks", {}), *sorted(found)]):
        rs = [r for r in replies if r.benchmark == bench]
        rubrics = {rubric: scores[bench, rubric] for rubric in OVERALL if (bench, rubric) in scores}
        benchmarks[bench] = {
            "replies": dict(Counter(r.model for r in rs)),
            "scores": {rubric: score_table(s, units, rubric, models, reference) for rubric, s in rubrics.items()},
            "gsb": gsb_rows([v for v in verdicts if v.benchmark == bench]),
            "judge_free": judge_free(rs, models),
            "out_of_character": {
                m: dict(Counter(r.out_of_character for r in rs if r.model == m and r.out_of_character).most_common())
                for m in models
            },
            "examples": examples(rs, rubrics, models, reference, meta.get("examples", 3)),
        }
    return {
        "name": meta.get("name", ""),
        "reference": reference,
        "models": models,
        "benchmarks": benchmarks,
        "meta": meta,
    }


def _plain(x):
    """JSON without NaN (not JSON): NaN becomes null, numpy numbers plain ones."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(x) else float(x)
    return int(x) if isinstance(x, np.integer) else x


def write_report(
    out: Path, replies: list[Reply], judgements: list[Judgement], verdicts: list[Verdict], meta: dict
) -> Path:
    """Write `out/report/` (report.md, plots, report.json, the results as Arrow files); returns the report.md path."""
    numbers = gather(replies, judgements, verdicts, meta)
    numbers["headline"] = [line.replace("**", "") for line in headline(numbers) if line]  # what `dramatis eval` prints
    folder = Path(out) / "report"
    with staged_folder(folder) as staging:
        for name, rows, record in (
            ("replies", replies, Reply),
            ("judgements", judgements, Judgement),
            ("verdicts", verdicts, Verdict),
        ):
            write_shard(staging / f"{name}.arrow", rows, arrow_schema(record))
        (staging / "report.json").write_text(
            json.dumps(_plain(numbers), indent=1, ensure_ascii=False, allow_nan=False), encoding="utf-8"
        )
        plots = draw_plots(numbers, staging)
        (staging / "report.md").write_text(render_markdown(numbers, plots), encoding="utf-8")
    return folder / "report.md"
