"""Benchmark 7 of `make bench`: the engine job through `replicas` Ray actors vs one engine in this process.

.venv/bin/python scripts/bench.py only=ray [replicas=2]
"""

import os
import shutil
import time

from scripts.bench_job import OUT, Prompt, engine_stage, request
from synth.cache import RequestCache
from synth.runner import run_stage
from synth.shards import read_shard


def bench_ray(model: str, n: int, max_tokens: int, replicas: int) -> dict:
    """The engine bench's job (same requests, same runner, cache and shards), once through one vLLM engine in
    this process and once through `replicas` Ray actors; model start timed apart from generation."""
    from synth.models import resolve_model
    from synth.ray_backend import RayBackend
    from synth.vllm_backend import VLLMBackend

    prompts = [Prompt(id=str(i), text=f"Write a short story about character number {i}.") for i in range(n)]
    results, texts = {}, {}
    for executor in ("local", "ray"):  # one after the other: on a small machine both would fight for the cores
        began = time.perf_counter()
        if executor == "local":
            backend = VLLMBackend(resolve_model(model), name=model, kv_cache_gb=1.0)
        else:
            backend = RayBackend(
                resolve_model(model),
                name=model,
                replicas=replicas,
                num_cpus=os.cpu_count(),
                temp_dir=str(OUT.resolve() / "ray-tmp"),
                kv_cache_gb=1.0,
            )
        start = time.perf_counter() - began
        backend.generate([request(prompts[0], 8)])  # warm-up, as in the engine bench
        folder = OUT / f"executor-{executor}"
        shutil.rmtree(folder, ignore_errors=True)
        cache = RequestCache(folder / "cache.sqlite")
        began = time.perf_counter()
        manifest = run_stage(engine_stage(backend, cache, max_tokens, chunk_size=n), prompts, folder / "stage", {})
        seconds = time.perf_counter() - began
        cache.close()
        backend.close()
        texts[executor] = [r["text"] for r in read_shard(folder / "stage" / "data-00000.arrow").to_pylist()]
        tokens = manifest["counters"]["output_tokens"]
        results[executor] = {"start_s": start, "seconds": seconds, "output_tokens": tokens, "tok_s": tokens / seconds}
    return {
        **results,
        "replicas": replicas,
        "requests": n,
        "max_tokens": max_tokens,
        "model": model,
        "same_texts": texts["local"] == texts["ray"],
        "ratio": results["ray"]["tok_s"] / results["local"]["tok_s"],
    }
