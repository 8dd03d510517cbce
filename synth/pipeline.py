"""The stages of `make synth`, wired: seeds → profiles (dialogues come next).

Each stage is a generator over records handed to the runner; everything is validated before the
first shard is written, so bad input leaves nothing behind.
"""

import functools
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from personas.errors import DramatisError
from personas.profiles import character, parse_profile, profile_messages, profile_schema
from personas.records import Character, Persona
from personas.seeds import load_seeds
from synth.backend import ChatRequest
from synth.cache import RequestCache
from synth.llm import derive_seed, generate_validated
from synth.models import resolve_model
from synth.recipe import BackendConfig, Recipe, as_dict
from synth.runner import Reject, Stage, load_records, run_stage


def open_backend(config: BackendConfig):
    if config.kind == "openai":
        from synth.openai_backend import OpenAIBackend

        return OpenAIBackend(config.model, config.base_url, api_key_env=config.api_key_env, concurrency=config.concurrency,
                             timeout_s=config.timeout_s, max_retries=config.max_retries, backoff_s=config.backoff_s)
    if config.kind == "vllm":
        from synth.vllm_backend import VLLMBackend

        return VLLMBackend(resolve_model(config.model), name=config.model, max_model_len=config.max_model_len,
                           batch_size=config.batch_size, kv_cache_gb=config.kv_cache_gb,
                           gpu_memory_utilization=config.gpu_memory_utilization,
                           tensor_parallel_size=config.tensor_parallel_size)
    raise DramatisError(f"backend.kind={config.kind}: use 'vllm' or 'openai'")


def check_writable(out: Path) -> None:
    probe = out / ".write-probe"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise DramatisError(f"out={out}: cannot write there ({e.strerror})") from None


def seeds_stage(recipe: Recipe, personas: list[Persona]) -> Stage:
    """Exact dedup (first occurrence wins), empty rows out, then a deterministic sample."""
    first: dict[str, Persona] = {}
    for p in personas:
        first.setdefault(p.id, p)
    # Empty rows are rejected below, so they must not take a sample slot.
    unique = sorted((pid for pid, p in first.items() if p.text), key=lambda pid: derive_seed(recipe.seed, pid))
    chosen = set(unique[:recipe.seeds.sample] if recipe.seeds.sample else unique)

    def process(chunk: list[Persona], counters: Counter):
        for p in chunk:
            original = first[p.id]
            if not p.text:
                yield Reject(id=p.id, stage="seeds", reason="empty", detail=f"{p.source}:{p.source_line}", record=p.model_dump_json())
            elif original is not p:
                yield Reject(id=p.id, stage="seeds", reason="duplicate", duplicate_of=p.id, record=p.model_dump_json(),
                             detail=f"{p.source}:{p.source_line} repeats line {original.source_line}")
            elif p.id not in chosen:
                counters["not_sampled"] += 1
            else:
                yield p

    return Stage("seeds", Persona, process, recipe.chunk_size, {"seeds": asdict(recipe.seeds), "seed": recipe.seed})


def profiles_stage(recipe: Recipe, backend, cache: RequestCache) -> Stage:
    """Persona → Character by JSON-schema constrained decoding, validated, retried, or rejected with a reason."""
    cfg, schema = recipe.profiles, profile_schema()

    def language(p: Persona) -> str:
        return p.language if cfg.language == "auto" else cfg.language

    def request(p: Persona, attempt: int) -> ChatRequest:
        return ChatRequest(messages=profile_messages(p, language(p)), seed=derive_seed(recipe.seed, p.id, attempt),
                           max_tokens=cfg.max_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                           repetition_penalty=cfg.repetition_penalty, json_schema=schema)

    def parse(p: Persona, result, req: ChatRequest, attempt: int) -> Character:
        fields = parse_profile(result.text, result.finish_reason, language(p))
        return character(p, fields, language(p), recipe.backend.model, req.seed, attempt + 1)

    def process(chunk: list[Persona], counters: Counter):
        yield from generate_validated(backend(), cache, chunk, stage="profiles", request=request, parse=parse,
                                      max_attempts=cfg.max_attempts, counters=counters)

    settings = {"profiles": asdict(cfg), "model": recipe.backend.model, "kind": recipe.backend.kind, "seed": recipe.seed}
    return Stage("profiles", Character, process, recipe.chunk_size, settings)


def run_synth(recipe: Recipe, stages: tuple[str, ...] = ("seeds", "profiles")) -> dict[str, dict]:
    """Run the named stages in order; returns each stage's manifest."""
    personas = load_seeds(recipe.seeds.source, recipe.seeds.field, recipe.seeds.split)
    out = Path(recipe.out)
    if recipe.backend.kind not in ("vllm", "openai"):  # else the seeds stage is written before open_backend says so
        raise DramatisError(f"backend.kind={recipe.backend.kind}: use 'vllm' or 'openai'")
    if recipe.backend.kind == "vllm":
        resolve_model(recipe.backend.model)  # a bad model path fails here, before anything is written
    # The engine starts only if a chunk needs it: a finished run relaunched costs no model start.
    backend = functools.cache(lambda: open_backend(recipe.backend))
    if recipe.backend.kind == "openai":
        backend()  # fail now if the server is unreachable
    check_writable(out)
    manifests = {"seeds": run_stage(seeds_stage(recipe, personas), personas, out / "seeds", as_dict(recipe))}
    if "profiles" in stages:
        cache = RequestCache(out / "cache.sqlite")
        try:
            kept = load_records(out / "seeds", Persona)
            manifests["profiles"] = run_stage(profiles_stage(recipe, backend, cache), kept, out / "profiles", as_dict(recipe))
        finally:
            cache.close()
            if backend.cache_info().currsize:
                backend().close()
    return manifests
