"""OpenAIBackend against vLLM's real API server, and against a fault-injecting fake of the same API.

The fake (scripts/faulty_server.py) exists only to inject faults the real server never shows on demand.
"""

import json
import shutil
import time
import warnings
from collections import Counter

import jsonschema
import pytest

from personas.errors import DramatisError
from scripts.faulty_server import FAULTS, MARKER, FaultyServer
from synth.backend import ChatRequest, ChatResult
from synth.cache import RequestCache
from synth.llm import complete
from synth.openai_backend import OpenAIBackend
from synth.runner import shard_paths
from synth.shards import read_shard
from tests.helpers import free_port, run_cli


@pytest.fixture
def faulty_server():
    with FaultyServer() as server:
        yield server


def flaky_backend(url: str, max_retries: int = 4) -> OpenAIBackend:
    return OpenAIBackend("fake", url, max_retries=max_retries, backoff_s=0.01, timeout_s=0.5, concurrency=8)


def user_requests(texts: list[str], max_tokens: int = 16) -> list[ChatRequest]:
    return [
        ChatRequest(messages=[{"role": "user", "content": t}], seed=i, max_tokens=max_tokens)
        for i, t in enumerate(texts)
    ]


def assert_accounted_for(result: ChatResult, max_retries: int) -> None:
    """A result is a completion with text, or an error with its reason; never a silent empty."""
    assert 0 <= result.retries <= max_retries
    if result.finish_reason == "error":
        assert result.error.strip(), result
    else:
        assert result.finish_reason in ("stop", "length"), result
        assert result.text.strip(), result
        assert result.error == ""


# ------------------------------------------------------------------------------------- the real server


PROMPTS = [
    "Tell me about the sea.",
    "Who are you?",
    "Describe a tea house in Chengdu.",
    "What is a lighthouse?",
    "Name three colours.",
    "Write a haiku about rain.",
    "Wie spät ist es?",
    "你好，请介绍一下你自己。",
]

SMALL_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def test_a_prompt_over_the_servers_context_is_too_long_and_the_rest_of_the_batch_is_served(openai_server):
    backend = OpenAIBackend("tiny", openai_server, timeout_s=120, max_retries=1, backoff_s=0.1)
    fine, too_long = backend.generate(
        [
            ChatRequest(messages=[{"role": "user", "content": "Hello"}], seed=1, max_tokens=8),
            ChatRequest(messages=[{"role": "user", "content": "word " * 40_000}], seed=2, max_tokens=8),
        ]
    )
    assert fine.finish_reason in ("stop", "length") and fine.text
    assert too_long.finish_reason == "too_long" and too_long.retries == 0
    assert too_long.error.startswith("HTTP 400: ") and "maximum context length is 2048" in too_long.error


def test_real_server_batch_returns_text_finish_reason_and_token_counts(openai_server):
    backend = OpenAIBackend("tiny", openai_server, timeout_s=120, max_retries=1, backoff_s=0.1)
    requests = [
        ChatRequest(messages=[{"role": "user", "content": p}], seed=100 + i, max_tokens=32)
        for i, p in enumerate(PROMPTS)
    ]
    results = backend.generate(requests)
    assert len(results) == len(requests)
    for result in results:
        assert result.finish_reason in ("stop", "length"), result
        assert result.text, result
        assert result.error == "" and result.retries == 0
        assert result.prompt_tokens > 0 and result.output_tokens > 0
        assert result.output_tokens <= 32


def test_real_server_same_seed_gives_same_text_and_other_seeds_differ(openai_server):
    backend = OpenAIBackend("tiny", openai_server, timeout_s=120, max_retries=1, backoff_s=0.1)
    messages = [{"role": "user", "content": "Tell me a story about a retired lighthouse keeper."}]
    same = ChatRequest(messages=messages, seed=42, max_tokens=48, temperature=1.0)
    first = backend.generate([same])[0]
    second = backend.generate([same])[0]
    assert first.finish_reason != "error" and first.text
    assert second.text == first.text
    others = backend.generate(
        [ChatRequest(messages=messages, seed=s, max_tokens=48, temperature=1.0) for s in (1, 2, 3, 4)]
    )
    assert all(r.finish_reason != "error" for r in others)
    assert any(r.text != first.text for r in others)


