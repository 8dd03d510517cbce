"""Training recipes: the same YAML + `key=value` mechanism as synth's (synth/config.py), another root."""

from dataclasses import asdict, dataclass, field

from personas.errors import DramatisError
from synth.config import knob, load_config

LOSS_POLICIES = ("all_turns", "last_turn", "flags")


@dataclass
class ModelConfig:
    base: str = knob("gemma3-270m", "'gemma3-270m' (offline default), 'tiny' (test model), an HF id or a local folder")
    dtype: str = knob(
        "auto",
        "'auto' (fp32 weights under bf16 autocast on a GPU with bf16, else fp32), "
        "'float32', or 'bfloat16' (weights held in bf16: less memory, updates below their rounding step are lost)",
        choices=("auto", "float32", "bfloat16"),
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
    r: int = knob(16, "LoRA rank", min=1)
    alpha: int = knob(32, "LoRA alpha (scale = alpha / r)")
    dropout: float = knob(0.05, "LoRA dropout", min=0, max=1)
    target_modules: str = knob("all-linear", "'all-linear' or comma-separated module names")


@dataclass
class TrainConfig:
    method: str = knob("lora", "'lora' (PEFT adapters) or 'full' (every weight)", choices=("lora", "full"))
    loss: str = knob(
        "all_turns",
        "which character turns carry loss: all_turns | last_turn | flags (a message with "
        "weight: 0 is not trained); system and user turns never are",
        choices=LOSS_POLICIES,
    )
    epochs: float = knob(3.0, "passes over the training split (Qianfan: ~10 for 1k rows, ~2 for 10k)", min=0)
    max_steps: int = knob(0, "stop after this many optimizer steps (0 = run the epochs)", min=0)
    learning_rate: float = knob(3e-4, "peak learning rate (Qianfan: LoRA 3e-4, full 3e-5)", min=0)
    scheduler: str = knob("cosine", "learning-rate schedule (transformers' lr_scheduler_type)")
    warmup_ratio: float = knob(0.03, "share of steps spent warming up")
    weight_decay: float = knob(0.0, "AdamW weight decay", min=0)
    batch_size: int = knob(4, "examples per device step", min=1)
    grad_accum: int = knob(1, "steps accumulated per optimizer step", min=1)
    max_length: int = knob(
        1024, "tokens per example (longer ones are cut); with packing, tokens per packed row", min=1
    )
    packing: bool = knob(
        False, "pack examples into rows of max_length (TRL 'bfd', padding-free, per-document attention)"
    )
    gradient_checkpointing: bool = knob(False, "trade compute for memory (GPU, long rows)")
    seed: int = knob(0, "seed of the weights' init (LoRA), data order and dropout")
    logging_steps: int = knob(1, "log loss / grad norm / learning rate / tokens every N steps", min=1)
    eval_steps: int = knob(0, "validation loss every N steps (0 = once per epoch)", min=0)
    save_steps: int = knob(
        0, "checkpoint every N steps (0 = once per epoch); --resume continues from the last one", min=0
    )
    save_total_limit: int = knob(2, "checkpoints kept")

    def check(self) -> None:
        if self.epochs <= 0 and self.max_steps <= 0:
            raise DramatisError("train.epochs or train.max_steps must be > 0")
        if not 0 <= self.warmup_ratio < 1:
            raise DramatisError(f"train.warmup_ratio={self.warmup_ratio}: a share of the steps, 0 ≤ x < 1")


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

    def check(self) -> None:
        for i, entry in enumerate(self.grid):
            overrides = entry.get("overrides", []) if isinstance(entry, dict) else None
            if not isinstance(entry, dict) or not entry.get("name") or not isinstance(overrides, list):
                raise DramatisError(f"grid[{i}]: write it as {{name: ..., overrides: [key=value, ...]}}")


def load_train_recipe(path, overrides=(), base: dict | None = None) -> TrainRecipe:
    return load_config(TrainRecipe, path, overrides, base)


def as_dict(recipe: TrainRecipe) -> dict:
    return asdict(recipe)
