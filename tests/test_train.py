"""`dramatis train` (train/sft.py) on the tiny model: LoRA and full fine-tuning, refusals, resume, a golden loss
trajectory, packing without cross-document attention, the shipped recipes, and the merged export in vLLM.

The dataset is a real Dramatis dataset folder (synth.dataset.write_dataset) of hand-made rows: Persona Hub seeds as
the characters, real self-instruct tasks as the user turns and their reference answers as the character turns."""

import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch

from personas.errors import DramatisError
from scripts.sample_dataset import PERSONAS, TASKS, character, dialogue
from synth.dataset import write_dataset
from synth.records import Dialogue
from tests.helpers import ROOT, run_cli
from train.masks import IGNORE

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

GOLDEN = ROOT / "tests" / "golden" / "tiny_sft_losses.json"
# Small and quick: 8 training rows, 2 per step, so 4 steps per epoch; a validation split of 2 rows.
BASE = ["train.batch_size=2", "train.max_length=512", "train.logging_steps=1", "merge=false"]


CHARACTERS = [character(i, "validation" if i == 5 else "train") for i in range(6)]


def make_dataset(folder: Path, extra: list[Dialogue] = ()) -> Path:
    """8 two-turn training rows over 5 characters, 2 validation rows of a sixth: always the same rows."""
    rows = [dialogue(f"d-{k:03d}", CHARACTERS[k % 5], TASKS[2 * k : 2 * k + 2]) for k in range(8)]
    rows += [dialogue(f"v-{k:03d}", CHARACTERS[5], TASKS[100 + 2 * k : 102 + 2 * k]) for k in range(2)]
    write_dataset(folder, rows + list(extra), CHARACTERS, [])
    return folder


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("train-data") / "dataset")


def recipe(model: str, data: Path, out: Path, *overrides: str):
    from train.recipe import load_train_recipe

    return load_train_recipe(None, [f"model.base={model}", f"data={data}", f"out={out}", *BASE, *overrides])


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def step_losses(out: Path) -> dict[int, dict]:
    return {e["step"]: e for e in metrics(out) if "loss" in e}


def tokenized_rows(model: str, data: Path, policy: str = "all_turns", max_length: int = 512):
    from transformers import AutoTokenizer

    from train.masks import training_template
    from train.sft import load_splits, tokenize

    tok = AutoTokenizer.from_pretrained(model)
    _, template = training_template(tok, "auto")
    return tok, tokenize(load_splits(data)["train"], tok, template, policy, max_length, "train")


# A LoRA run with the merge, shared by the checks on what it trained and on its merged export.
@pytest.fixture(scope="module")
def lora_run(tiny_model, dataset, tmp_path_factory):
    from train.sft import run

    out = tmp_path_factory.mktemp("lora") / "out"
    info = run(recipe(tiny_model, dataset, out, "train.max_steps=4", "merge=true"))
    return out, info


# ------------------------------------------------------------------------------------------ LoRA, full


