"""The stages of `make synth`, wired: seeds → profiles → split → prompts → dialogues → curate → dataset.

Each stage is a generator over records handed to the runner; everything is validated before the
first shard is written, so bad input leaves nothing behind.
"""

import functools
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

from personas.errors import DramatisError
from personas.language import SUPPORTED
from personas.profiles import character, parse_profile, profile_messages, profile_schema
from personas.records import Character, Persona, derive_seed, name_key
from personas.seeds import load_seeds
from personas.split import assign_splits, find_leaks, profile_text
from synth.backend import ChatRequest, open_backend
from synth.cache import RequestCache
from synth.curate import curate_stage
from synth.dataset import write_dataset
from synth.dedup import find_similar
from synth.dialogues import dialogues_stage, plan_tasks
from synth.llm import generate_validated
from synth.lock import run_lock
from synth.models import resolve_model
from synth.prompts import Mapping, load_prompts
from synth.recipe import DedupConfig, ProfilesConfig, Recipe, as_dict, load_recipe
from synth.records import Dialogue, Prompt
from synth.runner import Reject, Stage, load_records, run_stage
from synth.shards import check_writable


def unique_and_sampled(stage: str, records: list, key, is_empty, chosen: set[str], similar: dict | None = None):
    """The shared body of the seeds and prompts stages: empty rows, exact duplicates (first occurrence
    wins) and the `similar` ones (id → (reason, id repeated)) become rejects naming both lines; rows
    outside the sample `chosen` are counted, not kept."""
    first, similar = {}, similar or {}
    for r in records:
        first.setdefault(key(r), r)
    by_id = {r.id: r for r in first.values()}

    def process(chunk: list, counters: Counter):
        for r in chunk:
            original = first[key(r)]
            if is_empty(r):
                yield Reject(
                    id=r.id,
                    stage=stage,
                    reason="empty",
                    detail=f"{r.source}:{r.source_line}",
                    record=r.model_dump_json(),
                )
            elif original is not r:
                yield Reject(
                    id=r.id,
                    stage=stage,
                    reason="duplicate",
                    duplicate_of=original.id,
                    record=r.model_dump_json(),
                    detail=f"{r.source}:{r.source_line} repeats {original.source} line {original.source_line}",
                )
            elif r.id in similar:
                reason, of = similar[r.id]
                yield Reject(
                    id=r.id,
                    stage=stage,
                    reason=reason,
                    duplicate_of=of,
                    record=r.model_dump_json(),
                    detail=f"{r.source}:{r.source_line} nearly repeats {by_id[of].source} "
                    f"line {by_id[of].source_line}",
                )
            elif r.id not in chosen:
                counters["not_sampled"] += 1
            else:
                yield r

    return process


def seeds_stage(recipe: Recipe, personas: list[Persona]) -> Stage:
    """Exact and near-duplicate dedup (first occurrence wins), empty rows out, then a deterministic sample."""
    first = {}
    for p in personas:
        first.setdefault(p.id, p)
    firsts = [p for p in first.values() if p.text]
    similar = (
        find_similar([p.id for p in firsts], [p.text for p in firsts], [p.language for p in firsts], recipe.dedup)
        if recipe.dedup.seeds
        else {}
    )
    # Rejected rows must not take a sample slot.
    unique = sorted(
        (p.id for p in firsts if p.id not in similar), key=lambda pid: (derive_seed(recipe.seed, pid), pid)
    )
    chosen = set(unique[: recipe.seeds.sample] if recipe.seeds.sample else unique)
    process = unique_and_sampled("seeds", personas, lambda p: p.id, lambda p: not p.text, chosen, similar)
    settings = {"seeds": asdict(recipe.seeds), "seed": recipe.seed, "dedup": asdict(recipe.dedup)}
    return Stage("seeds", Persona, process, recipe.chunk_size, settings)


