"""The data report of one run: `RUN/report/report.md` plus PNG plots, numbers a person reads in a minute.

    .venv/bin/dramatis report runs/demo

It reads only what the stages left: each finished stage's manifest (counters) and shards, and the dataset's
`dataset_info.json` (splits, the leakage check). `gather` turns them into one dict of plain data; synth.plots'
`draw_plots` and `render_markdown` only draw it. The folder is built beside the old report and renamed into
place, so a failed render leaves the previous report whole.
"""

import json
import re
import statistics
import textwrap
from collections import Counter, defaultdict
from pathlib import Path

from personas.errors import DramatisError
from personas.records import Character, Persona
from personas.split import LEAK_REASONS, SPLITS
from synth.pipeline import STAGES
from synth.plots import draw_plots
from synth.records import Dialogue
from synth.runner import load_records
from synth.shards import read_shard, staged_folder

TOKENS = ("prompt_tokens", "cached_prompt_tokens", "output_tokens", "reused_prompt_tokens", "reused_output_tokens")
REQUESTS = ("requests_generated", "requests_cached")
SAMPLES_PER_MODE, TURN_CHARS = 2, 300


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
