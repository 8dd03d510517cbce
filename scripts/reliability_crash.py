"""Reliability suite, crash part: SIGKILL a real run at random moments, relaunch it, compare with an uninterrupted run.

    .venv/bin/python scripts/reliability.py only=crash             # 20 trials, then 9 interrupts
    .venv/bin/python scripts/reliability.py only=crash --reduced   # 3 trials, 2 interrupts (CI's form)

After the kills come the interrupts (Ctrl-C, SIGINT, SIGTERM), on the same reference run and through the same
trial: scripts/reliability_interrupt.py says what they check on top.

One uninterrupted reference run of a small demo recipe on the tiny model comes first; its stage timeline
(when each stage finished) is recorded. Each trial then starts the same command in a fresh folder, in its own
session, and SIGKILLs the whole process group (vLLM's engine processes too, as a machine crash would) at a
random moment: half the trials of the full suite at a time uniform over the reference run's duration, the
others a random time into one stage in turn (start-up/seeds, engine start, profiles after a finished chunk,
split/prompts, dialogues, curate/dataset, report/publish), so every stage gets killed, not only the long ones;
the reduced form kills once early (profiles, after a finished chunk), once in the middle (split to dialogues)
and once late (curate to the report). A run that ends before its kill (faster than the reference) is tried
again in a fresh folder with half the delay.
The case names the stage that was in progress: the first one whose manifest is missing or not complete.

The relaunch (the same command) must exit 0 and then:
  (a) every stage folder's data and rejects shards (and the dataset folder's split files and dataset_info.json)
      hold the rows of the reference run, file by file;
  (b) no stage's data shards hold an id twice;
  (c) no finished request is generated again: the requests the relaunch generated (requests_generated of the
      chunks that were not finished at the kill) equal the cache rows it added (final rows - rows at the kill);
      the reference run shows the invariant means something (its requests_generated == its cache rows);
  (d) no temporary files (.*.tmp, *.tmp/ and *.old/ folders) are left behind.
"""

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from scripts import cli_process
from scripts.reliability_case import Case
from scripts.reliability_interrupt import LIMIT_S, interrupt, interrupt_plans
from synth.shards import read_shard

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
# Small enough for ~2 minutes on a 2-core CPU, big enough that every stage has several chunks to be killed
# between: 6 seeds -> 3 profile chunks (2 profiles kept), 3 prompts x 2 characters -> 10 dialogue tasks.
ARGS = [
    "synth/recipes/demo.yaml",
    "backend.model=tiny",
    "backend.dtype=float32",
    "seeds.sample=6",
    "instructions.sample=1",
    "chunk_size=2",
    "profiles.max_attempts=1",
    "profiles.max_tokens=1024",
    "dialogues.user_turns=2-3",
    "dialogues.max_reply_chars=200",
    "backend.kv_cache_gb=0.25",
]
STAGES = ("seeds", "profiles", "split", "prompts", "dialogues", "curate")  # folders with a manifest
# Progress markers in run order: "profiles:1" = its first chunk finished, a stage name = its manifest complete,
# then dataset_info.json, report.md, hub/README.md, the exit.
MARKERS = (
    "seeds",
    "profiles:1",
    "profiles",
    "split",
    "prompts",
    "dialogues:1",
    "dialogues",
    "curate",
    "dataset",
    "report",
    "publish",
    "exit",
)
# Where a stage-aimed kill lands: (aim, marker the window starts after, marker it ends at).
WINDOWS = [
    ("start-up/seeds", "", "seeds"),
    ("engine start", "seeds", "profiles:1"),
    ("profiles", "profiles:1", "profiles"),
    ("split/prompts", "profiles", "prompts"),
    ("dialogues", "prompts", "dialogues"),
    ("curate/dataset", "dialogues", "dataset"),
    ("report/publish", "dataset", "exit"),
]
# The reduced form: early = profiles after a finished chunk (so some requests are cached), middle, late.
# "late" ends at the report, not at the exit: a relaunch that runs faster than the reference must not finish first.
REDUCED_WINDOWS = [
    ("early", "profiles:1", "profiles"),
    ("middle", "profiles", "dialogues"),
    ("late", "dialogues", "report"),
]
TRIALS, REDUCED_TRIALS = 20, 3
TIMEOUT_S = 1200
EXPECTED = "relaunch: rows = uninterrupted, no duplicates, 0 requests regenerated"


