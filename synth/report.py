"""The data report of one run: `RUN/report/report.md` plus PNG plots, numbers a person reads in a minute.

    .venv/bin/dramatis report runs/demo

It reads only what the stages left: each finished stage's manifest (counters) and shards, and the dataset's
`dataset_info.json` (splits, the leakage check). `gather` turns them into one dict of plain data; `draw_plots`
and `render_markdown` only draw it. The folder is built beside the old report and renamed into place, so a
failed render leaves the previous report whole.
"""

import json
import re
import statistics
import textwrap
from collections import Counter, defaultdict
from pathlib import Path

from matplotlib.patches import Patch
from matplotlib.ticker import StrMethodFormatter

from personas.errors import DramatisError
from personas.records import Character, Persona
from personas.split import LEAK_REASONS, SPLITS
from synth.pipeline import STAGES
from synth.plots import axes
from synth.records import Dialogue
from synth.runner import load_records
from synth.shards import read_shard, staged_folder

TOKENS = ("prompt_tokens", "cached_prompt_tokens", "output_tokens", "reused_prompt_tokens", "reused_output_tokens")
REQUESTS = ("requests_generated", "requests_cached")
SAMPLES_PER_MODE, TURN_CHARS = 2, 300
DROP_COLORS = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
SPLIT_COLORS = {"train": "tab:blue", "validation": "tab:orange", "heldout": "tab:green"}


def read_stages(run: Path) -> dict[str, dict]:
    """Finished stages' manifests in pipeline order; the dataset folder's dataset_info.json stands for its manifest."""
    found = {}
    for stage in STAGES:
        path = run / stage / ("dataset_info.json" if stage == "dataset" else "manifest.json")
        if path.exists():
            manifest = json.loads(path.read_text())
            if stage == "dataset" or manifest.get("complete"):
                found[stage] = manifest
    if not found:
        raise DramatisError(f"{run}: no finished stage here to report on (run `dramatis synth ... out={run}` first)")
    return found


def outcomes(manifest: dict) -> dict:
    """What became of a stage's inputs — kept, not sampled, or dropped by reason — and each one's share of them."""
    counters, inputs = manifest["counters"], manifest["inputs"]  # `inputs or 1` below: 0 of 0 inputs reads as 0%
    kept, not_sampled = counters.get("kept", 0), counters.get("not_sampled", 0)
    dropped = {k.removeprefix("dropped_"): v for k, v in counters.items() if k.startswith("dropped_")}
    known = ("kept", "not_sampled", "kept_output_tokens", *TOKENS, *REQUESTS)
    return {
        "inputs": inputs,
        "kept": kept,
        "not_sampled": not_sampled,
        "dropped": dropped,
        "share": {
            "kept": kept / (inputs or 1),
            "not_sampled": not_sampled / (inputs or 1),
            "dropped": {k: v / (inputs or 1) for k, v in dropped.items()},
        },
        # Failed attempts were retried: they cost tokens though the record may still have been kept.
        "retried": {
            k.removeprefix("attempt_failed_"): v for k, v in counters.items() if k.startswith("attempt_failed_")
        },
        # A stage's own notes (curate's repairs, backend retries), shown as they are so a new counter is not lost.
        "other": {
            k: v
            for k, v in counters.items()
            if v and k not in known and not k.startswith(("dropped_", "attempt_failed_", "split_"))
        },
    }