def profiles_stage(
    cfg: ProfilesConfig, backend, cache: RequestCache, *, seed: int, chunk_size: int, model: str, kind: str
) -> Stage:
    """Persona → Character by JSON-schema constrained decoding, validated, retried, or rejected with a reason.
    `model` and `kind` name the backend's model (recorded in each Character) and kind; `dramatis eval` builds
    the stage too, from its own section config, so it takes no synth `Recipe`."""
    schema = profile_schema()

    def language(p: Persona) -> str:
        return p.language if cfg.language == "auto" else cfg.language

    def request(p: Persona, attempt: int) -> ChatRequest:
        return ChatRequest(
            messages=profile_messages(p, language(p)),
            seed=derive_seed(seed, p.id, attempt),
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=cfg.top_k,
            repetition_penalty=cfg.repetition_penalty,
            json_schema=schema,
        )

    def parse(p: Persona, result, req: ChatRequest, attempt: int) -> Character:
        fields = parse_profile(result.text, result.finish_reason, language(p))
        return character(p, fields, language(p), model, req.seed, attempt + 1)

    def process(chunk: list[Persona], counters: Counter):
        usable = [p for p in chunk if language(p) in SUPPORTED]
        for p in chunk:
            if language(p) not in SUPPORTED:  # before any request: no model time spent on it
                yield Reject(
                    id=p.id,
                    stage="profiles",
                    reason="unsupported_language",
                    detail=f"{p.source}:{p.source_line} is in '{p.language}'; profiles are written in "
                    f"{', '.join(SUPPORTED)}: set profiles.language to one of them to make it a character",
                    record=p.model_dump_json(),
                )
        if not usable:
            return
        yield from generate_validated(
            backend(),
            cache,
            usable,
            stage="profiles",
            request=request,
            parse=parse,
            max_attempts=cfg.max_attempts,
            counters=counters,
        )

    settings = {"profiles": asdict(cfg), "model": model, "kind": kind, "seed": seed}
    return Stage("profiles", Character, process, chunk_size, settings)


def duplicate_characters(characters: list[Character], cfg: DedupConfig) -> dict[str, tuple[str, str, str]]:
    """id → (reason, id repeated, detail): a name an earlier character has (two "Elara Vance"s make the
    wrong-character check and a trained model mix them up), then profiles that nearly repeat one."""
    found, named = {}, {}
    for c in characters:
        earlier = named.setdefault(name_key(c.name), c)
        if cfg.names and earlier is not c:
            found[c.id] = ("duplicate_name", earlier.id, f"'{c.name}' is already {earlier.id}")
    if cfg.profiles:
        rest = [c for c in characters if c.id not in found]
        similar = find_similar(
            [c.id for c in rest], [profile_text(c) for c in rest], [c.language for c in rest], cfg, "_profile"
        )
        found.update({i: (reason, j, "profile nearly repeats " + j) for i, (reason, j) in similar.items()})
    return found


def split_stage(recipe: Recipe, characters: list[Character], eval_personas: list[Persona]) -> Stage:
    """Characters → train / validation / heldout, before any dialogue; training characters that duplicate a
    held-out or evaluation character are dropped with the reason and the id they duplicate."""
    cfg = recipe.split
    duplicates = duplicate_characters(characters, recipe.dedup)
    unique = [c for c in characters if c.id not in duplicates]
    splits = assign_splits(
        unique, recipe.seed, {"train": cfg.train, "validation": cfg.validation, "heldout": cfg.heldout}
    )
    placed = [c.model_copy(update={"split": splits[c.id]}) for c in unique]
    leaks = {
        leak.character_id: leak
        for leak in find_leaks(
            [c for c in placed if c.split != "heldout"],
            [c for c in placed if c.split == "heldout"],
            eval_personas,
            threshold=cfg.similarity,
            same_name_threshold=cfg.same_name_similarity,
        )
    }
    placed = {c.id: c for c in placed}

    def process(chunk: list[Character], counters: Counter):
        for c in chunk:
            leak = leaks.get(c.id)
            if c.id in duplicates:
                reason, of, detail = duplicates[c.id]
                yield Reject(
                    id=c.id, stage="split", reason=reason, duplicate_of=of, detail=detail, record=c.model_dump_json()
                )
            elif leak:
                yield Reject(
                    id=c.id,
                    stage="split",
                    reason=leak.reason,
                    duplicate_of=leak.duplicate_of,
                    detail=leak.detail,
                    record=c.model_dump_json(),
                )
            else:
                counters[f"split_{placed[c.id].split}"] += 1
                yield placed[c.id]

    settings = {
        "split": asdict(cfg),
        "seed": recipe.seed,
        "eval_personas": len(eval_personas),
        "dedup": asdict(recipe.dedup),
    }
    return Stage("split", Character, process, recipe.chunk_size, settings)


