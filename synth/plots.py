"""The report figures: the one figure style both reports draw in (`axes`, for `dramatis report` and
`dramatis eval`), and the data report's PNG plots, drawn from synth.report's numbers (`draw_plots`)."""

import statistics
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, StrMethodFormatter

DROP_COLORS = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
SPLIT_COLORS = {"train": "tab:blue", "validation": "tab:orange", "heldout": "tab:green"}


def axes(title: str, xlabel: str, ylabel: str, size=(6.4, 3.6), count_axis: str = "y"):
    """A titled figure and its one set of axes, gridded along `count_axis`; a "y" count axis shows whole numbers."""
    fig = Figure(figsize=size, dpi=100, layout="constrained")  # no pyplot: no global state, no display needed
    ax = fig.subplots()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(axis=count_axis, alpha=0.3)
    if count_axis == "y":  # counts: no "2.5 characters"
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, ax


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