def tokens(manifests: dict[str, dict]) -> dict:
    per_stage = {}
    for stage, m in manifests.items():
        spent = {k: m.get("counters", {}).get(k, 0) for k in TOKENS + REQUESTS}
        if any(spent.values()):
            per_stage[stage] = spent
    total = {k: sum(s[k] for s in per_stage.values()) for k in TOKENS + REQUESTS}
    dialogues = manifests.get("dialogues", {}).get("counters", {})
    # Token yield (the goal is ≥ 95%): generated dialogue tokens that end in kept rows; retries and rejects are the
    # waste.
    # Output tokens of results taken from the request cache count too: the rows cost them, in an earlier run.
    output = dialogues.get("output_tokens", 0) + dialogues.get("reused_output_tokens", 0)
    has_yield = "kept_output_tokens" in dialogues and output
    return {
        "per_stage": per_stage,
        "total": total,
        "yield": dialogues["kept_output_tokens"] / output if has_yield else None,
        "kept_output_tokens": dialogues.get("kept_output_tokens"),
        "dialogue_output_tokens": output,
        "prefix_cache_share": total["cached_prompt_tokens"] / total["prompt_tokens"]
        if total["prompt_tokens"]
        else None,
    }


def leakage(info: dict | None) -> dict:
    """PASS only when no training character is a held-out one or a near-duplicate of a held-out or evaluation one:
    zero is the only passing value for training splits (one such character already makes a held-out score measure
    memory, not generalization). A missing number fails; it is not a zero."""
    if not info or "leakage" not in info:
        return {"status": "NOT CHECKED"}
    check = info["leakage"]
    passed = check.get("overlap") == 0 and check.get("near_duplicates") == 0
    return {**check, "status": "PASS" if passed else "FAIL"}


def final_rows(run: Path, manifests: dict[str, dict]) -> tuple[str, list[Dialogue]]:
    """The rows the run ends with: the dataset's, else the curated ones, else the raw dialogues."""
    if "dataset" in manifests:
        files = [f for split in manifests["dataset"]["splits"].values() for f in split["files"]]
        return "dataset", [
            Dialogue.model_validate(r) for f in files for r in read_shard(run / "dataset" / f).to_pylist()
        ]
    for stage in ("curate", "dialogues"):
        if stage in manifests:
            return stage, load_records(run / stage, Dialogue)
    return "", []


def balance(rows: list[Dialogue]) -> dict:
    per = Counter(d.character_id for d in rows)
    counts = sorted(per.values()) or [0]
    return {
        "characters": len(per),
        "min": counts[0],
        "median": statistics.median(counts),
        "max": counts[-1],
        "rows": dict(per.most_common()),
        "split": {d.character_id: d.split for d in rows},
    }


def split_table(rows: list[Dialogue]) -> dict:
    by_split = defaultdict(list)
    for d in rows:
        by_split[d.split].append(d)
    return {
        split: {
            "rows": len(ds),
            "characters": len({d.character_id for d in ds}),
            "modes": dict(sorted(Counter(d.mode for d in ds).items())),
            "turns": dict(sorted(Counter(d.turns for d in ds).items())),
            "languages": dict(sorted(Counter(d.language for d in ds).items())),
        }
        for split in [*SPLITS, *sorted(set(by_split) - set(SPLITS))]
        if (ds := by_split.get(split))
    }


def samples(rows: list[Dialogue], per_mode: int = SAMPLES_PER_MODE) -> dict[str, list[dict]]:
    """A few rows per mode as plain text, picked in id order: ids are content hashes, so the pick is deterministic
    without favouring the first prompts or characters."""
    picked = defaultdict(list)
    for d in sorted(rows, key=lambda d: d.id):
        if len(picked[d.mode]) < per_mode:
            system = next((m.content.strip() for m in d.messages if m.role == "system"), "")
            picked[d.mode].append(
                {
                    "id": d.id,
                    "name": d.character_name,
                    "split": d.split,
                    "language": d.language,
                    "turns": d.turns,
                    "system": system.splitlines()[0] if system else "",
                    "messages": [(m.role, _clip(m.content)) for m in d.messages if m.role != "system"],
                }
            )
    return dict(sorted(picked.items()))


