"""The evaluation report's Markdown (`report.md`), rendered from eval.report's numbers: the headline, the models
and judges, each benchmark's tables and side-by-side examples, latency and cost."""

import math

# The labels the report's numbers are keyed by and shown under; eval.report gathers with them.
OVERALL = {"persona": "PersonaScore", "roleplay": "overall"}  # rubric → its overall row
ALL_JUDGES, REPLY_CHARS = "all judges", 600


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
