"""The evaluation report of one run: `RUN/report/report.md`, PNG plots, `report.json` (every number in its tables)
and the results as Arrow files (`replies.arrow`, `judgements.arrow`, `verdicts.arrow`).

    .venv/bin/dramatis eval eval/recipes/demo.yaml        # writes RUN/report/ when the evaluation ends

`gather` turns the records and the run's meta into one dict of plain data; `draw_plots` and `render_markdown` only
draw it. The folder is built beside the old report and renamed into place, so a failed render leaves the previous
report whole.

A unit is one item under one seed; its score on a rubric is the mean over judges. PersonaScore is PersonaGym's
(Samuel et al. 2024): per character the mean of its task means, then the mean over characters — so the character
is its unit. Every Δ is paired: b − a over the units both models have, the units resampled for its interval.
"""

import json
import math
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from eval.judge_free import Answer, judge_free_metrics
from eval.personagym import TASKS
from eval.records import Judgement, Reply, Verdict
from eval.stats import gsb, mean_ci, paired_diff
from synth.plots import axes
from synth.shards import arrow_schema, staged_folder, write_shard

OVERALL = {"persona": "PersonaScore", "roleplay": "overall"}  # rubric → its overall row
RATES = (
    "in_character",
    "assistant_speak",
    "wrong_character",
    "language_match",
    "distinct_1",
    "distinct_2",
    "self_bleu",
    "profile_retrieval",
)
ALL_JUDGES, REPLY_CHARS = "all judges", 600
GSB_COLORS = {"G": "tab:green", "S": "lightgray", "B": "tab:red"}


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


# -------------------------------------------------------------------------------------------------------------- plots
def _grouped(title: str, ylabel: str, groups: list[str], series: dict[str, list[tuple]]):
    """Grouped bars, one colour per model, with (mean, lo, hi) error bars."""
    fig, ax = axes(title, "", ylabel, size=(max(6.4, 1.1 * len(groups) + 2), 3.8))
    width = 0.8 / max(len(series), 1)
    for i, (model, values) in enumerate(series.items()):
        mean, lo, hi = (np.array(x, dtype=float) for x in zip(*values, strict=False))
        # A zero-width interval may come back a hair inside its mean; matplotlib refuses negative error bars.
        err = np.nan_to_num(np.maximum([mean - lo, hi - mean], 0))
        ax.bar(
            np.arange(len(groups)) + (i - (len(series) - 1) / 2) * width,
            mean,
            width,
            yerr=err if err.any() else None,
            capsize=3,
            label=model,
        )
    ax.set_xticks(range(len(groups)), [g.replace(" ", "\n") for g in groups], fontsize=8)
    ax.legend(fontsize=8)
    return fig


def _scores(bench: str, b: dict):
    overall = b["scores"].get("roleplay", {}).get("overall")
    rows = b["scores"].get("persona", {}) | ({"roleplay (0–4)": overall} if overall else {})
    return _grouped(
        f"{bench}: judge scores (mean, 95% CI)",
        "score",
        list(rows),
        {
            m: [(c["mean"], c["lo"], c["hi"]) for c in (r["models"][m] for r in rows.values())]
            for m in next(iter(rows.values()))["models"]
        },
    )


def _rates(bench: str, b: dict):
    return _grouped(
        f"{bench}: judge-free metrics",
        "% of replies (diversity, BLEU, retrieval × 100)",
        list(RATES),
        {m: [(100 * x[k],) * 3 for k in RATES] for m, x in b["judge_free"].items()},
    )


def _gsb(bench: str, rows: list[dict]):
    fig, ax = axes(
        f"{bench}: GSB (b vs a)", "share of verdicts (%)", "", size=(7.5, 0.5 * len(rows) + 1.8), count_axis="x"
    )
    labels = [f"{r['judge']}: {r['model_b']} vs {r['model_a']}" for r in rows][::-1]  # the first row on top
    left = np.zeros(len(rows))
    for k, color in GSB_COLORS.items():
        pct = np.array([100 * r[k] / (r["n"] or 1) for r in rows][::-1])
        bars = ax.barh(labels, pct, left=left, color=color, label=k)
        ax.bar_label(bars, labels=[f"{p:.0f}%" if p >= 8 else "" for p in pct], label_type="center", fontsize=8)
        left += pct
    ax.set_xlim(0, 100)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return fig