def _clip(text: str, limit: int = TURN_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def distributions(run: Path, manifests: dict[str, dict], rows: list[Dialogue]) -> dict:
    personas = load_records(run / "seeds", Persona) if "seeds" in manifests else []
    profiled = next((s for s in ("split", "profiles") if s in manifests), None)
    characters = load_records(run / profiled, Character) if profiled else []
    replies = defaultdict(list)
    for d in rows:
        replies[f"{d.mode} {d.language}"] += [len(m.content) for m in d.messages if m.role == "assistant"]
    return {
        "persona_chars": [len(p.text) for p in personas],
        "profile_chars": [len(c.system_prompt) for c in characters],
        "languages": dict(Counter(c.language for c in characters).most_common()),
        "turns": dict(sorted(Counter(d.turns for d in rows).items())),
        "reply_chars": dict(sorted(replies.items())),
    }


def gather(run: Path) -> dict:
    """Every number and sample the report shows, as plain data."""
    manifests = read_stages(run)
    source, rows = final_rows(run, manifests)
    recipe = next(iter(manifests.values())).get("recipe", {})
    split_counters = manifests.get("split", {}).get("counters", {})
    return {
        "run": str(run),
        "recipe": recipe.get("name", ""),
        "model": recipe.get("backend", {}).get("model", ""),
        "stages": list(manifests),
        "unfinished": [s for s in STAGES if s not in manifests and (run / s / "manifest.json").exists()],
        "outcomes": {s: outcomes(m) for s, m in manifests.items() if s != "dataset"},
        "characters_by_split": {s: split_counters[f"split_{s}"] for s in SPLITS if f"split_{s}" in split_counters},
        "tokens": tokens(manifests),
        "leakage": leakage(manifests.get("dataset")),
        "final": {"source": source, "rows": len(rows)},
        "balance": balance(rows),
        "splits": split_table(rows),
        "dists": distributions(run, manifests, rows),
        "samples": samples(rows),
    }


def _bars(title, xlabel, ylabel, counts: dict):
    fig, ax = axes(title, xlabel, ylabel)
    ax.bar_label(ax.bar([str(k) for k in counts], list(counts.values()), color="tab:blue"))
    ax.margins(y=0.12)  # room for the count above the tallest bar
    return fig


def _hist(title, xlabel, ylabel, values: list[int]):
    fig, ax = axes(title, xlabel, ylabel)
    ax.hist(values, bins=min(30, max(5, len(set(values)))), color="tab:blue", edgecolor="white")
    median = statistics.median(values)
    ax.axvline(median, color="black", linestyle="--", label=f"median {median:,.0f}")
    ax.legend()
    return fig


def _replies(groups: dict[str, list[int]]):
    fig, ax = axes("Character reply length by mode and language", "mode · language", "characters per reply")
    ax.boxplot(list(groups.values()), tick_labels=[f"{k}\n(n={len(v)})" for k, v in groups.items()])
    return fig


def _balance(b: dict):
    fig, ax = axes(
        f"Rows per character (min {b['min']}, median {b['median']:g}, max {b['max']})",
        "characters, most rows first",
        "rows",
    )
    ids = list(b["rows"])
    ax.bar(
        range(len(ids)), [b["rows"][i] for i in ids], color=[SPLIT_COLORS.get(b["split"][i], "tab:gray") for i in ids]
    )
    ax.set_xticks([])
    ax.legend(handles=[Patch(color=c, label=s) for s, c in SPLIT_COLORS.items() if s in b["split"].values()])
    return fig


def _outcomes(per_stage: dict[str, dict]):
    # Shares, not counts: 500 prompts and 10 characters would not fit one count axis.
    fig, ax = axes(
        "What became of each stage's inputs",
        "share of the stage's inputs (%)",
        "",
        size=(7.5, 0.6 * len(per_stage) + 2),
        count_axis="x",
    )
    reasons = sorted({r for o in per_stage.values() for r in o["dropped"]})
    parts = [("kept", "tab:green", lambda o: o["kept"]), ("not sampled", "lightgray", lambda o: o["not_sampled"])]
    parts += [
        (f"dropped: {r}", DROP_COLORS[i % len(DROP_COLORS)], lambda o, r=r: o["dropped"].get(r, 0))
        for i, r in enumerate(reasons)
    ]
    stages = list(per_stage)[::-1]  # the first stage on top
    left = [0.0] * len(stages)
    for label, color, count in parts:
        n = [count(per_stage[s]) for s in stages]
        if any(n):
            pct = [100 * x / (per_stage[s]["inputs"] or 1) for x, s in zip(n, stages, strict=False)]
            bars = ax.barh(stages, pct, left=left, color=color, label=label)
            ax.bar_label(
                bars,
                labels=[f"{x:,}" if p >= 6 else "" for x, p in zip(n, pct, strict=False)],
                label_type="center",
                fontsize=8,
            )
            left = [a + b for a, b in zip(left, pct, strict=False)]
    ax.set_xlim(0, 100)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return fig


def _tokens(per_stage: dict[str, dict]):
    fig, ax = axes("Tokens spent per stage", "stage", "tokens")
    stages, width = list(per_stage), 0.19
    kinds = [
        ("prompt_tokens", "prompt"),
        ("cached_prompt_tokens", "prompt from prefix cache"),
        ("output_tokens", "output"),
        ("reused", "reused from the request cache"),
    ]
    for i, (key, label) in enumerate(kinds):
        values = [
            per_stage[s]["reused_prompt_tokens"] + per_stage[s]["reused_output_tokens"]
            if key == "reused"
            else per_stage[s][key]
            for s in stages
        ]
        bars = ax.bar([x + (i - 1.5) * width for x in range(len(stages))], values, width, label=label)
        ax.bar_label(bars, fmt="{:,.0f}", fontsize=7)
    ax.set_xticks(range(len(stages)), stages)
    ax.margins(y=0.12)
    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.legend(fontsize=8)
    return fig


def draw_plots(n: dict, folder: Path) -> list[tuple[str, str]]:
    """Each plot that has data to show, saved as PNG into `folder`; returns (file name, caption) pairs."""
    d, made = n["dists"], []
    plots = [
        ("outcomes.png", "Kept vs dropped by reason, per stage", n["outcomes"], lambda: _outcomes(n["outcomes"])),
        ("tokens.png", "Tokens spent per stage", n["tokens"]["per_stage"], lambda: _tokens(n["tokens"]["per_stage"])),
        (
            "turns.png",
            "Turns per dialogue",
            d["turns"],
            lambda: _bars("Assistant turns per dialogue (final rows)", "turns", "dialogues", d["turns"]),
        ),
        (
            "persona_length.png",
            "Seed persona length",
            d["persona_chars"],
            lambda: _hist("Seed persona length (kept seeds)", "characters", "personas", d["persona_chars"]),
        ),
        (
            "profile_length.png",
            "Profile length",
            d["profile_chars"],
            lambda: _hist("Character profile length (system prompt)", "characters", "profiles", d["profile_chars"]),
        ),
        (
            "response_length.png",
            "Reply length by mode and language",
            d["reply_chars"],
            lambda: _replies(d["reply_chars"]),
        ),
        (
            "languages.png",
            "Characters per language",
            d["languages"],
            lambda: _bars("Characters per language", "language", "characters", d["languages"]),
        ),
        ("balance.png", "Rows per character", n["balance"]["rows"], lambda: _balance(n["balance"])),
    ]
    for name, caption, data, draw in plots:
        if data:
            draw().savefig(folder / name)
            made.append((name, caption))
    return made


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}" if x in (0, 1) else f"{x:.1%}"


