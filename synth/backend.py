"""The interface every backend shares: a batch of chat requests in, one result per request out.

A backend never raises for a single bad request: it returns a result with finish_reason "error" and
the reason in `error`, so the stage can reject that row and keep the rest (GUIDE §3).
"""

import hashlib
import json
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict]
    seed: int
    max_tokens: int = 512
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 0  # 0 = off
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    json_schema: dict | None = None

    def key(self, model: str) -> str:
        """Request-cache key: model, rendered messages, sampling parameters incl. seed, output schema."""
        # vars(), not asdict(): asdict deep-copies the messages, three quarters of a warm run's time; the
        # JSON (so every existing cache key) is the same, since json.dumps reads a tuple as a list.
        payload = json.dumps([model, vars(self)], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class ChatResult:
    text: str
    finish_reason: str  # "stop" | "length" | "error"
    prompt_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens served from the prefix cache, when the backend says
    error: str = ""
    retries: int = 0
    extra: dict = field(default_factory=dict)


class Backend(Protocol):
    model: str

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]: ...

    def close(self) -> None: ...