@pytest.mark.engine
def test_lora_run_trains_every_adapter_weight_and_writes_its_metrics(tiny_model, dataset, lora_run):
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, set_seed

    out, info = lora_run
    logged = step_losses(out)
    assert sorted(logged) == [1, 2, 3, 4] and info["steps"] == 4
    assert all(math.isfinite(e["loss"]) and math.isfinite(e["grad_norm"]) and e["loss"] > 0 for e in logged.values())
    for name in (
        "metrics.jsonl",
        "metrics.md",
        "loss.png",
        "train_info.json",
        "adapter/adapter_model.safetensors",
        "adapter/chat_template.jinja",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    table = (out / "metrics.md").read_text()
    assert table.startswith("# Training metrics\n\nReading: ") and f"{logged[4]['loss']:.4g}" in table
    assert json.loads((out / "train_info.json").read_text()) == json.loads(json.dumps(info, default=str))
    assert info["final_train_loss"] == logged[4]["loss"] and info["first_train_loss"] == logged[1]["loss"]
    assert info["template"] == "the model's own" and info["dtype"] == "float32"
    assert info["autocast"] == ("bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else None)
    assert info["train_rows"] == 8 and info["validation_rows"] == 2

    # supervised_tokens is the number of labels the training rows carry.
    _, rows = tokenized_rows(tiny_model, dataset)
    assert info["supervised_tokens"] == sum(label != IGNORE for labels in rows["labels"] for label in labels) > 0

    # Every adapter weight moved from its initial value, and only by a few optimizer steps' worth (which also proves
    # the reference below is the trainer's own initialization: seed, then get_peft_model, as SFTTrainer does).
    set_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    initial = get_peft_model_state_dict(
        get_peft_model(
            base,
            LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"),
        )
    )
    trained = load_file(out / "adapter" / "adapter_model.safetensors")
    assert set(trained) == set(initial) and len(trained) == 2 * 2 * 7  # A and B of q,k,v,o,gate,up,down in 2 layers
    for name, weight in trained.items():
        change = (weight - initial[name]).abs()
        assert (change > 0).float().mean() > 0.9, f"{name}: not trained"
        assert change.max() < 10 * 4 * 3e-4, f"{name}: moved more than 4 Adam steps can"


@pytest.mark.engine
def test_base_model_validation_loss_starts_the_curve(lora_run):
    out, info = lora_run
    evals = [e for e in metrics(out) if "eval_loss" in e]
    assert info["base_eval_loss"] is not None and math.isfinite(info["base_eval_loss"])
    assert evals[-1]["step"] == 4  # once per epoch (8 rows, 2 per step)
    # sft.py: the evaluation before training is "logged at step 0: where the curve starts".
    assert evals[0]["step"] == 0 and evals[0]["eval_loss"] == info["base_eval_loss"]
    assert "| 0 |" in (out / "metrics.md").read_text()


@pytest.mark.engine
def test_full_fine_tuning_saves_every_weight(tiny_model, dataset, tmp_path):
    from safetensors.torch import load_file

    from train.sft import run

    out = tmp_path / "full"
    info = run(recipe(tiny_model, dataset, out, "train.method=full", "train.max_steps=2", "train.learning_rate=1e-3"))
    assert info["steps"] == 2 and all(math.isfinite(e["loss"]) for e in step_losses(out).values())
    assert not (out / "adapter").exists() and not (out / "merged").exists()
    saved, before = load_file(out / "model" / "model.safetensors"), load_file(Path(tiny_model) / "model.safetensors")
    assert set(saved) == set(before)
    changed = [name for name in saved if not torch.equal(saved[name], before[name])]
    assert len(changed) == len(saved), f"untrained: {sorted(set(saved) - set(changed))}"
    assert (out / "model" / "chat_template.jinja").is_file() and info["weights"] == str(out / "model")


# ------------------------------------------------------------------------------------------ refusals


def test_a_row_with_nothing_to_learn_is_refused_by_id_before_anything_trains(tiny_model, tmp_path):
    from train.sft import run

    c = CHARACTERS[0]
    flagged = dialogue("d-all-flagged", c, TASKS[40:42], weights=[0, 0])
    data = make_dataset(tmp_path / "flagged", [flagged])
    out = tmp_path / "out"
    with pytest.raises(
        DramatisError, match=r"train: 1 example\(s\) have no supervised token under train.loss=flags.*d-all-flagged"
    ):
        run(recipe(tiny_model, data, out, "train.loss=flags", "train.max_steps=2"))
    assert not out.exists()
    with pytest.raises(DramatisError, match="--resume: no checkpoint"):
        run(recipe(tiny_model, data, out, "train.loss=flags"), resume=True)
    # The same data under all_turns trains those turns: only the flags made the row empty.
    _, rows = tokenized_rows(tiny_model, data, "all_turns")
    assert all(any(label != IGNORE for label in labels) for labels in rows["labels"])

    # A long system message pushes every character turn past max_length.
    long = c.model_copy(update={"system_prompt": " ".join(PERSONAS[:6]) * 8})
    data = make_dataset(tmp_path / "long", [dialogue("d-too-long", long, TASKS[40:42])])
    with pytest.raises(DramatisError, match=r"1 example\(s\) have no supervised token .*max_length=512.*d-too-long"):
        run(recipe(tiny_model, data, out, "train.max_steps=2"))
    assert not out.exists()


@pytest.mark.cli
def test_bad_override_exits_2_with_one_error_line_and_writes_nothing(dataset, tmp_path):
    out = tmp_path / "out"
    proc = run_cli(
        "train",
        "train/recipes/demo-lora.yaml",
        "train.loss=nonsense",
        f"data={dataset}",
        f"out={out}",
        "model.base=tiny",
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: train.loss=nonsense"), proc.stderr
    assert not out.exists()


def test_every_shipped_recipe_loads_and_the_grid_expands_to_six_runs():
    from train.grid import grid_recipes
    from train.recipe import load_train_recipe
    from train.sft import check

    recipes = sorted((ROOT / "train" / "recipes").glob("*.yaml"))
    assert {p.name for p in recipes} >= {"demo-lora.yaml", "full.yaml", "grid.yaml", "lora.yaml"}
    for path in recipes:
        check(load_train_recipe(path))
        assert (
            f"dramatis train train/recipes/{path.name}" in path.read_text().splitlines()[0]
        )  # the first line: its command
    grid = load_train_recipe(ROOT / "train" / "recipes" / "grid.yaml")
    runs = grid_recipes(grid)
    assert len(runs) == 6 and len({r.out for r in runs}) == 6 and len({r.name for r in runs}) == 6
    for entry, r in zip(grid.grid, runs, strict=False):
        check(r)
        assert r.out == str(Path(grid.out) / entry["name"]) and r.grid == [] and r.data == grid.data
        assert (r.train.batch_size, r.train.grad_accum) == (
            2,
            16,
        ) and r.train.packing  # the grid's shared settings survive the overrides
    assert [(r.train.method, r.train.learning_rate, r.train.epochs) for r in runs] == [
        ("lora", 3e-4, 3),
        ("lora", 6e-4, 3),
        ("lora", 3e-4, 6),
        ("full", 3e-5, 3),
        ("full", 6e-5, 3),
        ("full", 3e-5, 6),
    ]


def test_a_bad_grid_entry_is_refused_before_any_run_trains(tiny_model, dataset, tmp_path):
    from train.grid import run_grid
    from train.recipe import load_train_recipe

    grid = load_train_recipe(
        None,
        [
            f"model.base={tiny_model}",
            f"data={dataset}",
            f"out={tmp_path / 'grid'}",
            *BASE,
            "train.max_steps=1",
            "grid=[{name: ok, overrides: []}, {name: bad, overrides: [train.method=ful]}]",
        ],
    )
    with pytest.raises(DramatisError, match="train.method=ful"):
        run_grid(grid)
    assert not (tmp_path / "grid" / "ok").exists()


# ------------------------------------------------------------------------------------------ resume, golden


def resume_after(tiny_model, dataset, tmp_path, checkpoint: int, *steps: str) -> tuple[Path, Path]:
    """One uninterrupted run, and a second one resumed from the first's checkpoint-N: exactly what a run killed
    after step N leaves behind (the checkpoint is written during the run, before step N + 1)."""
    from train.sft import run

    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    run(recipe(tiny_model, dataset, whole, *steps))
    stopped.mkdir()
    shutil.copytree(whole / f"checkpoint-{checkpoint}", stopped / f"checkpoint-{checkpoint}")
    shutil.copyfile(whole / "base_eval.json", stopped / "base_eval.json")  # written before step 1
    with pytest.raises(DramatisError, match="holds checkpoints of an earlier run"):
        run(recipe(tiny_model, dataset, stopped, *steps))
    assert run(recipe(tiny_model, dataset, stopped, *steps), resume=True)["steps"] == 6
    return whole, stopped


def assert_same_continuation(whole: Path, stopped: Path, checkpoint: int) -> None:
    a, b = step_losses(whole), step_losses(stopped)
    assert sorted(b) == list(range(1, 7))  # the checkpoint's history plus the new steps, none twice
    assert len([e for e in metrics(stopped) if "loss" in e]) == 6
    for step in range(checkpoint + 1, 7):
        for key in ("loss", "grad_norm", "learning_rate"):  # bit-identical on CPU fp32
            assert b[step][key] == a[step][key], (step, key, a[step][key], b[step][key])
    evals = lambda out: [(e["step"], e["eval_loss"]) for e in metrics(out) if "eval_loss" in e]  # noqa: E731
    assert evals(stopped) == evals(whole)


@pytest.mark.engine
def test_resume_mid_epoch_continues_with_identical_losses(tiny_model, dataset, tmp_path):
    # Checkpoint at step 3 of the 4-step epoch: the data skip, the epoch's evaluation at step 4 and the next
    # epoch's order all replay; LoRA dropout (0.05) draws from the restored RNG.
    whole, stopped = resume_after(tiny_model, dataset, tmp_path, 3, "train.max_steps=6", "train.save_steps=3")
    assert_same_continuation(whole, stopped, 3)


@pytest.mark.engine
def test_resume_from_a_checkpoint_at_an_epoch_end_continues_with_identical_losses(tiny_model, dataset, tmp_path):
    whole, stopped = resume_after(tiny_model, dataset, tmp_path, 4, "train.max_steps=6", "train.save_steps=4")
    assert_same_continuation(whole, stopped, 4)


GOLDEN_OVERRIDES = [
    *BASE,
    "train.max_steps=30",
    "train.seed=0",
    "train.learning_rate=1e-3",
    "lora.r=8",
    "lora.alpha=16",
    "train.save_steps=30",
]


@pytest.mark.engine
def test_golden_loss_trajectory_of_a_seeded_tiny_run(tiny_model, dataset, tmp_path):
    import peft
    import transformers
    import trl

    from train.recipe import load_train_recipe
    from train.sft import run

    out = tmp_path / "golden"
    run(load_train_recipe(None, [f"model.base={tiny_model}", f"data={dataset}", f"out={out}", *GOLDEN_OVERRIDES]))
    losses = [step_losses(out)[s]["loss"] for s in range(1, 31)]
    versions = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "peft": peft.__version__,
    }
    if os.environ.get("DRAMATIS_REGEN_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(
            json.dumps(
                {
                    "overrides": ["model.base=tiny", "data=<tests/test_train.py make_dataset>", *GOLDEN_OVERRIDES],
                    "versions": versions,
                    "losses": losses,
                },
                indent=2,
            )
            + "\n"
        )
    golden = json.loads(GOLDEN.read_text())
    how = (
        f"the tiny model's 30-step loss trajectory changed (versions then {golden['versions']}, now {versions}); "
        f"if the change is intended, regenerate {GOLDEN.relative_to(ROOT)} with DRAMATIS_REGEN_GOLDEN=1 "
        f".venv/bin/python -m pytest tests/test_train.py -k golden and commit it"
    )
    assert len(golden["losses"]) == 30
    assert losses == pytest.approx(golden["losses"], abs=1e-4, rel=0), how
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.1  # and it learns: the trajectory is not a flat line


# ------------------------------------------------------------------------------------------ packing


@pytest.mark.engine
def test_packed_training_runs_and_a_packed_batch_has_the_loss_of_its_examples_apart(tiny_model, dataset, tmp_path):
    from transformers import AutoModelForCausalLM
    from trl.data_utils import pack_dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from train.sft import run

    out = tmp_path / "packed"
    info = run(recipe(tiny_model, dataset, out, "train.packing=true", "train.max_steps=2"))
    assert info["steps"] == 2 and all(math.isfinite(e["loss"]) for e in step_losses(out).values())

    # The trainer's own path: our rows packed by TRL ('bfd'), then collated padding-free.
    tok, rows = tokenized_rows(tiny_model, dataset)
    packed = pack_dataset(rows.select_columns(["input_ids", "labels"]), 1024, "bfd")
    assert len(packed) < len(rows)
    first = packed[0]
    assert len(first["seq_lengths"]) >= 2
    by_ids = {tuple(r["input_ids"]): r["labels"] for r in rows}  # our labels travel with the ids into the packed rows
    start = 0
    for length in first["seq_lengths"]:
        assert by_ids[tuple(first["input_ids"][start : start + length])] == first["labels"][start : start + length]
        start += length
    batch = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id, padding_free=True)([first])
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()

    def summed_loss(logits, labels):
        return torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=IGNORE, reduction="sum")

    with torch.no_grad():
        # use_cache=False as SFTTrainer.compute_loss sets it: transformers derives the per-document mask from the
        # position ids only when there is no cache.
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        together = summed_loss(model(**inputs, use_cache=False).logits, batch["labels"])
        apart, start = torch.zeros(()), 0
        for length in first["seq_lengths"]:
            ids, labels = (torch.tensor([first[k][start : start + length]]) for k in ("input_ids", "labels"))
            apart += summed_loss(model(input_ids=ids).logits, labels)
            start += length
        # The comparison can tell: one causal row over all documents (cross-document attention) scores differently.
        crossed = summed_loss(model(input_ids=batch["input_ids"], use_cache=False).logits, batch["labels"])
    assert together.item() == pytest.approx(apart.item(), abs=1e-4, rel=0)
    assert abs(crossed.item() - apart.item()) > 1e-2


