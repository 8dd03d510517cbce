"""Training metrics: the per-step log (jsonl + Markdown table), a progress bar with steps/s and tokens/s,
and the loss curve with a one-line reading of it.

The reading follows the Qianfan practice and reads the validation trend first: a validation loss that
climbs back from its minimum (by more than a tenth, or steadily over at least the last third of the
evaluations) is over-fitting, whatever the training loss does; so is a training loss near 0 within the
first third of training (cut the epochs to a third). Only then is a training loss still falling clearly over
the last quarter read as not converged (more epochs or a higher learning rate).
"""

import json
import math
import statistics
import textwrap
import time
from pathlib import Path

from tqdm import tqdm
from transformers import TrainerCallback

from synth.shards import write_atomic

NEAR_ZERO = 0.05  # train loss at which a small model has memorized its data
STILL_FALLING = 0.05  # last quarter's mean loss this much below the quarter before: not converged
EVAL_RISE = 0.10  # final validation loss this much above its minimum: over-fitting
EVAL_TREND = 0.01  # ...or this much above it, the minimum at least a third of the evaluations back: over-fitting


def with_base(history: list[dict], out: Path) -> list[dict]:
    """The log history, led by the untrained model's validation loss (out/base_eval.json) when there is one."""
    base = out / "base_eval.json"
    return ([json.loads(base.read_text())] if base.exists() else []) + list(history)


class Metrics(TrainerCallback):
    """Rewrites metrics.jsonl from the trainer's log history at every log: after a resume the history is the
    checkpoint's plus the new steps, so the file never holds a step twice."""

    def __init__(self, out: Path):
        self.out = out

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero:
            entries = with_base(state.log_history, self.out)
            write_atomic(self.out / "metrics.jsonl", "".join(json.dumps(entry) + "\n" for entry in entries).encode())


class Progress(TrainerCallback):
    """One bar: steps, steps/s (tqdm's rate), tokens/s and the last loss."""

    bar = None  # the evaluation before training logs before the bar exists

    def on_train_begin(self, args, state, control, **kwargs):
        self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", unit="step")
        self.tokens, self.clock = state.num_input_tokens_seen, time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is None or "loss" not in (logs or {}):  # evaluation logs carry no training tokens
            return
        now = time.perf_counter()
        rate = (state.num_input_tokens_seen - self.tokens) / max(now - self.clock, 1e-9)
        self.tokens, self.clock = state.num_input_tokens_seen, now
        self.bar.set_postfix(tok_s=f"{rate:,.0f}", loss=f"{logs['loss']:.4g}")

    def on_train_end(self, args, state, control, **kwargs):
        self.bar.close()


def series(history: list[dict], key: str) -> list[tuple[int, float]]:
    return [(entry["step"], entry[key]) for entry in history if key in entry]


def reading(train: list[tuple[int, float]], evals: list[tuple[int, float]], total_steps: int) -> str:
    """One line: over-fitting / not converged / converged, with the rule that decided."""
    if len(train) < 8:
        return f"too short to read: {len(train)} logged steps (needs 8)"
    # Validation first: a falling training loss says nothing when the held-out loss climbs, and reading it
    # first would advise more epochs exactly when the model has begun to memorize.
    if len(evals) >= 2:
        best_at = min(range(len(evals)), key=lambda i: evals[i][1])
        (best_step, best), (last_step, last) = evals[best_at], evals[-1]
        if last > best * (1 + EVAL_RISE):
            return (
                f"over-fitting: validation loss rose from {best:.3f} (step {best_step}) "
                f"to {last:.3f} (step {last_step}), more than {EVAL_RISE:.0%}: stop near step {best_step}"
            )
        after = len(evals) - 1 - best_at
        if len(evals) >= 3 and after >= math.ceil(len(evals) / 3) and last > best * (1 + EVAL_TREND):
            return (
                f"over-fitting: validation loss has risen since its minimum {best:.3f} at step {best_step}, "
                f"to {last:.3f} at step {last_step} (the last {after} of {len(evals)} evaluations; rule: rising "
                f"over at least the last third): stop near step {best_step} or add training data"
            )
    early = [(s, v) for s, v in train if v <= NEAR_ZERO and s <= total_steps / 3]
    if early:
        step = early[0][0]
        return (
            f"over-fitting: train loss {early[0][1]:.3f} ≤ {NEAR_ZERO} already at step {step} of {total_steps} "
            f"(within the first third): cut the epochs to about a third"
        )
    quarter = max(len(train) // 4, 2)
    before, last_q = (
        statistics.mean(v for _, v in train[-2 * quarter : -quarter]),
        statistics.mean(v for _, v in train[-quarter:]),
    )
    drop = (before - last_q) / before if before else 0.0
    if drop > STILL_FALLING:
        return (
            f"not converged: train loss still fell {drop:.0%} over the last quarter of logged steps "
            f"(rule: > {STILL_FALLING:.0%}): more epochs or a higher learning rate"
        )
    return (
        f"converged: train loss changed {-drop:+.0%} over the last quarter (rule: within {STILL_FALLING:.0%}), "
        "no sign of over-fitting"
    )


def write_curves(history: list[dict], out: Path) -> dict:
    """metrics.md (the table) and loss.png (train and validation loss per step); returns the headline numbers."""
    from matplotlib.figure import Figure

    train, evals = series(history, "loss"), series(history, "eval_loss")
    total = max([s for s, _ in train] + [s for s, _ in evals] + [1])
    line = reading(train, evals, total)
    keys = ["step", "loss", "grad_norm", "learning_rate", "num_input_tokens_seen", "eval_loss"]
    rows = [e for e in history if "loss" in e or "eval_loss" in e]
    table = ["| " + " | ".join(keys) + " |", "|" + " ---: |" * len(keys)]
    table += [
        "| " + " | ".join(f"{e[k]:.4g}" if isinstance(e.get(k), float) else str(e.get(k, "")) for k in keys) + " |"
        for e in rows
    ]
    write_atomic(
        out / "metrics.md", ("# Training metrics\n\n" + f"Reading: {line}\n\n" + "\n".join(table) + "\n").encode()
    )
    fig = Figure(figsize=(6.4, 3.8), dpi=110)
    ax = fig.subplots()
    if train:
        ax.plot(*zip(*train, strict=False), label="train loss", lw=1.2)
    if evals:
        ax.plot(*zip(*evals, strict=False), "o-", label="validation loss", lw=1.2)
    ax.set(title="Loss per step", xlabel="optimizer step", ylabel="loss (character turns only)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.text(0.01, 0.01, textwrap.fill(line, 120), fontsize=7)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(out / "loss.png")
    return {
        "final_train_loss": train[-1][1] if train else None,
        "first_train_loss": train[0][1] if train else None,
        "first_eval_loss": evals[0][1] if evals else None,
        "final_eval_loss": evals[-1][1] if evals else None,
        "min_eval_loss": min(v for _, v in evals) if evals else None,
        "reading": line,
    }
