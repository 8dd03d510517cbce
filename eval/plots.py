"""The evaluation report's PNG plots, drawn from eval.report's numbers: judge scores per task, judge-free metrics,
GSB shares."""

import re
from pathlib import Path

import numpy as np

from synth.plots import axes

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
GSB_COLORS = {"G": "tab:green", "S": "lightgray", "B": "tab:red"}


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
