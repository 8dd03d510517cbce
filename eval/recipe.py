"""Evaluation recipes: the same YAML + `key=value` mechanism as synth's (synth/recipe.py), another root.

Models and judges are lists of `label=model` (label optional: the model's folder name stands in); each list
shares one backend section, so `backend.model` and `judge.backend.model` are not read.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path

from personas.errors import DramatisError
from synth.recipe import BackendConfig, ProfilesConfig, knob, load_recipe

BENCHMARKS = ("heldout", "personagym")
RUBRICS = ("persona", "roleplay")
PERSONAGYM = "../shared/data/heldout/personagym_dev/"


@dataclass
class HeldoutConfig:
    run: str = knob("runs/demo", "the synth run whose characters and prompts are evaluated")
    splits: list = knob(["heldout"], "character splits to evaluate: heldout, and validation (never trained on either)")
    characters: int = knob(0, "evaluate the first N of those characters (0 = all)")
    prompts: int = knob(8, "instruction prompts no training or validation row used, asked of every character")
    probes: int = knob(
        2, "probing questions per PersonaGym task written for each character by the generator (0 = none)"
    )
    max_chars: int = knob(300, "longest probing question or translated prompt, in characters")
    temperature: float = knob(0.7, "generator sampling temperature")
    max_attempts: int = knob(3, "generator attempts (new seed each) before a character's question set is rejected")


@dataclass
class PersonaGymConfig:
    path: str = knob(PERSONAGYM + "personagym_dev.jsonl", "personas + questions in PersonaGym's layout")
    rubrics: str = knob(PERSONAGYM + "rubrics", "folder of the five task rubrics (<task>.txt)")
    light: bool = knob(True, "PersonaGym-Light: the first question of each task only")
    limit: int = knob(0, "the first N personas (0 = all)")
    persona: str = knob(
        "profile",
        "'profile' (expanded by the profile stage; a rejected expansion falls back to the "
        "line) or 'line' (the one-line persona as the system prompt)",
    )


@dataclass
class ResponderConfig:
    seeds: int = knob(2, "replies per question and model, seeds 0..N-1 (the same for every model)")
    max_tokens: int = knob(200, "output token budget per reply")
    temperature: float = knob(0.7, "sampling temperature")
    top_p: float = knob(1.0, "nucleus sampling (1.0 = off)")
    top_k: int = knob(64, "sample from the k likeliest tokens (0 = off); on CPU cheaper than top_p")
    repetition_penalty: float = knob(1.05, "vLLM repetition penalty (1.0 = off)")
    latency_probes: int = knob(
        8, "requests sent one at a time per model to time first token and whole reply (0 = off)"
    )


@dataclass
class JudgeConfig:
    models: list = knob(
        ["judge=gemma3-270m"], "judges as label=model; several are averaged ([] = judge-free metrics only)"
    )
    backend: BackendConfig = field(default_factory=BackendConfig)
    rubrics: list = knob(
        list(RUBRICS), "persona (PersonaGym's 1-5 rubric of the question's task) and/or roleplay (0-4, every reply)"
    )
    gsb: bool = knob(True, "pairwise good/same/bad of every model against the first, both orders judged")
    max_tokens: int = knob(200, "output token budget per judgement")
    max_justification: int = knob(300, "longest justification, in characters (the grammar closes it there)")


@dataclass
class EvalRecipe:
    name: str = knob("demo", "evaluation name")
    out: str = knob("runs/demo/eval", "output folder (cache, stage shards, report)")
    seed: int = knob(0, "root of every random choice")
    chunk_size: int = knob(256, "records per shard; also the unit of resume")
    benchmarks: list = knob(list(BENCHMARKS), "heldout and/or personagym")
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
    examples: int = knob(3, "side-by-side examples per benchmark in the report")


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


def check(recipe: EvalRecipe) -> None:
    """Refuse settings that cannot run, before any model loads."""
    bad = [b for b in recipe.benchmarks if b not in BENCHMARKS]
    if bad or not recipe.benchmarks:
        raise DramatisError(f"benchmarks={recipe.benchmarks}: use {' and/or '.join(BENCHMARKS)}")
    if not labelled(recipe.models, "models"):
        raise DramatisError("models: give at least one model under test, e.g. models=[base=gemma3-270m]")
    labelled(recipe.judge.models, "judge.models")
    bad = [r for r in recipe.judge.rubrics if r not in RUBRICS]
    if bad:
        raise DramatisError(f"judge.rubrics={recipe.judge.rubrics}: use {' and/or '.join(RUBRICS)}")
    if recipe.personagym.persona not in ("profile", "line"):
        raise DramatisError(f"personagym.persona={recipe.personagym.persona}: use 'profile' or 'line'")
    if recipe.responder.seeds < 1:
        raise DramatisError(f"responder.seeds={recipe.responder.seeds}: at least 1")
    for kind in (recipe.backend.kind, recipe.generator.kind, recipe.judge.backend.kind):
        if kind not in ("vllm", "openai"):
            raise DramatisError(f"backend.kind={kind}: use 'vllm' or 'openai'")


def load_eval_recipe(path, overrides=(), base: dict | None = None) -> EvalRecipe:
    recipe = load_recipe(path, overrides, base, kind=EvalRecipe)
    check(recipe)
    return recipe


def as_dict(recipe: EvalRecipe) -> dict:
    return asdict(recipe)
