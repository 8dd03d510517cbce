"""Supervised fine-tuning on a Dramatis dataset folder with TRL's SFTTrainer, LoRA (PEFT) or full.

    .venv/bin/dramatis train train/recipes/demo-lora.yaml [key=value ...] [--resume]
    make train

Output folder (`out`): checkpoint-N/ (resumable), adapter/ or model/ (the trained weights with the
tokenizer and the chat template used), merged/ (LoRA merged into a plain HF folder vLLM loads),
metrics.jsonl and metrics.md (loss, grad norm, learning rate, tokens per logged step), loss.png with
its one-line reading, and train_info.json (resolved recipe, template, counts, final losses).
"""

import json
import time
from pathlib import Path

from personas.errors import DramatisError
from synth.config import check_recipe
from synth.shards import write_atomic
from train.masks import IGNORE, supervise, training_template
from train.recipe import TrainRecipe, as_dict


def load_splits(folder: Path) -> dict:
    """The dataset folder's train / validation splits (a run's `dataset/` or a publish folder)."""
    import datasets

    if not (folder / "dataset_info.json").is_file() and not (folder / "README.md").is_file():
        raise DramatisError(
            f"data={folder}: not a Dramatis dataset folder (no dataset_info.json); run `make synth` first"
        )
    from datasets.data_files import EmptyDatasetError

    try:
        loaded = datasets.load_dataset(str(folder))
    except EmptyDatasetError:  # a run whose curation kept nothing writes a dataset folder without data files
        raise DramatisError(
            f"data={folder}: no training rows (the dataset holds no data files); see the run's report for what "
            "curation dropped"
        ) from None
    if "train" not in loaded or not len(loaded["train"]):
        raise DramatisError(f"data={folder}: no training rows")
    if "messages" not in loaded["train"].column_names:
        raise DramatisError(f"data={folder}: rows have no `messages` column")
    return loaded


def tokenize(split, tokenizer, template: str, policy: str, max_length: int, name: str):
    """input_ids + labels per row; refuses (naming the rows) any example left with no supervised token, which
    TRL would drop silently or, packed, train on as nothing."""
    rows = split.map(
        lambda row: supervise(row["messages"], tokenizer, template, policy, max_length),
        remove_columns=split.column_names,
        desc=f"tokenizing {name}",
    )
    empty = [i for i, labels in enumerate(rows["labels"]) if all(t == IGNORE for t in labels)]
    if empty:
        ids = [split[i]["id"] for i in empty[:5]] if "id" in split.column_names else empty[:5]
        raise DramatisError(
            f"{name}: {len(empty)} example(s) have no supervised token under train.loss={policy} "
            f"and max_length={max_length}, e.g. {', '.join(map(str, ids))}; refusing to train on nothing"
        )
    return rows


def precision(setting: str) -> tuple:
    """The dtype the weights are loaded and trained in, and whether the forward and backward passes run under bf16
    autocast."""
    import torch

    if setting == "auto":
        # On a GPU with bf16: fp32 weights under bf16 autocast (mixed precision). Weights held in bf16 lose every
        # update smaller than their rounding step (1/128 at 1.0): on an H100 a full fine-tune at lr 1e-3 left every
        # norm weight as it was. It was also faster there: Gemma 3 270M LoRA, 6,386 vs 3,221 tokens/s.
        # On CPU fp32 alone: the CPUs we run on (AVX2 only) have no fast bf16, and bf16 there was slower, not faster.
        return torch.float32, torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return getattr(torch, setting), setting == "bfloat16"  # float32 or bfloat16: the knob's choices


def check(recipe: TrainRecipe) -> None:
    """What `load_train_recipe` checked (each knob's choices and bounds, each section's check()), again: `run`
    is also called with recipes built or changed in code."""
    check_recipe(recipe)


def sft_config(recipe: TrainRecipe, out: Path, has_eval: bool, dtype, autocast: bool):
    import torch
    from trl import SFTConfig

    t = recipe.train
    return SFTConfig(
        output_dir=str(out),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup_ratio,  # a float < 1 is a share of the steps
        weight_decay=t.weight_decay,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        max_length=t.max_length,
        packing=t.packing,
        packing_strategy="bfd",
        gradient_checkpointing=t.gradient_checkpointing,
        # TRL defaults to bf16=True, which refuses to start on a machine without a GPU.
        use_cpu=not torch.cuda.is_available(),
        bf16=autocast,
        fp16=False,
        model_init_kwargs={
            "dtype": dtype,
            **(
                {}
                if recipe.model.attn_implementation == "auto"
                else {"attn_implementation": recipe.model.attn_implementation}
            ),
        },
        seed=t.seed,
        data_seed=t.seed,
        dataloader_num_workers=0,
        logging_steps=t.logging_steps,
        include_num_input_tokens_seen="non_padding",
        # Evaluation lands on the save steps when only save_steps is set: evaluating between a checkpoint and the
        # next step would move the RNG the checkpoint captured, and a resumed run would draw other dropout masks.
        eval_strategy=("steps" if t.eval_steps or t.save_steps else "epoch") if has_eval else "no",
        eval_steps=t.eval_steps or t.save_steps or None,
        save_strategy="steps" if t.save_steps else "epoch",
        save_steps=t.save_steps or 500,
        save_total_limit=t.save_total_limit,
        save_only_model=False,  # optimizer, scheduler and RNG states: a resumed run continues exactly
        report_to="none",
        disable_tqdm=True,
        prediction_loss_only=True,
    )