# ------------------------------------------------------------------------------------------ merged export


@pytest.mark.engine
def test_merged_export_loads_without_peft_and_serves_in_vllm(tiny_model, lora_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from synth.backend import ChatRequest
    from synth.vllm_backend import VLLMBackend

    out, info = lora_run
    merged = out / "merged"
    assert info["merged"] == str(merged) and (merged / "config.json").is_file()
    assert not (merged / "adapter_config.json").exists()
    tok = AutoTokenizer.from_pretrained(merged)
    assert tok.chat_template == AutoTokenizer.from_pretrained(out / "adapter").chat_template

    plain = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()
    assert not hasattr(plain, "peft_config")
    adapted = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32), str(out / "adapter")
    ).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    messages = [
        {"role": "system", "content": CHARACTERS[0].system_prompt},
        {"role": "user", "content": TASKS[0]["instruction"]},
    ]
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)[
        "input_ids"
    ]
    with torch.no_grad():
        want, got, untouched = adapted(input_ids=ids).logits, plain(input_ids=ids).logits, base(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-4, rtol=0), (got - want).abs().max()
    assert (untouched - want).abs().max() > 1e-3  # the adapter changes the logits: the comparison can tell

    backend = VLLMBackend(str(merged), name="merged", max_model_len=2048, kv_cache_gb=0.25, dtype="float32")
    try:
        [result] = backend.generate([ChatRequest(messages=messages, seed=0, max_tokens=8)])
    finally:
        backend.close()
    assert result.finish_reason in ("stop", "length") and result.text.strip() and result.prompt_tokens == ids.shape[1]