def prompts_stage(recipe: Recipe, prompts: list[Prompt]) -> Stage:
    """Exact duplicates and empty turns out, then a deterministic sample per source."""
    first: dict[tuple, Prompt] = {}
    for p in prompts:
        first.setdefault(tuple(p.turns), p)
    chosen = set()
    for source in dict.fromkeys(p.source for p in prompts):
        mine = sorted(
            (p.id for p in first.values() if p.source == source and all(p.turns)),
            key=lambda pid: derive_seed(recipe.seed, pid, "sample"),
        )
        chosen.update(mine[: recipe.instructions.sample] if recipe.instructions.sample else mine)
    process = unique_and_sampled("prompts", prompts, lambda p: tuple(p.turns), lambda p: not all(p.turns), chosen)
    return Stage(
        "prompts",
        Prompt,
        process,
        recipe.chunk_size,
        {"instructions": asdict(recipe.instructions), "seed": recipe.seed},
    )


STAGES = ("seeds", "profiles", "split", "prompts", "dialogues", "curate", "dataset")


def instruction_mapping(recipe: Recipe) -> Mapping:
    i = recipe.instructions
    return Mapping(
        id=i.id_field,
        instruction=i.instruction_field,
        input=i.input_field,
        output=i.output_field,
        turns=i.turns_field,
        category=i.category_field,
    )


class Inputs(NamedTuple):
    """What a run reads, loaded and checked: `prepare` makes it before anything is written."""

    personas: list[Persona]
    prompts: list[Prompt]
    eval_personas: list[Persona]
    backend: Callable  # opens the backend on its first call, then returns the same one
    out: Path


def prepare(recipe: Recipe, stages: tuple[str, ...] = STAGES) -> Inputs:
    """Load what the named stages read and check what the run needs: the model path, a reachable server, a
    writable `out`. `run_synth` starts a Ray cluster next, once it holds the run folder's lock."""
    personas = load_seeds(recipe.seeds.source, recipe.seeds.field, recipe.seeds.split)
    # Everything a later stage reads is loaded and checked now: bad input fails before any shard is written.
    prompts = (
        load_prompts(recipe.instructions.sources, instruction_mapping(recipe), recipe.instructions.split)
        if "prompts" in stages
        else []
    )
    eval_personas = (
        [p for path in recipe.split.eval_sets for p in load_seeds(path, "persona")] if "split" in stages else []
    )
    # The knobs themselves (choices, bounds, each section's check()) were checked when the recipe loaded.
    out = Path(recipe.out)
    if recipe.backend.kind == "vllm":
        resolve_model(recipe.backend.model)  # a bad model path fails here, before anything is written
    # The engine starts only if a chunk needs it: a finished run relaunched costs no model start.
    backend = functools.cache(
        lambda: open_backend(recipe.backend, ray=recipe.ray if recipe.executor == "ray" else None)
    )
    if recipe.backend.kind == "openai":
        backend()  # fail now if the server is unreachable: before `out` exists
    check_writable(out)
    return Inputs(personas, prompts, eval_personas, backend, out)


