"""The job the engine benchmarks share: numbered prompts, one chat request each, through the runner."""

from collections import Counter
from pathlib import Path

from pydantic import BaseModel

from synth.backend import ChatRequest, ChatResult
from synth.llm import complete
from synth.runner import Stage

OUT = Path("bench-out")


class Prompt(BaseModel):
    id: str
    text: str


class Reply(BaseModel):
    id: str
    text: str
    output_tokens: int


class FreeBackend:
    """Answers instantly: what is left of the time is the engine's own overhead."""

    model = "free"

    def generate(self, requests):
        return [ChatResult(text="ok", finish_reason="stop", prompt_tokens=1, output_tokens=1) for _ in requests]

    def close(self):
        pass


def request(prompt: Prompt, max_tokens: int) -> ChatRequest:
    return ChatRequest(
        messages=[{"role": "user", "content": prompt.text}],
        seed=int(prompt.id),
        max_tokens=max_tokens,
        temperature=0.8,
    )


def engine_stage(backend, cache, max_tokens: int, chunk_size: int) -> Stage:
    def process(chunk, counters: Counter):
        results = complete(backend, cache, [request(p, max_tokens) for p in chunk], counters)
        for p, r in zip(chunk, results, strict=False):
            yield Reply(id=p.id, text=r.text, output_tokens=r.output_tokens)

    return Stage("bench", Reply, process, chunk_size)
