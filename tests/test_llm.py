"""`complete` and `generate_validated` (synth/llm.py) against a scripted backend and a real request cache.

The items are real built-in personas, the requests and the parser the profiles stage's own
(`profile_messages`, `parse_profile`), so a scripted output is accepted or rejected as in a real run.
"""

import json
from collections import Counter

import pytest

from personas.errors import Rejected
from personas.profiles import EXAMPLES, character, parse_profile, profile_messages, profile_schema
from personas.records import derive_seed
from personas.seeds import load_seeds
from synth.backend import ChatRequest, ChatResult
from synth.cache import RequestCache
from synth.llm import complete, generate_validated, json_object
from synth.runner import Reject
from tests.scripted_backend import Rule, ScriptedBackend, anything, both, last_says, seed_in, with_schema

SEED = 7
PERSONAS = [p for p in load_seeds("builtin") if p.language == "en"][:3]
NAMES = ["Marisol Reyes", "Daniel Kamau", "Edith Larkin"]


def profile(name: str, **changes) -> str:
    return json.dumps({**EXAMPLES[0][2], "name": name, **changes})


def seed(persona, attempt: int) -> int:
    return derive_seed(SEED, persona.id, attempt)


def request(persona, attempt: int) -> ChatRequest:
    return ChatRequest(
        messages=profile_messages(persona, "en"),
        seed=seed(persona, attempt),
        max_tokens=64,
        json_schema=profile_schema(),
    )


def parse(persona, result: ChatResult, req: ChatRequest, attempt: int):
    fields = parse_profile(result.text, result.finish_reason, "en")
    return character(persona, fields, "en", "scripted", req.seed, attempt + 1)


def good_rules(prompt_tokens: int = 0, output_tokens: int = 0) -> list[Rule]:
    """Every persona gets a valid profile with its own name, so the outputs can be told apart."""
    return [
        Rule(last_says(p.text), text=profile(name), prompt_tokens=prompt_tokens, output_tokens=output_tokens)
        for p, name in zip(PERSONAS, NAMES, strict=True)
    ]


def run(backend, cache, counters, max_attempts: int = 3) -> list:
    return list(
        generate_validated(
            backend,
            cache,
            PERSONAS,
            stage="profiles",
            request=request,
            parse=parse,
            max_attempts=max_attempts,
            counters=counters,
        )
    )


@pytest.fixture
def cache(tmp_path):
    cache = RequestCache(tmp_path / "requests.sqlite")
    yield cache
    cache.close()


# ------------------------------------------------------------------------------------- generate_validated


def test_every_item_parses_on_the_first_try_in_one_batch_call(cache):
    backend, counters = ScriptedBackend(good_rules(prompt_tokens=100, output_tokens=20)), Counter()
    out = run(backend, cache, counters)
    assert [(c.persona_id, c.name, c.attempts) for c in out] == [
        (p.id, n, 1) for p, n in zip(PERSONAS, NAMES, strict=True)
    ]
    assert backend.batch_sizes == [3]
    assert backend.seeds == [seed(p, 0) for p in PERSONAS] == [c.seed for c in out]
    assert counters == Counter(requests_generated=3, prompt_tokens=300, output_tokens=60)


def test_a_failed_output_is_retried_with_a_new_seed_and_the_output_keeps_its_input_place(cache):
    first = PERSONAS[0]
    backend = ScriptedBackend([Rule(seed_in(seed(first, 0)), text='{"name": "Marisol'), *good_rules()])
    counters = Counter()
    out = run(backend, cache, counters)
    # One batch per round: all three, then only the one that failed, under the attempt-1 seed.
    assert backend.batch_sizes == [3, 1]
    assert backend.calls[1][0].seed == seed(first, 1) != seed(first, 0)
    assert [c.name for c in out] == NAMES  # the retried item is still first
    assert (out[0].seed, out[0].attempts) == (seed(first, 1), 2)
    assert counters["attempt_failed_invalid_json"] == 1
    assert counters["requests_generated"] == 4


def test_a_prompt_over_the_context_is_rejected_as_too_long_at_once_and_not_cached(cache):
    first, why = PERSONAS[0], "prompt 52113 tokens + max_tokens 64 > max_model_len 4096"
    backend = ScriptedBackend([Rule(seed_in(seed(first, 0)), finish_reason="too_long", error=why), *good_rules()])
    counters = Counter()
    reject, *kept = run(backend, cache, counters)
    assert (reject.id, reject.reason, reject.detail, reject.attempts) == (first.id, "too_long", why, 1)
    assert backend.batch_sizes == [3] and [c.name for c in kept] == NAMES[1:]  # no retry: a seed cannot shorten it
    assert counters["attempt_failed_too_long"] == 1
    assert cache.get_many([request(first, 0).key(backend.model)]) == {}  # a rerun with a longer context tries again