def run_synth(recipe: Recipe, stages: tuple[str, ...] = STAGES) -> dict[str, dict]:
    """Run the named stages in order (each needs the ones before it) on what `prepare` loaded and checked;
    returns each stage's manifest."""
    inputs = prepare(recipe, stages)
    with run_lock(inputs.out):  # a second process on this folder is refused here, before it writes or starts anything
        return _run_stages(recipe, stages, inputs)


def _run_stages(recipe: Recipe, stages: tuple[str, ...], inputs: Inputs) -> dict[str, dict]:
    personas, prompts, eval_personas, backend, out = inputs
    if recipe.executor == "ray":
        backend()  # fail now if the Ray cluster lacks what the replicas need: after the lock, as Ray is costly
    resolved = as_dict(recipe)
    manifests = {"seeds": run_stage(seeds_stage(recipe, personas), personas, out / "seeds", resolved)}
    cache = RequestCache(out / "cache.sqlite")
    try:
        if "profiles" in stages:
            kept = load_records(out / "seeds", Persona)
            stage = profiles_stage(
                recipe.profiles,
                backend,
                cache,
                seed=recipe.seed,
                chunk_size=recipe.chunk_size,
                model=recipe.backend.model,
                kind=recipe.backend.kind,
            )
            manifests["profiles"] = run_stage(stage, kept, out / "profiles", resolved)
        if "split" in stages:
            characters = load_records(out / "profiles", Character)
            manifests["split"] = run_stage(
                split_stage(recipe, characters, eval_personas), characters, out / "split", resolved
            )
        if "prompts" in stages:
            manifests["prompts"] = run_stage(prompts_stage(recipe, prompts), prompts, out / "prompts", resolved)
        if "dialogues" in stages:
            characters, kept_prompts = load_records(out / "split", Character), load_records(out / "prompts", Prompt)
            planned = Counter()
            tasks = plan_tasks(recipe, kept_prompts, characters, planned)
            manifests["dialogues"] = run_stage(
                dialogues_stage(recipe, backend, cache, kept_prompts, characters), tasks, out / "dialogues", resolved
            )
        manifests.update(curate_run(recipe, out, stages, eval_personas))
    finally:
        cache.close()
        if backend.cache_info().currsize:
            backend().close()
    return manifests


def curate_run(
    recipe: Recipe,
    out: Path,
    stages: tuple[str, ...] = ("curate", "dataset"),
    eval_personas: list[Persona] | None = None,
) -> dict:
    """The stages after generation, on a run's shards: no model, so `dramatis curate RUN` re-runs them alone."""
    if eval_personas is None:
        eval_personas = [p for path in recipe.split.eval_sets for p in load_seeds(path, "persona")]
    manifests = {}
    if "curate" in stages:
        dialogues, characters = load_records(out / "dialogues", Dialogue), load_records(out / "split", Character)
        manifests["curate"] = run_stage(
            curate_stage(recipe, dialogues, characters), dialogues, out / "curate", as_dict(recipe)
        )
    if "dataset" in stages:
        manifests["dataset"] = write_dataset(
            out / "dataset",
            load_records(out / "curate", Dialogue),
            load_records(out / "split", Character),
            eval_personas,
            threshold=recipe.split.similarity,
            same_name_threshold=recipe.split.same_name_similarity,
            shard_rows=recipe.chunk_size,
            info={"recipe": recipe.name, "model": recipe.backend.model},
        )
    return manifests


def run_recipe(out: Path, overrides: list[str] = ()) -> Recipe:
    """The recipe a run was made with (from its manifests), with `overrides` applied."""
    # The newest generation stage's recipe: re-curating starts from the recipe's own filters every time.
    for stage in reversed(STAGES[: STAGES.index("dialogues") + 1]):
        path = out / stage / "manifest.json"
        if path.exists():
            recipe = load_recipe(None, list(overrides), base=json.loads(path.read_text())["recipe"])
            recipe.out = str(out)  # the run may have moved since
            return recipe
    raise DramatisError(f"{out}: not a run folder (no stage manifest in it)")
