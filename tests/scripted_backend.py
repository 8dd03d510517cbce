"""A scripted stand-in for a backend, for unit tests that must run in milliseconds without a model.

Each `Rule` says which requests it answers (a predicate over the `ChatRequest`) and what to answer: a text,
a finish reason, an error, token counts, a delay, or an exception to raise. The first matching rule answers;
a request no rule matches fails the test at once, naming the request, so a test never passes on a result
it did not script. Every batch sent is recorded, so tests can assert on what was asked (seeds, batch sizes).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

from synth.backend import ChatRequest, ChatResult

Predicate = Callable[[ChatRequest], bool]


def anything(request: ChatRequest) -> bool:
    return True


def last_says(text: str) -> Predicate:
    """The request's last message contains `text` (the part that differs between requests of one stage)."""
    return lambda request: text in request.messages[-1]["content"]


def seed_in(*seeds: int) -> Predicate:
    """The request has one of `seeds`: stages derive the seed from the attempt, so this picks an attempt."""
    return lambda request: request.seed in seeds


def with_schema(request: ChatRequest) -> bool:
    return request.json_schema is not None


def both(*predicates: Predicate) -> Predicate:
    return lambda request: all(p(request) for p in predicates)


@dataclass
class Rule:
    when: Predicate
    text: str | Callable[[ChatRequest], str] = ""
    finish_reason: str = "stop"
    error: str = ""
    prompt_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    retries: int = 0
    delay_s: float = 0.0
    raises: Exception | None = None
    times: int | None = None  # answer this many requests, then let later rules answer; None: no limit
    used: int = 0

    def answers(self, request: ChatRequest) -> bool:
        return (self.times is None or self.used < self.times) and self.when(request)

    def result(self, request: ChatRequest) -> ChatResult:
        self.used += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.raises is not None:
            raise self.raises
        return ChatResult(
            text=self.text(request) if callable(self.text) else self.text,
            finish_reason=self.finish_reason,
            prompt_tokens=self.prompt_tokens,
            output_tokens=self.output_tokens,
            cached_tokens=self.cached_tokens,
            error=self.error,
            retries=self.retries,
        )


class ScriptedBackend:
    def __init__(self, rules: list[Rule], model: str = "scripted"):
        self.rules, self.model = list(rules), model
        self.calls: list[list[ChatRequest]] = []  # one list per generate() call: the batches as sent
        self.closed = False

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        self.calls.append(list(requests))
        return [self._rule(r).result(r) for r in requests]

    def _rule(self, request: ChatRequest) -> Rule:
        for rule in self.rules:
            if rule.answers(request):
                return rule
        last = request.messages[-1]["content"] if request.messages else ""
        raise AssertionError(f"no rule answers the request with seed {request.seed}; its last message: {last!r}")

    @property
    def requests(self) -> list[ChatRequest]:
        return [r for batch in self.calls for r in batch]

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.requests]

    @property
    def batch_sizes(self) -> list[int]:
        return [len(batch) for batch in self.calls]

    def close(self) -> None:
        self.closed = True
