"""Training recipes: the same YAML + `key=value` mechanism as synth's (synth/recipe.py), another root."""

from dataclasses import asdict, dataclass, field

from synth.recipe import knob, load_recipe

LOSS_POLICIES = ("all_turns", "last_turn", "flags")


@dataclass
class ModelConfig:
    base: str = knob("gemma3-270m", "'gemma3-270m' (offline default), 'tiny' (test model), an HF id or a local folder")
    dtype: str = knob(
        "auto",
        "'auto' (fp32 weights under bf16 autocast on a GPU with bf16, else fp32), "
        "'float32', or 'bfloat16' (weights held in bf16: less memory, updates below their rounding step are lost)",
    )
    chat_template: str = knob(
        "auto",
        "'auto' (ours for Gemma 3 and the tiny model, else the model's own if it has "
        "{% generation %} markers) or a .jinja file",
    )
    attn_implementation: str = knob(
        "auto",
        "'auto' (transformers' default, SDPA) or e.g. 'flash_attention_2' on a GPU: "
        "what makes packed (padding-free) batches cost linear, not quadratic, time",
    )


@dataclass
class LoraConfig:
    r: int = knob(16, "LoRA rank")
    alpha: int = knob(32, "LoRA alpha (scale = alpha / r)")
    dropout: float = knob(0.05, "LoRA dropout")
    target_modules: str = knob("all-linear", "'all-linear' or comma-separated module names")


@dataclass
class TrainConfig:
    method: str = knob("lora", "'lora' (PEFT adapters) or 'full' (every weight)")
    loss: str = knob(
        "all_turns",
        "which character turns carry loss: all_turns | last_turn | flags (a message with "
        "weight: 0 is not trained); system and user turns never are",
    )
    epochs: float = knob(3.0, "passes over the training split (Qianfan: ~10 for 1k rows, ~2 for 10k)")
    max_steps: int = knob(0, "stop after this many optimizer steps (0 = run the epochs)")
    learning_rate: float = knob(3e-4, "peak learning rate (Qianfan: LoRA 3e-4, full 3e-5)")
    scheduler: str = knob("cosine", "learning-rate schedule (transformers' lr_scheduler_type)")
    warmup_ratio: float = knob(0.03, "share of steps spent warming up")
    weight_decay: float = knob(0.0, "AdamW weight decay")
    batch_size: int = knob(4, "examples per device step")
    grad_accum: int = knob(1, "steps accumulated per optimizer step")
    max_length: int = knob(1024, "tokens per example (longer ones are cut); with packing, tokens per packed row")
    packing: bool = knob(
        False, "pack examples into rows of max_length (TRL 'bfd', padding-free, per-document attention)"
    )
    gradient_checkpointing: bool = knob(False, "trade compute for memory (GPU, long rows)")
    seed: int = knob(0, "seed of the weights' init (LoRA), data order and dropout")
    logging_steps: int = knob(1, "log loss / grad norm / learning rate / tokens every N steps")
    eval_steps: int = knob(0, "validation loss every N steps (0 = once per epoch)")
    save_steps: int = knob(0, "checkpoint every N steps (0 = once per epoch); --resume continues from the last one")
    save_total_limit: int = knob(2, "checkpoints kept")


@dataclass
class TrainRecipe:
    name: str = knob("demo-lora", "run name")
    data: str = knob("runs/demo/dataset", "a Dramatis dataset folder (train and validation splits, `messages` column)")
    out: str = knob("runs/demo/train", "output folder: checkpoints, metrics, loss curve, adapter, merged model")
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    merge: bool = knob(True, "after training, merge the LoRA adapter into a plain HF folder (out/merged) vLLM loads")
    grid: list = knob(
        [],
        "other runs: a list of {name, overrides: [key=value, ...]}; each trains into out/<name> and "
        "the results are tabulated",
    )


def load_train_recipe(path, overrides=(), base: dict | None = None) -> TrainRecipe:
    return load_recipe(path, overrides, base, kind=TrainRecipe)


def as_dict(recipe: TrainRecipe) -> dict:
    return asdict(recipe)
