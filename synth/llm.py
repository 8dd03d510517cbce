"""Calling a backend the engine's way: through the request cache, with bounded retries on bad outputs.

Failures are data: a result that cannot be parsed is retried with a new seed up to `max_attempts`
times, then becomes a `Reject` carrying the reason and the last raw output, so one bad output costs one row,
never the run.
"""

import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

from pydantic import BaseModel

from personas.errors import Rejected
from synth.backend import Backend, ChatRequest, ChatResult
from synth.cache import RequestCache
from synth.runner import Reject

UNCACHED = ("error", "too_long")


def complete(
    backend: Backend, cache: RequestCache, requests: list[ChatRequest], counters: Counter
) -> list[ChatResult]:
    """Results for `requests` in order; cached ones are not sent again, new successes are cached at once."""
    keys = [r.key(backend.model) for r in requests]
    found = cache.get_many(keys)
    todo = [i for i, k in enumerate(keys) if k not in found]
    fresh = backend.generate([requests[i] for i in todo]) if todo else []
    # Transport errors are not cached: a rerun should try them again. Nor is `too_long`: it holds for this
    # max_model_len only, which the request's key does not include.
    cache.put_many([(keys[i], r) for i, r in zip(todo, fresh, strict=False) if r.finish_reason not in UNCACHED])
    for i, r in zip(todo, fresh, strict=False):
        found[keys[i]] = r
        counters["prompt_tokens"] += r.prompt_tokens
        counters["output_tokens"] += r.output_tokens
        counters["cached_prompt_tokens"] += r.cached_tokens
        counters["backend_retries"] += r.retries
    # A cached result's tokens were spent by an earlier run: counted apart, so a resumed run's token yield
    # (kept tokens over all tokens its rows cost) and its cost of this run both stay right.
    for i in set(range(len(keys))) - set(todo):
        counters["reused_prompt_tokens"] += found[keys[i]].prompt_tokens
        counters["reused_output_tokens"] += found[keys[i]].output_tokens
    counters["requests_generated"] += len(todo)
    counters["requests_cached"] += len(keys) - len(todo)
    return [found[k] for k in keys]


def generate_validated(
    backend: Backend,
    cache: RequestCache,
    items: Sequence[BaseModel],
    *,
    stage: str,
    request: Callable[[BaseModel, int], ChatRequest],
    parse: Callable[[BaseModel, ChatResult, ChatRequest, int], BaseModel],
    max_attempts: int,
    counters: Counter,
) -> Iterator[BaseModel | Reject]:
    """Yield, in input order, `parse(item, result, request, attempt)` or a `Reject` after `max_attempts` tries.

    `parse` raises `Rejected(reason, detail)` for an unusable output. Each round of retries goes to the
    backend as one batch, so a chunk costs `max_attempts` batch calls at most.
    """
    done: dict[int, BaseModel | Reject] = {}
    pending = list(range(len(items)))
    for attempt in range(max_attempts):
        if not pending:
            break
        requests = [request(items[i], attempt) for i in pending]
        results = complete(backend, cache, requests, counters)
        retry = []
        for i, req, result in zip(pending, requests, results, strict=False):
            try:
                if result.finish_reason == "error":
                    raise Rejected("backend_error", result.error)
                if result.finish_reason == "too_long":
                    raise Rejected("too_long", result.error)
                done[i] = parse(items[i], result, req, attempt)
            except Rejected as e:
                counters[f"attempt_failed_{e.reason}"] += 1
                done[i] = Reject(
                    id=items[i].id,
                    stage=stage,
                    reason=e.reason,
                    detail=e.detail,
                    record=items[i].model_dump_json(),
                    output=result.text,
                    attempts=attempt + 1,
                )
                if e.reason != "too_long":  # another seed cannot shorten the prompt
                    retry.append(i)
        pending = retry
    for i in range(len(items)):
        yield done[i]


def json_object(result: ChatResult) -> dict:
    """The JSON object a schema-constrained output holds.

    Else `Rejected`: truncated, invalid_json or schema_violation."""
    if result.finish_reason == "length":
        raise Rejected("truncated", "the output hit max_tokens")
    try:
        # strict=False: grammars let raw control characters into strings; that is text, not syntax.
        data = json.loads(result.text, strict=False)
    except json.JSONDecodeError as e:
        raise Rejected("invalid_json", f"{e.msg} at column {e.colno}") from None
    if not isinstance(data, dict):
        raise Rejected("schema_violation", "not a JSON object")
    return data