def headline(n: dict) -> list[str]:
    o, t, total, b = n["outcomes"], n["tokens"], n["tokens"]["total"], n["balance"]
    unfinished = f" (unfinished: {', '.join(n['unfinished'])})" if n["unfinished"] else ""
    lines = [f"- **Stages**: {', '.join(n['stages'])}{unfinished}"]
    for stage in ("seeds", "prompts"):
        if stage in o:
            s = o[stage]
            lines.append(
                f"- **{stage.capitalize()}**: {s['inputs']:,} read → {s['kept']:,} kept "
                f"({s['not_sampled']:,} not sampled, {sum(s['dropped'].values()):,} dropped)"
            )
    if "profiles" in o:
        p = o["profiles"]
        lines.append(
            f"- **Profiles**: {p['inputs']:,} personas → {p['kept']:,} characters ({_pct(p['share']['kept'])} kept)"
        )
    if n["characters_by_split"]:
        lines.append(
            "- **Characters by split**: " + " · ".join(f"{k} {v:,}" for k, v in n["characters_by_split"].items())
        )
    if "dialogues" in o:
        g = o["dialogues"]
        lines.append(
            f"- **Dialogues**: {g['inputs']:,} planned → {g['kept']:,} generated and kept ({_pct(g['share']['kept'])})"
        )
        if "curate" in o:
            c = o["curate"]
            lines.append(
                f"- **Kept after curation**: {c['kept']:,} of {c['inputs']:,} ({_pct(c['share']['kept'])}); "
                f"{_pct(c['kept'] / (g['inputs'] or 1))} of the planned dialogues"
            )
    per_split = " (" + " · ".join(f"{k} {v['rows']:,}" for k, v in n["splits"].items()) + ")" if n["splits"] else ""
    lines.append(f"- **Final rows** ({n['final']['source'] or 'none'}): {n['final']['rows']:,}{per_split}")
    if t["per_stage"]:
        reused = (
            f" ({total['requests_cached']:,} more answered from the request cache: "
            f"{total['reused_prompt_tokens']:,} prompt + {total['reused_output_tokens']:,} output tokens spent by an "
            "earlier run)"
            if total["requests_cached"]
            else ""
        )
        lines.append(
            f"- **Tokens spent**: {total['prompt_tokens']:,} prompt + {total['output_tokens']:,} output in "
            f"{total['requests_generated']:,} requests{reused}"
        )
        if total["prompt_tokens"]:
            lines.append(
                f"- **Prefix-cache share**: {_pct(t['prefix_cache_share'])} of prompt tokens "
                f"({total['cached_prompt_tokens']:,} of {total['prompt_tokens']:,})"
            )
    if t["yield"] is not None:
        lines.append(
            f"- **Token yield**: {_pct(t['yield'])} of dialogue output tokens ended in kept rows "
            f"({t['kept_output_tokens']:,} of {t['dialogue_output_tokens']:,})"
        )
    lines.append(
        f"- **Balance**: {b['characters']:,} characters with rows; rows per character min {b['min']}, "
        f"median {b['median']:g}, max {b['max']}"
    )
    return lines + [leakage_line(n["leakage"], o.get("split"))]


