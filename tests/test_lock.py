"""The run folder's lock (synth/lock.py): a second process on one `out=` is refused at once, naming the holder's
PID and host, and writes nothing; a lock left by a SIGKILLed process is taken over; two real runs started together
on one folder end with one refusal and the rows of a single run."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from personas.errors import DramatisError
from synth.lock import run_lock
from synth.shards import read_shard
from tests.helpers import ROOT, run_cli, start_tiny_run

# Holds the lock until killed (the context manager kept in a name: a dropped one would release it at once).
HOLD = """import sys, time
from synth.lock import run_lock
lock = run_lock(sys.argv[1])
lock.__enter__()
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding tmp_path/run's lock; yields it, killed afterwards."""
    out = tmp_path / "run"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield out, proc
    proc.kill()
    proc.wait()


def test_a_second_process_is_refused_naming_the_holder(holder):
    out, proc = holder
    with pytest.raises(DramatisError) as exc:
        with run_lock(out):
            pass
    assert f"PID {proc.pid} on {socket.gethostname()}" in str(exc.value) and str(exc.value).startswith(f"out={out}")
    assert json.loads((out / ".lock").read_text())["pid"] == proc.pid  # the refusal leaves the holder's name


def test_dramatis_synth_on_a_held_folder_exits_2_at_once_and_writes_nothing(holder, tiny_model):
    out, proc = holder
    result = run_cli("synth", "synth/recipes/demo.yaml", "backend.model=tiny", f"out={out}", timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert "another dramatis process is writing this run" in line and f"PID {proc.pid}" in line
    assert sorted(p.name for p in out.iterdir()) == [".lock"]


def test_a_lock_left_by_a_killed_process_is_taken_over(holder, capsys):
    out, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with run_lock(out):
        assert json.loads((out / ".lock").read_text())["pid"] == os.getpid()
        with run_lock(out):  # re-entrant within one process
            pass
    assert f"took over the lock of PID {proc.pid}, which is no longer running" in capsys.readouterr().err
    assert (out / ".lock").read_text() == ""  # released: it names nobody


def rows(folder):
    return {p.name: read_shard(p).to_pylist() for p in sorted(folder.glob("*.arrow"))}


@pytest.mark.cli
def test_two_runs_started_together_on_one_folder_give_one_refusal_and_the_rows_of_one_run(tiny_run, tmp_path):
    out = tmp_path / "run"
    first, second = start_tiny_run(out), start_tiny_run(out)
    logs = {}
    for proc in (first, second):
        logs[proc.pid] = proc.communicate(timeout=1200)[0]
    codes = sorted(p.returncode for p in (first, second))
    assert codes == [0, 2], {pid: log[-2000:] for pid, log in logs.items()}
    loser = first if first.returncode == 2 else second
    winner = second if loser is first else first
    assert f"PID {winner.pid}" in logs[loser.pid]
    for stage in ("seeds", "profiles", "split", "prompts", "dialogues", "curate"):
        assert rows(out / stage) == rows(tiny_run / stage), stage
    assert rows(out / "dataset" / "data") == rows(tiny_run / "dataset" / "data")