def _slug(bench: str) -> str:
    return re.sub(r"[^\w-]+", "_", bench)


def draw_plots(n: dict, folder: Path) -> dict[str, list[tuple[str, str]]]:
    """Each benchmark's plots that have data, saved as PNG into `folder`: benchmark → (file name, caption) pairs."""
    made = {}
    for bench, b in n["benchmarks"].items():
        plots = [
            ("scores", "Judge scores per task with 95% CIs", b["scores"], _scores),
            ("judge_free", "Judge-free metrics per model", b["judge_free"], _rates),
            ("gsb", "GSB shares per judge and model pair", b["gsb"], lambda bench, b: _gsb(bench, b["gsb"])),
        ]
        made[bench] = []
        for kind, caption, data, draw in plots:
            if data:
                draw(bench, b).savefig(folder / f"{kind}_{_slug(bench)}.png")
                made[bench].append((f"{kind}_{_slug(bench)}.png", caption))
    return made


# ----------------------------------------------------------------------------------------------------------- markdown
def _num(x, fmt: str = "{:.2f}") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _ci(c: dict, sign: str = "") -> str:
    f = "{:" + sign + ".2f}"
    return "–" if math.isnan(c["mean"]) else f"{f.format(c['mean'])} [{f.format(c['lo'])}, {f.format(c['hi'])}]"


def _table(head: list[str], rows: list[list], text_columns: int = 1) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * text_columns + " ---: |" * (len(head) - text_columns)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]


def _quote(text: str) -> list[str]:
    # Model output is untrusted: inside a quote block, with raw HTML escaped, it cannot end the block or hide text.
    return ["> " + line for line in text.replace("&", "&amp;").replace("<", "&lt;").splitlines() or [""]] + [""]


def headline(n: dict) -> list[str]:
    """Per other model and benchmark: PersonaScore Δ, roleplay Δ, GSB, in-character rate reference → model; a single
    model gets its own numbers instead."""
    ref, lines = n["reference"], []
    for m in [x for x in n["models"] if x != ref] or [ref]:
        for bench, b in n["benchmarks"].items():
            parts = []
            for rubric, label in (("persona", "PersonaScore"), ("roleplay", "roleplay")):
                if row := b["scores"].get(rubric, {}).get(OVERALL[rubric]):
                    parts.append(
                        f"{label} Δ {_ci(row['delta'][m], '+')}" if m != ref else f"{label} {_ci(row['models'][m])}"
                    )
            parts += [
                f"GSB {_num(r['score'], '{:+.2f}')}"
                for r in b["gsb"]
                if (r["judge"], r["model_a"], r["model_b"]) == (ALL_JUDGES, ref, m)
            ]
            if rates := [
                _num(b["judge_free"][x]["in_character"], "{:.0%}")
                for x in dict.fromkeys([ref, m])
                if "in_character" in b["judge_free"].get(x, {})
            ]:
                parts.append("in character " + " → ".join(rates))
            who = f"{m} vs {ref}" if m != ref else m
            lines.append(f"- **{who} · {bench}**: " + (" · ".join(parts) or "no results"))
    return lines + [""]


