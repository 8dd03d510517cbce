"""Reliability suite, interrupt part: Ctrl-C as a terminal sends it (SIGINT to the run's whole process group,
engine processes included), SIGINT to the main process alone, and SIGTERM, at chosen moments of a real run.

    .venv/bin/python scripts/reliability.py only=crash             # 20 kills, then 9 interrupts
    .venv/bin/python scripts/reliability.py only=crash --reduced   # 3 kills, 2 interrupts (what CI runs)

The trials go through the crash part's trial (scripts/reliability_crash.py: the same uninterrupted reference run,
the same relaunch and its checks: rows equal the reference's file by file, no id twice, no finished request
generated again, no temporary file). On top, the interrupted run itself must:
  (a) exit within 10 s with 128 + the signal's number;
  (b) end with the one-line message `interrupted (SIG...)`, and no traceback;
  (c) start no stage after the one it was in (that stage's manifest stays incomplete).
What it wrote before the interrupt is then held to the relaunch checks: a reject or a cache entry made from the
shutdown would make the relaunch's rows differ from the reference's.
"""

import os
import signal
import subprocess
from pathlib import Path

LIMIT_S = 10
HOWS = {  # name -> (signal, to the whole process group)
    "SIGINT to the group (Ctrl-C)": (signal.SIGINT, True),
    "SIGINT to the main process": (signal.SIGINT, False),
    "SIGTERM to the main process": (signal.SIGTERM, False),
}
# (aim, the progress marker the delay counts from, delay in s; None = uniform over the stage's window)
MOMENTS = [
    ("right after a profiles chunk", "profiles:1", 0.0),
    ("profiles, mid-generation", "profiles:1", None),
    ("dialogues, between rollout steps", "prompts", None),
]
REDUCED = [(MOMENTS[1], "SIGINT to the group (Ctrl-C)"), (MOMENTS[2], "SIGINT to the group (Ctrl-C)")]


def interrupt_plans(reduced: bool, timeline: dict[str, float], rng) -> list[tuple[str, str, float, str]]:
    """(aim, start marker, delay, how): every moment with every way in the full form, two Ctrl-Cs in the reduced."""
    chosen = REDUCED if reduced else [(m, how) for how in HOWS for m in MOMENTS]
    ends = {"profiles:1": "profiles", "prompts": "dialogues"}
    plans = []
    for (aim, after, delay), how in chosen:
        if delay is None:  # within the stage, as the reference run timed it
            delay = rng.uniform(0.3, max(timeline[ends[after]] - timeline[after], 0.6) * 0.8)
        plans.append((aim, after, delay, how))
    return plans


def interrupt(proc: subprocess.Popen, log: Path, how: str) -> tuple[object, list[str]]:
    """Send `how`'s signal and wait; (exit code or 'still running', problems with (a) and (b))."""
    signum, group = HOWS[how]
    (os.killpg if group else os.kill)(proc.pid, signum)
    try:
        code = proc.wait(timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        return "still running", [f"still running {LIMIT_S} s after the signal"]
    problems = [] if code == 128 + signum else [f"exit {code}, not {128 + signum}"]
    text = log.read_text(errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[-1].startswith(f"interrupted ({signal.Signals(signum).name})"):
        problems.append(f"last line {lines[-1][:120] if lines else ''!r}, not the one-line interrupt message")
    if "Traceback (most recent call last)" in text:
        problems.append("a traceback in the output")
    return code, problems
