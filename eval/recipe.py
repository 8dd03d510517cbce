"""Evaluation recipes: the same YAML + `key=value` mechanism as synth's (synth/config.py), another root.

Models and judges are lists of `label=model` (label optional: the model's folder name stands in); each list
shares one backend section, so `backend.model` and `judge.backend.model` are not read.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path

from personas.errors import DramatisError
from synth.config import knob, load_config
from synth.recipe import BackendConfig, ProfilesConfig

BENCHMARKS = ("heldout", "personagym")
RUBRICS = ("persona", "roleplay")
PERSONAGYM = "../shared/data/heldout/personagym_dev/"


@dataclass
class HeldoutConfig:
    run: str = knob("runs/demo", "the synth run whose characters and prompts are evaluated")
    splits: list = knob(["heldout"], "character splits to evaluate: heldout, and validation (never trained on either)")
    characters: int = knob(0, "evaluate the first N of those characters (0 = all)", min=0)
    prompts: int = knob(8, "instruction prompts no training or validation row used, asked of every character", min=0)
    probes: int = knob(
        2, "probing questions per PersonaGym task written for each character by the generator (0 = none)", min=0
    )
    max_chars: int = knob(300, "longest probing question or translated prompt, in characters", min=1)
    temperature: float = knob(0.7, "generator sampling temperature", min=0)
    max_attempts: int = knob(
        3, "generator attempts (new seed each) before a character's question set is rejected", min=1
    )


@dataclass
class PersonaGymConfig:
    path: str = knob(PERSONAGYM + "personagym_dev.jsonl", "personas + questions in PersonaGym's layout")
    rubrics: str = knob(PERSONAGYM + "rubrics", "folder of the five task rubrics (<task>.txt)")
    light: bool = knob(True, "PersonaGym-Light: the first question of each task only")
    limit: int = knob(0, "the first N personas (0 = all)", min=0)
    persona: str = knob(
        "profile",
        "'profile' (expanded by the profile stage; a rejected expansion falls back to the "
        "line) or 'line' (the one-line persona as the system prompt)",
        choices=("profile", "line"),
    )


@dataclass
class ResponderConfig:
    seeds: int = knob(2, "replies per question and model, seeds 0..N-1 (the same for every model)", min=1)
    max_tokens: int = knob(200, "output token budget per reply", min=1)
    temperature: float = knob(0.7, "sampling temperature", min=0)
    top_p: float = knob(1.0, "nucleus sampling (1.0 = off)", min=0, max=1)
    top_k: int = knob(64, "sample from the k likeliest tokens (0 = off); on CPU cheaper than top_p", min=0)
    repetition_penalty: float = knob(1.05, "vLLM repetition penalty (1.0 = off)")
    latency_probes: int = knob(
        8, "requests sent one at a time per model to time first token and whole reply (0 = off)", min=0
    )


@dataclass
class JudgeConfig:
    models: list = knob(
        ["judge=gemma3-270m"], "judges as label=model; several are averaged ([] = judge-free metrics only)"
    )
    backend: BackendConfig = field(default_factory=BackendConfig)
    rubrics: list = knob(
        list(RUBRICS),
        "persona (PersonaGym's 1-5 rubric of the question's task) and/or roleplay (0-4, every reply)",
        choices=RUBRICS,
    )
    gsb: bool = knob(True, "pairwise good/same/bad of every model against the first, both orders judged")
    max_tokens: int = knob(200, "output token budget per judgement", min=1)
    max_justification: int = knob(300, "longest justification, in characters (the grammar closes it there)", min=1)

    def check(self) -> None:
        labelled(self.models, "judge.models")  # [] is allowed: judge-free metrics only


@dataclass
class EvalRecipe:
    name: str = knob("demo", "evaluation name")
    out: str = knob("runs/demo/eval", "output folder (cache, stage shards, report)")
    seed: int = knob(0, "root of every random choice")
    chunk_size: int = knob(256, "records per shard; also the unit of resume", min=1)
    benchmarks: list = knob(list(BENCHMARKS), "heldout and/or personagym", choices=BENCHMARKS)
    models: list = knob(
        ["base=gemma3-270m", "tuned=runs/demo/train/merged"],
        "models under test as label=model; the first is the reference of every comparison",
    )
    backend: BackendConfig = field(default_factory=BackendConfig)
    responder: ResponderConfig = field(default_factory=ResponderConfig)
    generator: BackendConfig = field(default_factory=BackendConfig)
    profiles: ProfilesConfig = field(default_factory=ProfilesConfig)
    heldout: HeldoutConfig = field(default_factory=HeldoutConfig)
    personagym: PersonaGymConfig = field(default_factory=PersonaGymConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    examples: int = knob(3, "side-by-side examples per benchmark in the report", min=0)

    def check(self) -> None:
        if not self.benchmarks:
            raise DramatisError(f"benchmarks={self.benchmarks}: use {' and/or '.join(BENCHMARKS)}")
        if not labelled(self.models, "models"):
            raise DramatisError("models: give at least one model under test, e.g. models=[base=gemma3-270m]")


def labelled(specs: list, what: str) -> dict[str, str]:
    """['base=gemma3-270m', 'runs/x/merged'] → {'base': 'gemma3-270m', 'merged': 'runs/x/merged'}; labels unique."""
    found = {}
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip():
            raise DramatisError(f"{what}: each entry is label=model or a model, not {spec!r}")
        label, sep, model = spec.partition("=")
        if not sep:
            label, model = Path(spec.rstrip("/")).name, spec
        label, model = label.strip(), model.strip()
        if not label or not model:
            raise DramatisError(f"{what}: '{spec}' needs both a label and a model, e.g. base=gemma3-270m")
        if label in found:
            raise DramatisError(f"{what}: the label '{label}' is used twice; give each entry its own label=")
        found[label] = model
    return found


def load_eval_recipe(path, overrides=(), base: dict | None = None) -> EvalRecipe:
    return load_config(EvalRecipe, path, overrides, base)


def as_dict(recipe: EvalRecipe) -> dict:
    return asdict(recipe)
