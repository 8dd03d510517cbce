"""Benchmarks 5 and 6 of `make bench`: training tokens/s packed vs padded, and seconds per step of the Gemma LoRA demo.

.venv/bin/python scripts/bench.py only=packing,train_step
"""

import math
import shutil
from pathlib import Path

from scripts.bench_job import OUT


def bench_packing(model: str, rows: int = 160) -> dict:
    from scripts.sample_dataset import build
    from synth.models import resolve_model
    from train.recipe import load_train_recipe
    from train.sft import run

    data = build(OUT / "train-data" / "dataset", rows)
    result, batch, max_length = {}, 8, 1024
    for packing in (False, True):
        out = OUT / f"packing-{packing}".lower()
        shutil.rmtree(out, ignore_errors=True)
        if packing:
            # As many tokens per step as the padded run had: TRL's bfd packing is padding-free, so a step's packed
            # rows become one row of batch × max_length tokens whose block-diagonal attention mask grows with its
            # square under SDPA (linear only with flash attention's varlen kernels, on a GPU).
            batch = max(1, round(result["padded"]["tokens"] / result["padded"]["steps"] / max_length))
        info = run(
            load_train_recipe(
                None,
                [
                    f"model.base={resolve_model(model)}",
                    f"data={data}",
                    f"out={out}",
                    "train.epochs=1",
                    f"train.batch_size={batch}",
                    f"train.max_length={max_length}",
                    f"train.packing={packing}",
                    "train.logging_steps=1000",
                    "merge=false",
                ],
            )
        )
        result["packed" if packing else "padded"] = {
            "steps": info["steps"],
            "batch_size": batch,
            "tokens": info["tokens_seen"],
            "seconds": info["train_seconds"],
            "tok_s": info["tokens_seen"] / info["train_seconds"],
        }
    result["ratio"] = result["packed"]["tok_s"] / result["padded"]["tok_s"]
    return result


def bench_train_step(steps: int = 4) -> dict:
    from scripts.sample_dataset import build
    from train.recipe import load_train_recipe
    from train.sft import run

    demo = Path("runs/demo/dataset")
    data = demo if (demo / "dataset_info.json").is_file() else build(OUT / "train-data" / "dataset")
    out = OUT / "train-step"
    shutil.rmtree(out, ignore_errors=True)
    recipe = load_train_recipe(
        Path("train/recipes/demo-lora.yaml"), [f"data={data}", f"out={out}", f"train.max_steps={steps}", "merge=false"]
    )
    info = run(recipe)
    # What a whole demo run costs at this speed: its steps are epochs × batches of its training rows.
    demo_steps = math.ceil(info["train_rows"] / recipe.train.batch_size) * math.ceil(recipe.train.epochs)
    s_per_step = info["train_seconds"] / info["steps"]
    return {
        "data": str(data),
        "steps": info["steps"],
        "seconds": info["train_seconds"],
        "s_per_step": s_per_step,
        "tokens": info["tokens_seen"],
        "tok_s": info["tokens_seen"] / info["train_seconds"],
        "demo_steps": demo_steps,
        "demo_minutes": demo_steps * s_per_step / 60,
    }