def test_an_item_that_fails_every_attempt_is_rejected_with_the_last_output_reason_and_attempts(cache):
    first, too_old = PERSONAS[0], profile("Marisol Reyes", age=400)
    backend = ScriptedBackend(
        [
            Rule(seed_in(seed(first, 0)), text="not json"),
            Rule(seed_in(seed(first, 1)), text="", finish_reason="length"),
            Rule(seed_in(seed(first, 2)), text=too_old),
            *good_rules(),
        ]
    )
    counters = Counter()
    reject, *kept = run(backend, cache, counters)
    assert isinstance(reject, Reject)
    assert (reject.id, reject.stage, reject.reason, reject.output, reject.attempts) == (
        first.id,
        "profiles",
        "schema_violation",
        too_old,
        3,
    )
    assert reject.detail.startswith("age: ")
    assert reject.record == first.model_dump_json()
    assert [c.name for c in kept] == NAMES[1:]
    assert backend.batch_sizes == [3, 1, 1]
    assert backend.calls[1][0].seed != backend.calls[2][0].seed
    assert {k: v for k, v in counters.items() if k.startswith("attempt_failed_")} == {
        "attempt_failed_invalid_json": 1,
        "attempt_failed_truncated": 1,
        "attempt_failed_schema_violation": 1,
    }


def test_max_attempts_bounds_the_batch_calls(cache):
    backend = ScriptedBackend([Rule(anything, text="never a profile")])
    out = run(backend, cache, Counter(), max_attempts=2)
    assert backend.batch_sizes == [3, 3]
    assert [(r.reason, r.attempts, r.output) for r in out] == [("invalid_json", 2, "never a profile")] * 3


def test_backend_errors_are_not_cached_so_a_rerun_sends_only_them(cache):
    first = PERSONAS[0]
    flaky = Rule(last_says(first.text), finish_reason="error", error="HTTP 500: overloaded", prompt_tokens=5)
    backend, counters = ScriptedBackend([flaky, *good_rules(prompt_tokens=100, output_tokens=20)]), Counter()
    reject, *kept = run(backend, cache, counters, max_attempts=2)
    assert (reject.reason, reject.detail, reject.output, reject.attempts) == (
        "backend_error",
        "HTTP 500: overloaded",
        "",
        2,
    )
    assert counters["attempt_failed_backend_error"] == 2
    assert len(cache) == 2  # the two successes, not the errors

    rerun, again = ScriptedBackend(good_rules(prompt_tokens=100, output_tokens=20)), Counter()
    out = run(rerun, cache, again, max_attempts=2)
    assert [c.name for c in out] == NAMES
    assert rerun.seeds == [seed(first, 0)]  # only the failed request goes out again
    assert again == Counter(
        requests_generated=1,
        requests_cached=2,
        prompt_tokens=100,
        output_tokens=20,
        reused_prompt_tokens=200,
        reused_output_tokens=40,
    )


def test_a_backend_that_raises_stops_the_run_and_caches_nothing(cache):
    backend = ScriptedBackend([Rule(anything, raises=RuntimeError("engine died"))])
    with pytest.raises(RuntimeError, match="engine died"):
        run(backend, cache, Counter())
    assert len(cache) == 0


# ---------------------------------------------------------------------------------------------- complete


def test_complete_counts_the_tokens_it_spent_and_reuses_cached_results_without_a_call(cache):
    requests = [request(p, 0) for p in PERSONAS]
    answer = both(seed_in(*(r.seed for r in requests)), with_schema)
    backend = ScriptedBackend(
        [Rule(answer, text="{}", prompt_tokens=50, output_tokens=10, cached_tokens=30, retries=1)]
    )
    counters = Counter()
    first = complete(backend, cache, requests, counters)
    assert counters == Counter(
        requests_generated=3,
        prompt_tokens=150,
        output_tokens=30,
        cached_prompt_tokens=90,
        backend_retries=3,
    )

    again = Counter()
    assert complete(backend, cache, requests, again) == first
    assert backend.batch_sizes == [3]  # the second call found everything in the cache: no batch at all
    assert again == Counter(requests_cached=3, reused_prompt_tokens=150, reused_output_tokens=30)


def test_complete_sends_only_the_uncached_requests_and_answers_in_input_order(cache):
    a, b, c = (request(p, 0) for p in PERSONAS)
    backend = ScriptedBackend([Rule(last_says(p.text), text=n) for p, n in zip(PERSONAS, NAMES, strict=True)])
    complete(backend, cache, [b], Counter())
    results = complete(backend, cache, [a, b, c], Counter())
    assert [r.text for r in results] == NAMES
    assert [[r.seed for r in batch] for batch in backend.calls] == [[b.seed], [a.seed, c.seed]]


def test_the_cache_key_tells_models_apart(cache):
    req = request(PERSONAS[0], 0)
    complete(ScriptedBackend([Rule(anything, text="one")], model="m1"), cache, [req], Counter())
    other = ScriptedBackend([Rule(anything, text="two")], model="m2")
    assert [r.text for r in complete(other, cache, [req], Counter())] == ["two"]
    assert other.batch_sizes == [1]


# -------------------------------------------------------------------------------------------- json_object


@pytest.mark.parametrize(
    "text, finish_reason, reason",
    [
        ('{"text": "cut', "length", "truncated"),
        ('{"text": ', "stop", "invalid_json"),
        ('["text"]', "stop", "schema_violation"),
    ],
)
def test_json_object_names_why_an_output_is_unusable(text, finish_reason, reason):
    with pytest.raises(Rejected) as e:
        json_object(ChatResult(text=text, finish_reason=finish_reason))
    assert e.value.reason == reason


def test_json_object_reads_raw_control_characters_inside_strings():
    assert json_object(ChatResult(text='{"text": "a\tb"}', finish_reason="stop")) == {"text": "a\tb"}
