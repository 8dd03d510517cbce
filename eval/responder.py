"""The model under test answering: one request per (item, seed) through any backend, under the system prompt the
model was trained with (the character's rendered profile); and its latency, timed one request at a time.

A reply's request goes through the request cache keyed by the model's identity (a local folder's content hash),
so a crashed evaluation resumes where it stopped and a retrained model is never served stale replies.
"""

import hashlib
import statistics
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from eval.judge_free import out_of_character
from eval.recipe import ResponderConfig
from eval.records import Item, Reply
from personas.records import stable_id
from synth.backend import ChatRequest
from synth.llm import complete
from synth.models import resolve_model
from synth.runner import Reject, Stage

HASHED = ("config.json", "*.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def model_identity(model: str, kind: str, base_url: str = "") -> str:
    """What a label stands for: for a local folder its path and a hash of its weights, config and chat template
    (a folder retrained in place is another model); an HF id or a served name as given."""
    if kind == "openai":
        return f"{model} @ {base_url}"
    path = Path(resolve_model(model))
    if not path.is_dir():
        return str(path)
    digest = hashlib.sha256()
    for pattern in HASHED:
        for file in sorted(path.glob(pattern)):
            digest.update(file.name.encode())
            with open(file, "rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
    return f"{path} sha256:{digest.hexdigest()[:12]}"


def reply_request(item: Item, seed: int, cfg: ResponderConfig, max_tokens: int | None = None) -> ChatRequest:
    return ChatRequest(
        messages=[{"role": "system", "content": item.system}, {"role": "user", "content": item.question}],
        seed=seed,
        max_tokens=max_tokens or cfg.max_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        repetition_penalty=cfg.repetition_penalty,
    )


def replies_stage(
    label: str, model_id: str, backend, cache, cfg: ResponderConfig, names: dict[str, dict[str, str]], chunk_size: int
) -> Stage:
    """Items → one `Reply` per seed (seeds 0..N-1, the same for every model); a transport error is a reject.
    `names`: per benchmark, the name index of its characters (the wrong-character check)."""

    def process(chunk: list[Item], counters: Counter):
        asks = [(item, seed) for item in chunk for seed in range(cfg.seeds)]
        began = time.perf_counter()
        results = complete(backend(), cache, [reply_request(i, s, cfg) for i, s in asks], counters)
        if counters["requests_generated"]:
            # Batch throughput of what was generated now (cached replies cost no time): output tok/s in the report.
            counters["generate_ms"] += round((time.perf_counter() - began) * 1000)
        for (item, seed), r in zip(asks, results, strict=False):
            rid = stable_id("r", label, item.id, str(seed))
            if r.finish_reason == "error":
                yield Reject(
                    id=rid, stage="replies", reason="backend_error", detail=r.error, record=item.model_dump_json()
                )
                continue
            verdict = out_of_character(
                r.text,
                name=item.character,
                system=item.system,
                user=item.question,
                language=item.language,
                finish_reason=r.finish_reason,
                other_names=names[item.benchmark],
            )
            yield Reply(
                **{**item.model_dump(), "id": rid},
                item_id=item.id,
                model=label,
                model_id=model_id,
                seed=seed,
                text=r.text,
                finish_reason=r.finish_reason,
                prompt_tokens=r.prompt_tokens,
                output_tokens=r.output_tokens,
                out_of_character=verdict,
            )

    settings = {"model": label, "model_id": model_id, "responder": asdict(cfg)}
    return Stage("replies", Reply, process, chunk_size, settings, rebuild=True)


def measure_latency(backend, items: list[Item], cfg: ResponderConfig, count: int) -> dict:
    """First-token and whole-reply latency of requests sent one at a time (the first `count` items, seed 0), and
    output tokens per second of a lone request: what a chat user waits, not batch throughput. Never cached."""
    first, total, tokens = [], [], 0
    for item in items[:count]:
        began = time.perf_counter()
        backend.generate([reply_request(item, 0, cfg, max_tokens=1)])
        first.append(time.perf_counter() - began)
        began = time.perf_counter()
        (result,) = backend.generate([reply_request(item, 0, cfg)])
        total.append(time.perf_counter() - began)
        tokens += result.output_tokens
    if not total:
        return {}
    return {
        "requests": len(total),
        "first_token_s": statistics.median(first),
        "total_s": statistics.median(total),
        "output_tok_s": tokens / sum(total),
    }