def test_real_server_json_schema_output_parses_and_validates(openai_server):
    backend = OpenAIBackend("tiny", openai_server, timeout_s=120, max_retries=1, backoff_s=0.1)
    messages = [{"role": "user", "content": "Give a name and an age as JSON."}]
    results = backend.generate(
        [ChatRequest(messages=messages, seed=s, max_tokens=128, json_schema=SMALL_SCHEMA) for s in range(8)]
    )
    assert all(r.finish_reason in ("stop", "length") for r in results), results
    finished = [r for r in results if r.finish_reason == "stop"]
    # The model is random: a "length" result is legitimately cut mid-object; the ones that stopped must be valid.
    assert finished, [r.text for r in results]
    for result in finished:
        # strict=False: the server's JSON grammar lets raw control characters (e.g. \x08) into strings, which
        # a random model does pick; strict JSON wants them escaped. Structure and constraints still hold.
        data = json.loads(result.text, strict=False)
        jsonschema.validate(data, SMALL_SCHEMA)
        assert len(data["name"]) <= 20 and isinstance(data["age"], int)


# ------------------------------------------------------------------------------------ injected faults


def test_flaky_server_every_result_is_a_completion_or_an_error_with_reason(faulty_server):
    backend = flaky_backend(faulty_server.url)
    texts = [f"request number {i}" for i in range(60)]
    results = backend.generate(user_requests(texts))
    assert len(results) == 60
    for text, result in zip(texts, results, strict=False):
        assert_accounted_for(result, max_retries=4)
        if result.finish_reason != "error":
            assert result.text == "echo: " + text  # results come back in request order
            assert result.prompt_tokens == 7 and result.output_tokens > 0
        else:
            assert result.retries == 4 and "gave up after 5 attempts" in result.error, result
    outcomes = faulty_server.outcomes()
    assert faulty_server.hits() > 60, outcomes
    assert all(outcomes[f] > 0 for f in FAULTS), outcomes  # every fault kind was exercised
    # Each request reached the server at least once and at most once per attempt the backend counted
    # (an attempt can die before the server reads it, e.g. a connect timeout on a loaded machine).
    for text, result in zip(texts, results, strict=False):
        assert 1 <= faulty_server.attempts_by_prompt[text] <= result.retries + 1, (text, result)
    # Faults stop after a body's third attempt and the backend tries five times: on an idle machine
    # all 60 get through; allow a few losses to timeouts of a loaded machine (0.5 s is tight).
    assert sum(r.finish_reason == "stop" for r in results) >= 54, [r.error for r in results if r.error]


def test_request_that_always_fails_gives_up_after_max_retries_plus_one_attempts(faulty_server):
    backend = flaky_backend(faulty_server.url, max_retries=3)
    texts = [f"{MARKER} {i}" if i % 5 == 0 else f"ordinary {i}" for i in range(20)]
    results = backend.generate(user_requests(texts))
    for text, result in zip(texts, results, strict=False):
        assert_accounted_for(result, max_retries=3)
        if MARKER in text:
            assert result.finish_reason == "error"
            assert result.text == ""
            assert "gave up after 4 attempts" in result.error and "500" in result.error, result.error
            assert result.retries == 3
        else:
            assert result.finish_reason == "stop" and result.text == "echo: " + text, result


def test_complete_caches_successes_but_not_errors_so_a_rerun_resends_only_failures(tmp_path):
    with FaultyServer(fault_percent=0) as server:  # only the marked requests fail: server hits add up exactly
        check_cache_keeps_successes_only(server, tmp_path)


def check_cache_keeps_successes_only(faulty_server: FaultyServer, tmp_path) -> None:
    backend = flaky_backend(faulty_server.url, max_retries=2)
    cache = RequestCache(tmp_path / "cache.sqlite")
    texts = [f"{MARKER} {i}" if i % 4 == 0 else f"ordinary {i}" for i in range(16)]
    failing = sum(MARKER in t for t in texts)
    requests = user_requests(texts)
    try:
        counters = Counter()
        first = complete(backend, cache, requests, counters)
        assert [r.finish_reason == "error" for r in first] == [MARKER in t for t in texts]
        assert counters["requests_generated"] == 16 and counters["requests_cached"] == 0
        assert len(cache) == 16 - failing  # errors are not cached
        hits_after_first = faulty_server.hits()

        counters = Counter()
        second = complete(backend, cache, requests, counters)
        assert counters["requests_generated"] == failing and counters["requests_cached"] == 16 - failing
        # Only the failed requests reached the server again, each max_retries + 1 times.
        new = faulty_server.log[hits_after_first:]
        assert len(new) == failing * 3
        assert all(outcome == "500" for _, _, outcome in new)
        for a, b, text in zip(first, second, texts, strict=False):
            if MARKER in text:
                assert b.finish_reason == "error" and "gave up after 3 attempts" in b.error
            else:
                assert b == a  # served from the cache, unchanged
        assert len(cache) == 16 - failing
    finally:
        cache.close()


