"""The `dramatis` command in a child process, as a user runs it: `python -m synth.cli ARGS` from the repository
root, with the Hugging Face libraries offline. The tests and the reliability suite start the CLI only through here.

    run("synth", "synth/recipes/demo.yaml", "out=runs/x")     # to the end; exit code and output captured
    start("synth", "synth/recipes/demo.yaml", "out=runs/x")   # running, in its own session, to be killed
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What `make test` exports: CI has no network, so nothing may try a download (a missing model is an error at once).
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def command(*args: str, env: dict | None = None) -> tuple[list[str], dict]:
    """The argv and the environment of `dramatis ARGS`: `env` (this process's when None) with OFFLINE set."""
    return [sys.executable, "-m", "synth.cli", *args], {**(os.environ if env is None else env), **OFFLINE}


def run(
    *args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Runs to the end (or raises subprocess.TimeoutExpired); stdout and stderr captured as text for the caller."""
    argv, env = command(*args, env=env)
    return subprocess.run(argv, cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def start(*args: str, stdout=subprocess.PIPE) -> subprocess.Popen:
    """Starts it with stderr into `stdout` (a pipe of text by default, a file, or subprocess.DEVNULL), in its own
    session: os.killpg(proc.pid, ...) then reaches vLLM's engine processes too, as a machine crash would."""
    argv, env = command(*args)
    return subprocess.Popen(
        argv, cwd=ROOT, stdout=stdout, stderr=subprocess.STDOUT, text=True, start_new_session=True, env=env
    )