def trainer_class():
    import torch
    import torch.nn.functional as F
    from trl import SFTTrainer

    class CharacterTurnTrainer(SFTTrainer):
        """SFTTrainer whose loss runs the LM head only where a label is supervised. Gemma's head has 262k rows
        (62% of its weights): measured here, one LoRA step on 4×550 tokens took 47 s with every position's
        logits and 17 s with the supervised ones only (TRL's fused head computes them all too)."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            causal = self.accelerator.unwrap_model(model)
            causal = (
                causal.get_base_model() if hasattr(causal, "get_base_model") else causal
            )  # LoRA layers sit inside it
            labels = inputs["labels"]
            hidden = causal.get_decoder()(
                **{k: v for k, v in inputs.items() if k != "labels"}, use_cache=False
            ).last_hidden_state
            targets = labels[:, 1:]
            chosen = targets != IGNORE
            logits = causal.get_output_embeddings()(hidden[:, :-1][chosen]).float()
            cap = getattr(causal.config, "final_logit_softcapping", None)
            if cap:
                logits = torch.tanh(logits / cap) * cap
            count = num_items_in_batch if num_items_in_batch is not None else chosen.sum()
            loss = F.cross_entropy(logits, targets[chosen], reduction="sum") / torch.as_tensor(count).clamp(min=1)
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["mean_token_accuracy"].append(
                (logits.argmax(-1) == targets[chosen]).float().mean().item() if chosen.any() else 0.0
            )
            return (loss, None) if return_outputs else loss

    return CharacterTurnTrainer


def run(recipe: TrainRecipe, resume: bool = False) -> dict:
    """Train as the recipe says; returns train_info (also written to out/train_info.json)."""
    import torch
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from transformers.trainer_callback import PrinterCallback

    from synth.models import resolve_model
    from train.curves import Metrics, Progress, with_base, write_curves

    check(recipe)
    out = Path(recipe.out)
    if resume and not any(out.glob("checkpoint-*")):
        raise DramatisError(f"--resume: no checkpoint in {out} to continue from")
    if not resume and any(out.glob("checkpoint-*")):
        raise DramatisError(
            f"{out}: holds checkpoints of an earlier run; use --resume to continue it, or another out="
        )
    splits = load_splits(Path(recipe.data))
    model_path = resolve_model(recipe.model.base)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    template_name, template = training_template(tokenizer, recipe.model.chat_template)
    tokenizer.chat_template = template  # saved with every checkpoint and the output: inference renders the same text
    t = recipe.train
    train_rows = tokenize(splits["train"], tokenizer, template, t.loss, t.max_length, "train")
    eval_rows = (
        tokenize(splits["validation"], tokenizer, template, t.loss, t.max_length, "validation")
        if "validation" in splits and len(splits["validation"])
        else None
    )
    dtype, autocast = precision(recipe.model.dtype)
    peft = (
        LoraConfig(
            r=recipe.lora.r,
            lora_alpha=recipe.lora.alpha,
            lora_dropout=recipe.lora.dropout,
            task_type="CAUSAL_LM",
            target_modules=recipe.lora.target_modules
            if recipe.lora.target_modules == "all-linear"
            else [m.strip() for m in recipe.lora.target_modules.split(",")],
        )
        if t.method == "lora"
        else None
    )
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "recipe.json", json.dumps(as_dict(recipe), indent=2).encode())
    trainer = trainer_class()(
        model=model_path,
        args=sft_config(recipe, out, eval_rows is not None, dtype, autocast),
        train_dataset=train_rows,
        eval_dataset=eval_rows,
        processing_class=tokenizer,
        peft_config=peft,
        callbacks=[Metrics(out), Progress()],
    )
    trainer.remove_callback(
        PrinterCallback
    )  # our progress bar shows the numbers; the printer would repeat them as dicts
    began = time.perf_counter()
    base = out / "base_eval.json"
    if eval_rows is not None and not resume:
        # The curve starts at the untrained model; kept in a file, since trainer.train() starts a new log
        # history and a resumed run does not evaluate again.
        write_atomic(base, json.dumps({"step": 0, "eval_loss": trainer.evaluate()["eval_loss"]}).encode())
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    seconds = time.perf_counter() - began
    weights = out / ("adapter" if peft else "model")
    trainer.save_model(str(weights))
    tokenizer.save_pretrained(str(weights))
    history = with_base(trainer.state.log_history, out)
    curves = write_curves(history, out)
    info = {
        "recipe": as_dict(recipe),
        "model": model_path,
        "template": template_name,
        "dtype": str(dtype).removeprefix("torch."),
        "autocast": "bfloat16" if autocast else None,
        "train_rows": len(train_rows),
        "validation_rows": len(eval_rows) if eval_rows is not None else 0,
        "supervised_tokens": sum(sum(1 for x in labels if x != IGNORE) for labels in train_rows["labels"]),
        "steps": trainer.state.global_step,
        "seconds": round(seconds, 1),
        "train_seconds": round(result.metrics["train_runtime"], 2),
        "tokens_seen": int(trainer.state.num_input_tokens_seen),
        "base_eval_loss": history[0].get("eval_loss") if history and history[0]["step"] == 0 else None,
        "weights": str(weights),
        **curves,
    }
    if peft and recipe.merge:
        from train.export import merge

        # Saved in the precision it computed in: bf16 after mixed-precision training, half the size for serving.
        info["merged"] = str(merge(model_path, weights, out / "merged", torch.bfloat16 if autocast else dtype))
    write_atomic(out / "train_info.json", json.dumps(info, indent=2, default=str).encode())
    from train.push import card_text

    write_atomic(
        out / "README.md", card_text(out, json.loads(json.dumps(info, default=str)), out.name).encode("utf-8")
    )
    return info
