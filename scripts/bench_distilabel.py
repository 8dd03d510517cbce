"""Benchmark 2's comparison: the engine vs distilabel on the same no-op job, distilabel in a throwaway venv.

.venv/bin/python scripts/bench.py only=overhead,distilabel [distilabel_records=20000]
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from scripts.bench_job import OUT, FreeBackend, Prompt, engine_stage
from synth.cache import RequestCache
from synth.runner import run_stage

# requests: distilabel 1.5.3 imports it (distilabel.models) without declaring it. Not bs4: only the Distiset's citation
# lookup uses it (arXiv over the network, once per run, nothing per record); without it that lookup fails at once
# and prints "Untracked error: No module named 'bs4'", which is harmless.
DISTILABEL = ["distilabel==1.5.3", "requests"]
# The interpreter that builds distilabel's throwaway venv: this one's Python version, from PATH (a test points
# it at a missing file to see the row say so).
VENV_BUILDER = f"python{sys.version_info.major}.{sys.version_info.minor}"


def distilabel_venv(folder: Path) -> dict:
    """distilabel in a throwaway venv of its own, never a dependency of the project: built the first time
    (`python3.X -m venv` + `pip install distilabel==1.5.3 requests`), reused while its stamp is there and it imports.
    Returns {"python": path} plus "build_s" when it was built now, or {"error": the failing command's last line}."""
    python, stamp = folder / "bin" / "python", folder / "dramatis-stamp.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("requirements") == DISTILABEL:
        imports = "import distilabel.models.llms.base, distilabel.pipeline, distilabel.steps.tasks"
        if subprocess.run([str(python), "-c", imports], capture_output=True).returncode == 0:
            return {"python": python}
    shutil.rmtree(folder, ignore_errors=True)
    began = time.perf_counter()
    for command in (
        [VENV_BUILDER, "-m", "venv", str(folder)],
        [str(python), "-m", "pip", "install", "-q", *DISTILABEL],
    ):
        try:
            done = subprocess.run(command, capture_output=True, text=True)
        except OSError as e:  # the builder interpreter is missing
            return {"error": f"{command[0]}: {e.strerror}"}
        if done.returncode != 0:
            return {"error": last_line(done.stderr + done.stdout, f"{' '.join(command[:4])} exited {done.returncode}")}
    seconds = time.perf_counter() - began
    stamp.write_text(json.dumps({"requirements": DISTILABEL, "build_s": seconds}))
    return {"python": python, "build_s": seconds}


def last_line(output: str, default: str) -> str:
    """A failed command's last ERROR line (pip prints warnings after it), else its last line."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or [default])[-1]


def noop_prompts(records: int) -> list[Prompt]:
    """The no-op job's input on the engine's side: the very records distilabel's side loads."""
    from scripts.bench_distilabel_job import job_records

    return [Prompt(id=r["id"], text=r["instruction"]) for r in job_records(records)]


def noop_ours(prompts: list[Prompt], folder: Path, chunk_size: int) -> tuple[float, float]:
    """Wall and CPU seconds for the engine to run the no-op job with the request cache cold in a fresh folder: every
    record goes through complete() → FreeBackend → a cache write → an Arrow shard and the manifest."""
    from scripts.bench_distilabel_job import MAX_TOKENS

    shutil.rmtree(folder, ignore_errors=True)
    began, cpu = time.perf_counter(), time.process_time()
    cache = RequestCache(folder / "cache.sqlite")
    manifest = run_stage(engine_stage(FreeBackend(), cache, MAX_TOKENS, chunk_size), prompts, folder / "stage", {})
    cache.close()
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    assert manifest["counters"]["requests_generated"] == manifest["counters"]["kept"] == len(prompts), manifest[
        "counters"
    ]
    return seconds, cpu


def noop_distilabel(python: Path, records: int, folder: Path, batch_size: int) -> dict:
    """distilabel's side, in its venv: the job script's JSON, or {"error": its last line}.

    Its caches go under `folder`."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = {
        **os.environ,
        "DISTILABEL_CACHE_DIR": str(folder.resolve()),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    command = [
        str(python),
        str(Path(__file__).with_name("bench_distilabel_job.py")),
        str(records),
        str(folder.resolve()),
        str(batch_size),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1].startswith("{"):
        return {"error": f"job failed (exit {done.returncode}): {last_line(done.stderr + done.stdout, 'no output')}"}
    return json.loads(lines[-1])


def bench_distilabel(records: int, repeats: int = 2, out: Path = OUT) -> dict:
    """Row 2's comparison: the same no-op job (records, prompt, sampling settings, batch size) through the engine
    and through distilabel, each with a backend that costs nothing, in records/s end to end. Sides alternate, and
    each keeps its best run: the 2 cores are shared. distilabel runs in bench-out/distilabel-venv (built here the
    first time); when that cannot be built, the engine's side is still measured and the result says why."""
    from scripts.bench_distilabel_job import BATCH_SIZE

    venv = distilabel_venv(out / "distilabel-venv")
    prompts = noop_prompts(records)
    result = {"records": records, "batch_size": BATCH_SIZE, "repeats": repeats}
    if "build_s" in venv:
        result["venv_build_s"] = venv["build_s"]
    if "error" in venv:
        result["error"] = f"venv could not be built: {venv['error']}"
    ours, theirs = [], []  # (wall, CPU) seconds per run; CPU time shows the cost with less of the neighbours' noise
    for _ in range(repeats):
        ours.append(noop_ours(prompts, out / "distilabel" / "ours", BATCH_SIZE))
        if "error" not in result:
            job = noop_distilabel(venv["python"], records, out / "distilabel" / "theirs", BATCH_SIZE)
            if "error" in job:
                result["error"] = job["error"]
            else:
                theirs.append((job["seconds"], job["cpu_seconds"]))
                result["distilabel_version"] = job["version"]
    result.update(
        ours_seconds=[s for s, _ in ours],
        ours_cpu_seconds=[c for _, c in ours],
        ours_records_per_s=records / min(s for s, _ in ours),
        ours_records_per_cpu_s=records / min(c for _, c in ours),
    )
    if "error" not in result:
        result.update(
            distilabel_seconds=[s for s, _ in theirs],
            distilabel_cpu_seconds=[c for _, c in theirs],
            distilabel_records_per_s=records / min(s for s, _ in theirs),
            distilabel_records_per_cpu_s=records / min(c for _, c in theirs),
        )
        result["ratio"] = result["ours_records_per_s"] / result["distilabel_records_per_s"]
        result["cpu_ratio"] = result["ours_records_per_cpu_s"] / result["distilabel_records_per_cpu_s"]
    return result


def distilabel_row(result: dict) -> tuple[str, str, str, str]:
    name, goal = "engine overhead vs distilabel, no-op job", "ours / distilabel"
    if "error" in result:
        return name, f"{result['ours_records_per_s']:,.0f} records/s; distilabel: {result['error']}", "n/a", goal
    return (
        name,
        f"{result['ours_records_per_s']:,.0f} vs {result['distilabel_records_per_s']:,.0f} records/s "
        f"({result['records']:,} records)",
        f"{result['ratio']:.2f}",
        goal,
    )
