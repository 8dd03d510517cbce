"""A finished training run as a Hub model repo: the weights vLLM and transformers load, a model card, the curve.

    .venv/bin/dramatis train RECIPE --push user/name [--private]

Layout of `OUT/hub/` (exactly what is uploaded, rebuilt byte for byte from the same run):
    config.json, model*.safetensors, tokenizer*, chat_template.jinja   merged/ (LoRA) or model/ (full) at the root,
                                                                      so `vllm serve user/name` loads it
    adapter/                       the LoRA adapter alone (adapter_config.json, adapter_model.safetensors, tokenizer)
                                   when the run is LoRA: small, for PEFT users; it is the root when merge=false
    README.md                      the card: base model, data, recipe, losses and the curve's reading
    loss.png, metrics.md, recipe.json

The token and the upload are synth/hub.py's, as for datasets: the token comes from the environment only and is
checked before training starts, so a missing token never costs a training run.
"""

import json
import shutil
from pathlib import Path

from personas.errors import DramatisError
from synth.shards import staged_folder, write_atomic

# Recipe names of models whose Hub id we know, for the card's `base_model` (a local folder has none).
HUB_IDS = {"gemma3-270m": "google/gemma-3-270m"}
LICENSES = {"gemma3-270m": "gemma"}
SKIPPED = {"training_args.bin", "README.md"}  # a pickle of local paths, and PEFT's empty stub card
# The card's example system message: a rendered profile, shortened (the \\n are Python escapes in the card's code).
EXAMPLE_SYSTEM = (
    "You are Mara Quinn. Stay in character: speak as Mara Quinn would, never as an AI assistant."
    "\\n\\nName: Mara Quinn\\nAge: 34\\n..."
)


def _copy(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for f in sorted(source.iterdir()):
        if f.is_file() and f.name not in SKIPPED:
            shutil.copyfile(f, target / f.name)


def _loss(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "–"


def render_card(info: dict, dataset_info: dict, repo: str, root: str) -> str:
    from huggingface_hub import ModelCardData

    recipe = info["recipe"]
    base = recipe["model"]["base"]
    t = recipe["train"]
    lora = t["method"] == "lora"
    languages = sorted({lang for s in dataset_info.get("splits", {}).values() for lang in s.get("languages", {})})
    data = ModelCardData(
        base_model=HUB_IDS.get(base) or (base if "/" in base and not Path(base).exists() else None),
        license=LICENSES.get(base, "other"),
        language=languages or None,
        pipeline_tag="text-generation",
        library_name="transformers" if root != "adapter" else "peft",
        tags=["dramatis", "role-play", "character", "trl", "sft"] + (["lora"] if lora else []),
    )
    splits = dataset_info.get("splits", {})
    rows = " · ".join(f"{name} {s['rows']} rows / {s.get('characters', '?')} characters" for name, s in splits.items())
    method = (
        f"LoRA r={recipe['lora']['r']}, alpha={recipe['lora']['alpha']}, dropout={recipe['lora']['dropout']}, "
        f"target {recipe['lora']['target_modules']}"
        if lora
        else "full fine-tuning"
    )
    weights = {
        "merged": "the LoRA adapter merged into the base weights (a plain transformers folder)",
        "model": "the fully fine-tuned weights",
        "adapter": "the LoRA adapter (load it on the base model with PEFT)",
    }[root]
    eval_from = _loss(info.get("base_eval_loss") or info.get("first_eval_loss"))
    body = f"""
# {repo.split("/")[-1]}

A role-play model: {base} fine-tuned with TRL's SFTTrainer on character dialogues made by
Dramatis (synthetic characters from persona seeds, answers rewritten or generated in character).
The root of this repo holds {weights}{"; `adapter/` holds the adapter alone" if lora and root != "adapter" else ""}.

## Use it

Put the character's profile in the system message — the same text the training rows carry — and talk to it:

```python
from vllm import LLM, SamplingParams

llm = LLM("{repo}")
messages = [{{"role": "system", "content": "{EXAMPLE_SYSTEM}"}},
            {{"role": "user", "content": "What brought you to this town?"}}]
print(llm.chat(messages, SamplingParams(max_tokens=256))[0].outputs[0].text)
```

The chat template saved here is the one training rendered (`chat_template.jinja`); use it unchanged at inference.

## Training

| | |
| --- | --- |
| base model | {base} |
| method | {method} |
| loss | {t["loss"]} (system and user turns are never trained) |
| epochs · steps | {t["epochs"]} · {info["steps"]} |
| learning rate | {t["learning_rate"]} ({t["scheduler"]}, warm-up {t["warmup_ratio"]}) |
| batch | {t["batch_size"]} × accumulation {t["grad_accum"]}, max length {t["max_length"]}, packing {t["packing"]} |
| precision | {info["dtype"]}{" weights, bf16 autocast" if info.get("autocast") else ""} |
| data | {rows} |
| supervised tokens | {info["supervised_tokens"]} |
| time | {info["seconds"]} s |

Training loss {_loss(info.get("first_train_loss"))} → {_loss(info.get("final_train_loss"))}; validation loss
(characters never trained on) {eval_from} → {_loss(info.get("final_eval_loss"))}
(lowest {_loss(info.get("min_eval_loss"))}).

Reading of the curve: {info.get("reading", "–")}

![loss curve](loss.png)

Per-step metrics: [metrics.md](metrics.md); the resolved recipe: [recipe.json](recipe.json).
"""
    return f"---\n{data.to_yaml()}\n---\n{body}"


def weights_root(out: Path) -> str:
    root = (
        "merged"
        if (out / "merged" / "config.json").is_file()
        else "adapter"
        if (out / "adapter").is_dir()
        else "model"
    )
    if not (out / root).is_dir():
        raise DramatisError(f"{out}: no trained weights (merged/, adapter/ or model/)")
    return root


def card_text(out: Path, info: dict, repo: str) -> str:
    """The card of a finished run: also OUT/README.md, in place of the stub TRL writes there."""
    data = Path(info["recipe"]["data"]) / "dataset_info.json"
    return render_card(info, json.loads(data.read_text()) if data.is_file() else {}, repo, weights_root(out))


def build_folder(out: Path, repo: str) -> Path:
    """OUT/hub from a finished run (train_info.json present); returns the folder."""
    info_path = out / "train_info.json"
    if not info_path.is_file():
        raise DramatisError(f"{out}: no finished training run there (no train_info.json)")
    info = json.loads(info_path.read_text())
    root = weights_root(out)
    folder = out / "hub"
    with staged_folder(folder) as staging:
        _copy(out / root, staging)
        if root == "merged":
            _copy(out / "adapter", staging / "adapter")
        for name in ("loss.png", "metrics.md", "recipe.json"):
            if (out / name).is_file():
                shutil.copyfile(out / name, staging / name)
        write_atomic(staging / "README.md", card_text(out, info, repo).encode("utf-8"))
    return folder


def push(out: Path, repo: str, token: str, *, private: bool = False) -> Path:
    from synth.hub import upload

    folder = build_folder(out, repo)
    upload(folder, repo, token, repo_type="model", private=private, delete_patterns=["*.safetensors", "adapter/*"])
    return folder