def leakage_line(check: dict, split: dict | None = None) -> str:
    # The split stage drops training characters that copy held-out or eval ones; the dataset then checks again.
    leaks = sum(v for k, v in split["dropped"].items() if k in LEAK_REASONS) if split else 0
    caught = f"; the split stage dropped {leaks:,} such character(s) earlier" if split else ""
    if check["status"] == "NOT CHECKED":
        return f"- **Leakage**: NOT CHECKED (no dataset stage yet){caught}"
    return (
        f"- **Leakage**: {check['status']} — {check.get('overlap')} held-out characters in training splits, "
        f"{check.get('near_duplicates')} near-duplicates of held-out or eval characters "
        f"({check.get('training_characters')} training vs {check.get('heldout_characters')} held-out characters, "
        f"{check.get('eval_personas')} eval personas, threshold {check.get('threshold')}){caught}"
    )


def _stage_table(stage: str, o: dict) -> list[str]:
    rows = [("kept", o["kept"], o["share"]["kept"])]
    if o["not_sampled"]:
        rows.append(("not sampled", o["not_sampled"], o["share"]["not_sampled"]))
    rows += [
        (f"dropped: {r}", v, o["share"]["dropped"][r]) for r, v in sorted(o["dropped"].items(), key=lambda kv: -kv[1])
    ]
    lines = [f"### {stage}", "", "| outcome | rows | share of inputs |", "| --- | ---: | ---: |"]
    lines += [f"| {label} | {v:,} | {_pct(share)} |" for label, v, share in rows] + [
        f"| **inputs** | **{o['inputs']:,}** | |"
    ]
    for label, counts in (("Failed attempts, retried", o["retried"]), ("Also counted", o["other"])):
        if counts:
            lines += [
                "",
                f"{label}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])),
            ]
    return lines + [""]