def _benchmark(bench: str, b: dict, n: dict, plots: list[tuple[str, str]]) -> list[str]:
    ref, models = n["reference"], n["models"]
    others = [m for m in models if m != ref]
    about = n["meta"].get("benchmarks", {}).get(bench, {})
    lines = [f"## {bench}", ""] + ([" · ".join(f"{k} {v}" for k, v in about.items()), ""] if about else [])
    if not b["replies"]:
        return lines + ["No replies for this benchmark.", ""]
    lines += ["Replies: " + ", ".join(f"{m} {k}" for m, k in b["replies"].items()), ""]
    for rubric, rows in b["scores"].items():
        lines += [f"### Rubric: {rubric}", ""]
        lines += _table(
            ["task", *(f"{m} mean [lo, hi] (n)" for m in models), *(f"Δ {m} − {ref} [lo, hi]" for m in others)],
            [
                [
                    f"**{task}**" if task == OVERALL[rubric] else task,
                    *(f"{_ci(r['models'][m])} ({r['models'][m]['n']})" for m in models),
                    *(f"{_ci(r['delta'][m], '+')} (n={r['delta'][m]['n']})" for m in others),
                ]
                for task, r in rows.items()
            ],
        )
    lines += [f"![{caption}]({name})\n" for name, caption in plots]
    if b["gsb"]:
        lines += ["### GSB (good / same / bad for b; a flip is the two orders disagreeing)", ""]
        lines += _table(
            ["judge", "b vs a", "G", "S", "B", "flips", "(G−B)/(G+S+B)"],
            [
                [
                    r["judge"],
                    f"{r['model_b']} vs {r['model_a']}",
                    r["G"],
                    r["S"],
                    r["B"],
                    r["flips"],
                    _num(r["score"], "{:+.2f}"),
                ]
                for r in b["gsb"]
            ],
            2,
        )
    if jf := b["judge_free"]:
        metrics = list(dict.fromkeys(k for x in jf.values() for k in x))
        lines += ["### Judge-free metrics", ""]
        lines += _table(
            ["metric", *jf],
            [[k, *(_num(x.get(k), "{:,}" if k == "replies" else "{:.3f}") for x in jf.values())] for k in metrics],
        )
        lines += [
            f"- Why out of character, **{m}**: " + (", ".join(f"{k} {v}" for k, v in why.items()) or "never")
            for m, why in b["out_of_character"].items()
            if m in jf
        ] + [""]
    if b["examples"]:
        lines += [f"### Side by side (replies clipped to {REPLY_CHARS} characters)", ""]
    for i, e in enumerate(b["examples"], start=1):
        lines += [
            f"**{i}. {e['character']}** · {e['task']} · `{e['item_id']}` seed {e['seed']}",
            "",
            *_quote(e["question"]),
        ]
        for m, r in e["replies"].items():
            scored = ", ".join(f"{k} {v:.2f}" for k, v in r["scores"].items())
            lines += [f"*{m}*" + (f" ({scored})" if scored else ""), "", *_quote(r["text"])]
    return lines


def _identities(n: dict) -> list[str]:
    """Who was evaluated and who judged: what a reader needs to reproduce or compare the numbers."""
    models, judges = n["meta"]["models"], n["meta"].get("judges", {})
    lines = ["## Models", ""] + _table(
        ["model", "model_id", "kind"],
        [[m, models.get(m, {}).get("model_id", "–"), models.get(m, {}).get("kind", "–")] for m in n["models"]],
        3,
    )
    if judges:
        lines += ["## Judges", ""] + _table(
            ["judge", "model_id", "kind", "temperature"],
            [
                [j, x.get("model_id", "–"), x.get("kind", "–"), _num(x.get("temperature"), "{:g}")]
                for j, x in judges.items()
            ],
            3,
        )
    return lines


def _costs(meta: dict) -> list[str]:
    lines = []
    if latency := meta.get("latency"):
        lines += ["## Latency and cost", ""] + _table(
            ["model", "requests", "first token s", "total s", "output tok/s (single request)", "batch output tok/s"],
            [
                [
                    m,
                    _num(x.get("requests"), "{:,}"),
                    *(_num(x.get(k)) for k in ("first_token_s", "total_s")),
                    *(_num(x.get(k), "{:,.1f}") for k in ("output_tok_s", "batch_output_tok_s")),
                ]
                for m, x in latency.items()
            ],
        )
    if spent := meta.get("judge_tokens"):
        keys = ("requests", "prompt_tokens", "output_tokens")
        lines += ["## Judge tokens", ""] + _table(
            ["judge", "requests", "prompt tokens", "output tokens"],
            [[j, *(_num(x.get(k), "{:,}") for k in keys)] for j, x in spent.items()],
        )
    if rejects := meta.get("rejects"):
        lines += (
            ["## Rejects", ""]
            + [
                f"- {stage}: " + (", ".join(f"{k} {v:,}" for k, v in r.items()) or "none")
                for stage, r in rejects.items()
            ]
            + [""]
        )
    if "seconds" in meta:
        lines.append(f"Evaluation took {meta['seconds']:,.0f} s.")
    return lines


def render_markdown(n: dict, plots: dict[str, list[tuple[str, str]]]) -> str:
    lines = [
        f"# Evaluation report: {n['name'] or 'evaluation'}",
        "",
        f"Reference model: **{n['reference']}**.",
        "",
        *headline(n),
        *_identities(n),
    ]
    for bench, b in n["benchmarks"].items():
        lines += _benchmark(bench, b, n, plots.get(bench, []))
    return "\n".join(lines + _costs(n["meta"])) + "\n"


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
