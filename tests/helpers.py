"""What several test modules share besides fixtures: the data paths, the tiny run's command, port and process helpers.
The fixtures themselves, and the hooks that mark the test tiers, are in conftest.py."""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from scripts import cli_process
from scripts.cli_process import ROOT
from scripts.cli_process import run as run_cli

__all__ = [
    "ROOT",
    "SEEDS_5K",
    "SHARED",
    "TEST_DTYPE",
    "TINY_RUN_ARGS",
    "free_port",
    "kill_after_first_chunk",
    "run_cli",
    "start_tiny_run",
]

SHARED = ROOT.parent / "shared" / "data"
SEEDS_5K = SHARED / "seeds" / "personahub_tool_5k.jsonl"

# Every engine the tests start computes in float32, chosen here rather than by the CPU's bf16 flags
# (backend.dtype=auto): texts sampled in bf16 differ from float32 ones, and plumbing tests must not depend on them.
TEST_DTYPE = "float32"

# One small real run of the demo recipe on the tiny model, shared by the tests of the dialogue, curate,
# report and publish stages (conftest.py's tiny_run), and killed and relaunched by the resume tests.
TINY_RUN_ARGS = [
    "synth/recipes/demo.yaml",
    "backend.model=tiny",
    f"backend.dtype={TEST_DTYPE}",
    "seeds.sample=12",
    "instructions.sample=3",
    "chunk_size=4",
    "dialogues.user_turns=2-3",
    "dialogues.user_persona_share=0.3",
    "dialogues.action_cues_share=0.3",
    "profiles.max_tokens=2048",
    # The tiny model's random text passes a profile's checks ~19% of the time per attempt (measured): with five
    # attempts, fewer than three of 12 profiles (so an empty validation or held-out split) is ~1e-3 likely.
    "profiles.max_attempts=5",
    "dialogues.max_reply_chars=200",
    "backend.kv_cache_gb=0.5",
]


def start_tiny_run(out: Path, *extra: str) -> subprocess.Popen:
    """The tiny run into `out` (with `extra` overrides), its output on a text pipe, in its own session."""
    return cli_process.start("synth", *TINY_RUN_ARGS, *extra, f"out={out}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_after_first_chunk(proc: subprocess.Popen, manifest: Path, timeout: float = 900) -> None:
    """SIGKILL the run's process group (vLLM's engine too, as a machine crash would) once the stage whose
    manifest this is has finished a chunk; the run must have its own session (cli_process.start gives it one)."""
    deadline = time.monotonic() + timeout
    while not (manifest.exists() and json.loads(manifest.read_text())["chunks"]):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