def _sample(mode: str, i: int, s: dict) -> list[str]:
    body = [f"{s['name']} — {s['system']}", ""]
    for role, text in s["messages"]:
        who = s["name"] if role == "assistant" else role
        body.append(textwrap.fill(text, 100, initial_indent=f"{who}: ", subsequent_indent="    ") or f"{who}:")
    text = "\n".join(body)
    # Model output is untrusted: a fence longer than any backtick run inside keeps it from closing the block early.
    fence = "`" * max(3, max((len(r) for r in re.findall("`+", text)), default=0) + 1)
    header = f"**{mode} {i}** · `{s['id']}` · {s['split']} · {s['language']} · {s['turns']} turn(s)"
    return [header, "", fence + "text", text, fence, ""]


def render_markdown(n: dict, plots: list[tuple[str, str]]) -> str:
    title = Path(n["run"]).name + (f" (recipe {n['recipe']}, model {n['model']})" if n["recipe"] else "")
    lines = [f"# Data report: {title}", "", f"Run folder `{n['run']}`.", "", *headline(n), "", "## Stages", ""]
    for stage, o in n["outcomes"].items():
        lines += _stage_table(stage, o)
    if n["tokens"]["per_stage"]:
        lines += [
            "## Tokens",
            "",
            "Prompt and output tokens generated by this run; requests answered from the request cache "
            "were paid for by an earlier run (their tokens in the last two columns).",
            "",
            "| stage | requests generated | prompt | from prefix cache | output | requests from cache | their prompt "
            "| their output |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for stage, s in [*n["tokens"]["per_stage"].items(), ("**total**", n["tokens"]["total"])]:
            lines.append(
                f"| {stage} | {s['requests_generated']:,} | {s['prompt_tokens']:,} | {s['cached_prompt_tokens']:,} | "
                f"{s['output_tokens']:,} | {s['requests_cached']:,} | {s['reused_prompt_tokens']:,} | "
                f"{s['reused_output_tokens']:,} |"
            )
        lines.append("")
    lines += ["## Plots", ""] + [f"![{caption}]({name})\n" for name, caption in plots]
    if n["splits"]:
        lines += [
            f"## Splits ({n['final']['source']})",
            "",
            "| split | rows | characters | modes | turns | languages |",
            "| --- | ---: | ---: | --- | --- | --- |",
        ]
        for split, v in n["splits"].items():
            counts = [", ".join(f"{k}: {x}" for k, x in v[col].items()) for col in ("modes", "turns", "languages")]
            lines.append(f"| {split} | {v['rows']:,} | {v['characters']:,} | {' | '.join(counts)} |")
        lines.append("")
    if n["samples"]:
        lines += [f"## Sample rows ({n['final']['source']}; turns clipped to {TURN_CHARS} characters)", ""]
        for mode, picked in n["samples"].items():
            lines += [f"### Mode {mode}", ""]
            for i, s in enumerate(picked, start=1):
                lines += _sample(mode, i, s)
    return "\n".join(lines)


def write_report(run: Path) -> Path:
    """Write `run/report/` (report.md and the plots); returns the report.md path."""
    run = Path(run)
    numbers = gather(run)
    folder = run / "report"
    with staged_folder(folder) as staging:
        plots = draw_plots(numbers, staging)
        (staging / "report.md").write_text(render_markdown(numbers, plots), encoding="utf-8")
    return folder / "report.md"