def test_backoff_s_sets_the_retry_wait_scale(faulty_server):
    """backoff_s=0.01 means waits of about 0.01, 0.02, 0.04 s, not seconds of jitter on top."""
    backend = flaky_backend(faulty_server.url, max_retries=4)
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = backend.generate(user_requests([f"{MARKER} {i}" for i in range(8)]))
    elapsed = time.monotonic() - start
    assert all(r.finish_reason == "error" and r.retries == 4 for r in results)
    assert faulty_server.hits() == 8 * 5
    assert elapsed < 1.5, f"8 requests x 5 quick 500s took {elapsed:.2f} s"
    # ...and building the wait strategy warns about nothing (one warning per request would flood a run's log).
    assert not [w for w in caught if w.filename.endswith("openai_backend.py")], [str(w.message) for w in caught]


# --------------------------------------------------------------------------------- nothing listening


def test_unreachable_server_raises_dramatis_error_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(DramatisError) as info:
        OpenAIBackend("tiny", url)
    assert url in str(info.value)


@pytest.mark.cli
def test_cli_with_unreachable_server_exits_2_naming_the_url_and_writes_nothing(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    out = tmp_path / "run"
    proc = run_cli(
        "synth",
        "synth/recipes/demo.yaml",
        "backend.kind=openai",
        f"backend.base_url={url}",
        "backend.model=tiny",
        "backend.dtype=float32",
        f"out={out}",
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert url in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


# ------------------------------------------------------------------------------------------ end to end


@pytest.mark.cli
def test_cli_end_to_end_through_server_accounts_for_every_seed_and_relaunch_uses_the_cache(openai_server, tmp_path):
    out = tmp_path / "run"
    args = (
        "synth",
        "synth/recipes/demo.yaml",
        "backend.kind=openai",
        f"backend.base_url={openai_server}",
        "backend.model=tiny",
        "backend.dtype=float32",
        "seeds.sample=4",
        "profiles.max_tokens=64",
        "profiles.max_attempts=2",
        f"out={out}",
    )
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]

    folder = out / "profiles"
    manifest = json.loads((folder / "manifest.json").read_text())
    counters = manifest["counters"]
    assert manifest["complete"] and manifest["inputs"] == 4
    dropped = {k: v for k, v in counters.items() if k.startswith("dropped_")}
    assert counters["kept"] + sum(dropped.values()) == 4, counters
    kept_rows = [row for path in shard_paths(folder) for row in read_shard(path).to_pylist()]
    rejects = [row for path in shard_paths(folder, rejects=True) for row in read_shard(path).to_pylist()]
    # If the server failed every request, say how (the rejects carry the backend's error) rather than "0 > 0".
    why = (counters, [(r["reason"], r["detail"], r["output"][:300]) for r in rejects], proc.stderr[-2000:])
    assert counters["requests_generated"] > 0 and counters["requests_cached"] == 0, why
    assert counters["prompt_tokens"] > 0 and counters["output_tokens"] > 0, why
    assert len(kept_rows) == counters["kept"]
    assert len(rejects) == sum(dropped.values())
    assert Counter(f"dropped_{r['reason']}" for r in rejects) == Counter(dropped)
    for reject in rejects:
        assert reject["reason"] and reject["stage"] == "profiles"
        # A seed in a language without prompts (the built-in Spanish and French ones) is refused unasked.
        assert 1 <= reject["attempts"] <= 2 or (reject["reason"], reject["attempts"]) == ("unsupported_language", 0)
    seed_ids = {json.loads(r["record"])["id"] for r in rejects} | {r["persona_id"] for r in kept_rows}
    assert len(seed_ids) == 4  # every sampled persona is kept or rejected, none twice, none lost

    # A finished stage is skipped on relaunch; remove it so the rerun has to ask for every profile again.
    shutil.rmtree(folder)
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads((folder / "manifest.json").read_text())["counters"]
    assert again["requests_generated"] == 0, again
    assert again["requests_cached"] == counters["requests_generated"]
    # The rows cost the same tokens as before, spent by the first run: reported apart, not as 0 and not as new.
    assert again.get("prompt_tokens", 0) == again.get("output_tokens", 0) == 0
    assert (again["reused_prompt_tokens"], again["reused_output_tokens"]) == (
        counters["prompt_tokens"],
        counters["output_tokens"],
    )
    outcome = lambda c: {k: v for k, v in c.items() if k == "kept" or k.startswith("dropped_")}  # noqa: E731
    assert outcome(again) == outcome(counters)  # the same outputs, rebuilt from the cache