# ------------------------------------------------------------------------------------------ push to the Hub

SECRET = "hf_" + "s3cr3t" * 6


@pytest.mark.cli
def test_push_without_a_token_or_offline_or_to_a_bad_repo_fails_before_training(dataset, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"} | {"HF_HOME": str(tmp_path / "hf-home")}
    out = tmp_path / "out"
    args = ("train", "train/recipes/demo-lora.yaml", f"data={dataset}", f"out={out}")
    # run_cli always sets HF_HUB_OFFLINE=1 (CI has no Hub): the token and the repo id are checked before it.
    cases = [
        ("someone/roleplay", {}, "HF_TOKEN"),
        ("someone/roleplay", {"HF_TOKEN": SECRET}, "HF_HUB_OFFLINE"),
        ("no-user-part", {"HF_TOKEN": SECRET}, "user/name"),
    ]
    for repo, more_env, says in cases:
        proc = run_cli(*args, "--push", repo, env=env | more_env)
        assert proc.returncode != 0 and says in proc.stderr and SECRET not in proc.stderr + proc.stdout, proc.stderr[
            -2000:
        ]
        assert not out.exists()  # refused before the model was even loaded


@pytest.mark.engine
def test_push_folder_is_the_merged_model_with_its_card_and_an_upload_error_hides_the_token(lora_run, monkeypatch):
    from huggingface_hub import HfApi, ModelCard

    from train.push import build_folder, push

    out, info = lora_run
    folder = build_folder(out, "someone/roleplay")
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {
        "config.json",
        "model.safetensors",
        "chat_template.jinja",
        "generation_config.json",
        "README.md",
        "loss.png",
        "metrics.md",
        "recipe.json",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
    } <= files
    assert "training_args.bin" not in {Path(f).name for f in files}  # a pickle of local paths stays home
    assert (folder / "model.safetensors").read_bytes() == (out / "merged" / "model.safetensors").read_bytes()
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "transformers" and "lora" in card.data.tags and card.data.license == "other"
    assert f"{info['final_train_loss']:.3f}" in card.text and "someone/roleplay" in card.text
    assert (out / "README.md").read_text().startswith("---\n") and "TRL" in (out / "README.md").read_text()
    before = {f: (folder / f).read_bytes() for f in files}
    calls = []

    def fail(self, **kwargs):  # fault injection: the Hub drops the connection mid-upload
        calls.append((kwargs["repo_type"], Path(kwargs["folder_path"]), self.token))
        raise ConnectionError(f"reset while sending Authorization: Bearer {SECRET}")

    monkeypatch.setattr(
        HfApi, "create_repo", lambda self, repo_id, **k: calls.append((k["repo_type"], repo_id, self.token))
    )
    monkeypatch.setattr(HfApi, "upload_folder", fail)
    with pytest.raises(DramatisError, match="someone/roleplay") as e:
        push(out, "someone/roleplay", SECRET)
    assert SECRET not in str(e.value) and "rerun" in str(e.value)
    assert calls == [("model", "someone/roleplay", SECRET), ("model", folder, SECRET)]
    assert {
        f: (folder / f).read_bytes() for f in files
    } == before  # rebuilt byte for byte: a rerun resends nothing done