def start_run(run: Path, log: Path) -> subprocess.Popen:
    # Its own session, so os.killpg reaches vLLM's engine processes too, as a machine crash would.
    with open(log, "ab") as sink:
        return cli_process.start("synth", *ARGS, f"out={run}", stdout=sink)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def read_manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def reached(run: Path, marker: str) -> bool:
    stage, _, chunks = marker.partition(":")
    if chunks:  # or the stage is complete: one with fewer chunks (or no input) must not stall the timeline
        manifest = read_manifest(run / stage)
        return len(manifest.get("chunks", [])) >= int(chunks) or bool(manifest.get("complete"))
    if marker in STAGES:
        return bool(read_manifest(run / marker).get("complete"))
    path = {
        "dataset": run / "dataset" / "dataset_info.json",
        "report": run / "report" / "report.md",
        "publish": run / "hub" / "README.md",
    }[marker]
    return path.exists()


def in_progress(run: Path) -> str:
    """The stage a kill interrupted: the first whose manifest (or output) is missing or not complete."""
    if not (run / "seeds" / "manifest.json").exists():
        return "start-up"
    for marker in MARKERS[:-1]:
        if ":" not in marker and not reached(run, marker):
            manifest = read_manifest(run / marker) if marker in STAGES else {}
            if manifest.get("inputs"):
                total = -(-manifest["inputs"] // manifest["chunk_size"])
                return f"{marker}, {len(manifest['chunks'])}/{total} chunks done"
            if marker in STAGES:
                return f"{marker}, no chunk done yet"
            return {"publish": "publish folder"}.get(marker, marker)
    return "shutdown"


def _timeline(proc: subprocess.Popen, run: Path, began: float) -> dict[str, float]:
    """Seconds from the launch to each progress marker, polled until the process exits."""
    seen = {}
    while True:
        done = proc.poll() is not None
        for marker in MARKERS[:-1]:  # reached in order: check the next ones only
            if marker in seen:
                continue
            if not reached(run, marker):
                break
            seen[marker] = time.monotonic() - began
        if done:
            seen["exit"] = time.monotonic() - began
            return seen
        if time.monotonic() - began > TIMEOUT_S:
            kill_group(proc)
            raise RuntimeError(f"the run in {run} took over {TIMEOUT_S} s")
        time.sleep(0.05)


def cache_rows(run: Path) -> int:
    """Rows in the run's request cache, read from a copy (so the check itself does not checkpoint the WAL)."""
    db = run / "cache.sqlite"
    if not db.exists():
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in ("", "-wal", "-shm"):
            if Path(str(db) + suffix).exists():
                shutil.copyfile(str(db) + suffix, Path(tmp) / ("cache.sqlite" + suffix))
        with sqlite3.connect(Path(tmp) / "cache.sqlite") as con:
            try:
                return con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.OperationalError:  # killed before the table was created
                return 0


def stage_rows(run: Path) -> dict[str, list]:
    """Every shard's rows by stage/file name, plus the dataset folder's split files and dataset_info.json."""
    rows = {}
    for stage in STAGES:
        for path in sorted((run / stage).glob("*.arrow")):
            rows[f"{stage}/{path.name}"] = read_shard(path).to_pylist()
    for path in sorted((run / "dataset" / "data").glob("*.arrow")):
        rows[f"dataset/data/{path.name}"] = read_shard(path).to_pylist()
    info = run / "dataset" / "dataset_info.json"
    if info.exists():
        rows["dataset/dataset_info.json"] = [json.loads(info.read_text())]
    return rows


def duplicates(run: Path) -> int:
    """Ids held more than once by one stage's data shards (or the dataset's split files together)."""
    groups = [[run / stage / c["file"] for c in read_manifest(run / stage).get("chunks", [])] for stage in STAGES]
    groups.append(sorted((run / "dataset" / "data").glob("*.arrow")))
    dup = 0
    for paths in groups:
        ids = [i for p in paths for i in read_shard(p).column("id").to_pylist()]
        dup += len(ids) - len(set(ids))
    return dup


def leftovers(run: Path) -> list[str]:
    found = [p for p in run.rglob(".*.tmp")] + [p for p in run.rglob("*.tmp") if p.is_dir()]
    found += [p for p in run.rglob("*.old") if p.is_dir()]
    return sorted(str(p.relative_to(run)) for p in found)


def generated_requests(run: Path, skip: dict[str, set[int]] | None = None) -> int:
    """requests_generated summed over every stage's chunks, leaving out the chunks in `skip` (stage -> indices)."""
    skip = skip or {}
    return sum(
        c["counters"].get("requests_generated", 0)
        for stage in STAGES
        for c in read_manifest(run / stage).get("chunks", [])
        if c["index"] not in skip.get(stage, set())
    )


def differing(got: dict, want: dict) -> list[str]:
    return sorted(name for name in set(got) | set(want) if got.get(name) != want.get(name))


def _reference(out: Path) -> tuple[dict[str, float], dict, int, list[Case]]:
    run, log = out / "reference" / "run", out / "reference" / "run.log"
    run.parent.mkdir(parents=True)
    began = time.monotonic()
    proc = start_run(run, log)
    timeline = _timeline(proc, run, began)
    proc_ok = proc.returncode == 0 and "publish" in timeline
    rows, cached, generated = stage_rows(run), cache_rows(run), generated_requests(run)
    stages = ", ".join(f"{m} {timeline[m]:.0f}" for m in MARKERS if m in timeline)
    kept = read_manifest(run / "dialogues").get("counters", {}).get("kept", 0)
    case = Case(
        case=f"uninterrupted reference run ({timeline['exit']:.0f} s)",
        expected="exit 0, dialogues kept, requests generated = cache rows",
        observed=f"exit {proc.returncode}, {kept} dialogues, {generated} generated, {cached} cached; s: {stages}",
        passed=bool(proc_ok) and kept > 0 and generated == cached > 0,
        part="crash",
    )
    return timeline, rows, cached, [case]


def _plans(reduced: bool, timeline: dict[str, float]) -> list[tuple[str, str, float]]:
    """(aim, start marker, delay): kill `delay` s after the start marker is reached ('' = the launch)."""
    plans = []
    count = REDUCED_TRIALS if reduced else TRIALS
    for i in range(count):
        rng = random.Random(1000 + i)
        if reduced or i % 2:
            aim, after, until = (REDUCED_WINDOWS if reduced else WINDOWS)[i if reduced else (i // 2) % len(WINDOWS)]
            start = timeline.get(after, 0.0)
            # Not past the reference's own end: a kill after exit would test nothing.
            end = min(timeline[until], timeline["exit"] * 0.97)
            plans.append((aim, after, rng.uniform(0.3, max(end - start, 0.6))))
        else:
            plans.append(("any time", "", rng.uniform(5.0, timeline["exit"] * 0.97)))
    return plans


def _started_after_an_unfinished_stage(run: Path) -> list[str]:
    states = [read_manifest(run / s) for s in STAGES]
    first = next((i for i, m in enumerate(states) if not m.get("complete")), len(STAGES))
    return [s for s, m in zip(STAGES[first + 1 :], states[first + 1 :], strict=True) if m]


def _trial(
    out: Path, i: int, plan: tuple[str, str, float], reference: tuple, attempt: int = 0, how: str = "SIGKILL"
) -> Case:
    """Stop a run at the planned moment (SIGKILL to its group, or one of the interrupts), relaunch, compare."""
    ref_rows, ref_cached = reference
    aim, after, delay = plan
    folder = out / (f"{'trial' if how == 'SIGKILL' else 'interrupt'}-{i:02d}" + "abc"[attempt - 1] * bool(attempt))
    run = folder / "run"
    folder.mkdir(parents=True)
    began = time.monotonic()
    proc = start_run(run, folder / "killed.log")
    mark = began if not after else None
    while True:
        if mark is None and reached(run, after):
            mark = time.monotonic()
        if mark is not None and time.monotonic() >= mark + delay:
            break
        if proc.poll() is not None or time.monotonic() - began > TIMEOUT_S:
            break
        time.sleep(0.05)
    finished_first = proc.poll() is not None
    at = time.monotonic() - began
    stopped = []  # what the interrupted run itself did wrong (reliability_interrupt.py's checks)
    if how == "SIGKILL" or finished_first:
        kill_group(proc)
    else:
        code, stopped = interrupt(proc, folder / "killed.log", how)
        kill_group(proc)  # a no-op unless it outlived the limit (or left a child behind)
        stopped += [f"started {s} after the interrupt" for s in _started_after_an_unfinished_stage(run)]
    if finished_first and attempt < 2:
        # This run was faster than the reference and ended before the kill: aim earlier, in a fresh folder.
        return _trial(out, i, (aim, after, delay / 2), reference, attempt + 1, how)
    stage = in_progress(run)
    done_at_kill = {s: {c["index"] for c in read_manifest(run / s).get("chunks", [])} for s in STAGES}
    cached_at_kill = cache_rows(run)

    proc = start_run(run, folder / "relaunch.log")
    try:
        code = proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        code = "timeout"
    label = f"{how} #{i} at {at:.1f} s (in {stage}; aimed: {aim})"
    if finished_first:
        label = f"{how} #{i}: none, the run ended at {at:.1f} s (aimed: {aim})"
    part = "crash" if how == "SIGKILL" else "interrupt"
    if code != 0:
        lines = (folder / "relaunch.log").read_text(errors="replace").splitlines()
        # The first and last exception lines (the root cause, the exit), not the tail of a boxed traceback.
        errors = [line.strip() for line in lines if re.match(r"\w*(Error|Exception): ", line.strip())]
        why = " ... ".join(dict.fromkeys([errors[0], errors[-1]])) if errors else " | ".join(lines[-3:])
        return Case(
            case=label,
            expected=EXPECTED,
            observed=f"relaunch exited {code} ({folder.name}/relaunch.log): {why[:400]}",
            passed=False,
            part=part,
        )

    differ = differing(stage_rows(run), ref_rows)
    dup = duplicates(run)
    generated = generated_requests(run, done_at_kill)
    final = cache_rows(run)
    regenerated = generated - (final - cached_at_kill)
    left = leftovers(run)
    problems = []
    if differ:
        problems.append(
            f"rows differ in {', '.join(differ[:4])}" + (f" (+{len(differ) - 4})" if len(differ) > 4 else "")
        )
    if final != ref_cached:
        problems.append(f"cache {final} rows vs {ref_cached} uninterrupted")
    if left:
        problems.append(f"left {', '.join(left[:3])}")
    observed = (
        f"{'rows equal' if not differ else 'ROWS DIFFER'}, {dup} dup, {regenerated} regenerated "
        f"({generated} generated after relaunch, {cached_at_kill} cached at kill)"
    )
    problems += stopped
    if problems:
        observed += "; " + "; ".join(problems)
    passed = not (differ or dup or regenerated or final != ref_cached or left or finished_first or stopped)
    expected = EXPECTED if how == "SIGKILL" else f"exit ≤ {LIMIT_S} s, one line, no later stage; " + EXPECTED
    return Case(case=label, expected=expected, observed=observed, passed=passed, part=part)


def crash_cases(out: Path, reduced: bool) -> Iterator[Case]:
    from scripts.make_tiny_model import DEFAULT_DIR, build

    build(DEFAULT_DIR, SHARED)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    began = time.monotonic()
    timeline, ref_rows, ref_cached, cases = _reference(out)
    yield from cases
    if not cases[0].passed:
        return
    for i, plan in enumerate(_plans(reduced, timeline), start=1):
        yield _trial(out, i, plan, (ref_rows, ref_cached))
    # The interrupts share the reference run: it is most of the part's cost.
    for i, (aim, after, delay, how) in enumerate(interrupt_plans(reduced, timeline, random.Random(2000)), start=1):
        yield _trial(out, i, (aim, after, delay), (ref_rows, ref_cached), how=how)
    print(f"crash and interrupt parts: {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    from scripts.reliability import table

    print(table(list(crash_cases(Path("reliability-out") / "crash", "--reduced" in sys.argv))))
