"""`dramatis eval`: questions → every model's replies → every judge's scores and GSB verdicts → the report.

    .venv/bin/dramatis eval eval/recipes/demo.yaml      # = make eval, after make synth && make train

Each step is a stage of the runner (Arrow shards, manifest, rejects with reasons) under OUT/, and every model
request goes through OUT/cache.sqlite, so a killed evaluation resumes and a finished one re-renders for free.
One engine at a time: on a small machine an idle vLLM engine still spins a core and holds its memory.
"""

import dataclasses
import json
import time
from pathlib import Path

from eval.judge import TEMPLATE, judgements_stage, verdicts_stage
from eval.personagym import Question, load_personagym, load_rubrics
from eval.questions import (
    example_questions,
    heldout_characters,
    heldout_items,
    personagym_items,
    question_jobs,
    questions_stage,
    unused_prompts,
)
from eval.recipe import EvalRecipe, as_dict, labelled
from eval.records import Judgement, Reply, Verdict
from eval.report import write_report
from eval.responder import measure_latency, model_identity, replies_stage
from personas.records import Character
from synth.backend import open_backend
from synth.cache import RequestCache
from synth.pipeline import profiles_stage
from synth.quality import name_index
from synth.recipe import BackendConfig
from synth.runner import load_records, run_stage
from synth.shards import check_writable, write_atomic


class Engines:
    """The one open backend; asking for another closes it first (a second start costs less than two idle engines)."""

    def __init__(self):
        self.key, self.backend = None, None

    def get(self, config: BackendConfig, name: str):
        key = json.dumps([dataclasses.asdict(config), name], sort_keys=True)
        if key != self.key:
            self.close()
            self.backend, self.key = open_backend(config, name), key
        return self.backend

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend, self.key = None, None


def _latency(folder: Path, backend, items, recipe: EvalRecipe, model_id: str) -> dict:
    """The model's latency, measured once per model identity (timings are never cached with the replies)."""
    count = min(recipe.responder.latency_probes, len(items))
    path = folder / "latency.json"
    if path.exists():
        known = json.loads(path.read_text())
        if known.get("model_id") == model_id and known.get("requests", 0) == count:
            return known
    if not count:
        return {"model_id": model_id}
    measured = {**measure_latency(backend(), items, recipe.responder, count), "model_id": model_id}
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(measured, indent=2).encode())
    return measured


def _dropped(manifest: dict | None) -> dict:
    counters = (manifest or {}).get("counters", {})
    return {k.removeprefix("dropped_"): v for k, v in counters.items() if k.startswith("dropped_")}


def _spent(*manifests: dict | None) -> dict:
    """Requests and tokens a judge's stages cost, including what earlier runs paid for and the cache kept."""
    total = {"requests": 0, "prompt_tokens": 0, "output_tokens": 0}
    for m in manifests:
        c = (m or {}).get("counters", {})
        total["requests"] += c.get("requests_generated", 0) + c.get("requests_cached", 0)
        total["prompt_tokens"] += c.get("prompt_tokens", 0) + c.get("reused_prompt_tokens", 0)
        total["output_tokens"] += c.get("output_tokens", 0) + c.get("reused_output_tokens", 0)
    return total


def run_eval(recipe: EvalRecipe) -> Path:
    """Run the evaluation `recipe` describes; returns the report's path."""
    began, out, bench = time.perf_counter(), Path(recipe.out), recipe.benchmarks
    models, judges = labelled(recipe.models, "models"), labelled(recipe.judge.models, "judge.models")
    # Everything read is loaded and checked first: bad input fails before a model loads or a file is written.
    held, pg = recipe.heldout, recipe.personagym
    rubrics = load_rubrics(Path(pg.rubrics))
    asked = list(load_personagym(Path(pg.path), light=pg.light, limit=pg.limit)) if "personagym" in bench else []
    if "heldout" in bench:
        characters = heldout_characters(Path(held.run), held.splits, held.characters)
        prompts = unused_prompts(Path(held.run), held.prompts, recipe.seed, held.max_chars)
        examples = example_questions(Path(pg.path)) if held.probes else {}
    model_ids = {label: model_identity(m, recipe.backend.kind, recipe.backend.base_url) for label, m in models.items()}
    judging = recipe.judge.backend
    judge_ids = {
        label: f"{model_identity(m, judging.kind, judging.base_url)} ({judging.kind}, {TEMPLATE})"
        for label, m in judges.items()
    }
    generator_id = model_identity(recipe.generator.model, recipe.generator.kind, recipe.generator.base_url)
    check_writable(out)
    resolved, engines, cache = as_dict(recipe), Engines(), RequestCache(out / "cache.sqlite")
    manifests, meta = (
        {},
        {"name": recipe.name, "reference": next(iter(models)), "examples": recipe.examples, "benchmarks": {}},
    )

    def engine(config: BackendConfig, model: str, name: str):
        return lambda: engines.get(dataclasses.replace(config, model=model), name)

    generator = engine(recipe.generator, recipe.generator.model, generator_id)
    try:
        items = []
        if "heldout" in bench:
            jobs, ready = question_jobs(characters, prompts, held.probes)
            stage = questions_stage(
                recipe.seed,
                recipe.chunk_size,
                generator,
                cache,
                characters,
                rubrics,
                examples,
                n=held.probes,
                max_chars=held.max_chars,
                temperature=held.temperature,
                max_attempts=held.max_attempts,
                model=generator_id,
            )
            manifests["questions"] = run_stage(stage, jobs, out / "heldout" / "questions", resolved)
            written = load_records(out / "heldout" / "questions", Question)
            items += heldout_items(characters, [q for c in characters for q in ready[c.id]] + written)
            meta["benchmarks"]["heldout"] = {
                "note": f"{len(characters)} characters ({', '.join(held.splits)} split of {held.run}), "
                f"{len(prompts)} unused instruction prompts each"
                + (
                    f", {held.probes} probing questions per PersonaGym task written by {recipe.generator.model}"
                    if held.probes
                    else ""
                )
            }
        if "personagym" in bench:
            profiles = {}
            if pg.persona == "profile":
                stage = profiles_stage(
                    recipe.profiles,
                    generator,
                    cache,
                    seed=recipe.seed,
                    chunk_size=recipe.chunk_size,
                    model=recipe.generator.model,
                    kind=recipe.generator.kind,
                )
                stage = dataclasses.replace(stage, rebuild=True)
                manifests["profiles"] = run_stage(
                    stage, [p for p, _ in asked], out / "personagym" / "profiles", resolved
                )
                profiles = {c.persona_id: c for c in load_records(out / "personagym" / "profiles", Character)}
            items += personagym_items(asked, profiles)
            meta["benchmarks"]["personagym"] = {
                "note": f"{len(asked)} personas of {pg.path}, {'PersonaGym-Light' if pg.light else 'all questions'}; "
                f"{len(profiles)} expanded into profiles by {recipe.generator.model}, "
                f"{len(asked) - len(profiles)} one-line"
            }
        names = {b: name_index(sorted({i.character for i in items if i.benchmark == b})) for b in bench}
        for b, info in meta["benchmarks"].items():
            mine = [i for i in items if i.benchmark == b]
            info.update(items=len(mine), characters=len({i.character_id for i in mine}), seeds=recipe.responder.seeds)

        replies, latency = {}, {}
        for label, model in models.items():
            backend, folder = engine(recipe.backend, model, model_ids[label]), out / "replies" / label
            latency[label] = _latency(folder, backend, items, recipe, model_ids[label])
            manifests[f"replies {label}"] = m = run_stage(
                replies_stage(label, model_ids[label], backend, cache, recipe.responder, names, recipe.chunk_size),
                items,
                folder,
                resolved,
            )
            replies[label] = load_records(folder, Reply)
            generated = m["counters"].get("output_tokens", 0)
            # Kept with the timings, from the largest generation seen: a resumed run that makes a few replies
            # would otherwise report a small batch's throughput as the model's.
            if m["counters"].get("generate_ms") and generated > latency[label].get("batch_output_tokens", 0):
                latency[label].update(
                    batch_output_tokens=generated, batch_output_tok_s=generated / (m["counters"]["generate_ms"] / 1000)
                )
                write_atomic(folder / "latency.json", json.dumps(latency[label], indent=2).encode())

        every, (reference, *others) = [r for rs in replies.values() for r in rs], list(models)
        judgements, verdicts, judge_tokens = [], [], {}
        for label, model in judges.items():
            backend, folder = engine(recipe.judge.backend, model, judge_ids[label]), out / "judge" / label
            scored = compared = None
            if recipe.judge.rubrics:
                scored = run_stage(
                    judgements_stage(
                        label, judge_ids[label], backend, cache, recipe.judge, rubrics, recipe.chunk_size
                    ),
                    every,
                    folder / "scores",
                    resolved,
                )
                judgements += load_records(folder / "scores", Judgement)
            if recipe.judge.gsb and others:
                pairs = {(r.item_id, r.seed): r for r in replies[reference]}
                compared = run_stage(
                    verdicts_stage(label, judge_ids[label], backend, cache, recipe.judge, pairs, recipe.chunk_size),
                    [r for o in others for r in replies[o]],
                    folder / "gsb",
                    resolved,
                )
                verdicts += load_records(folder / "gsb", Verdict)
            manifests[f"judge {label}"], manifests[f"gsb {label}"] = scored, compared
            judge_tokens[label] = _spent(scored, compared)
    finally:
        engines.close()
        cache.close()
    meta.update(
        models={label: {"model_id": model_ids[label], "kind": recipe.backend.kind} for label in models},
        judges={
            label: {"model_id": judge_ids[label], "kind": recipe.judge.backend.kind, "temperature": 0.0}
            for label in judges
        },
        latency=latency,
        judge_tokens=judge_tokens,
        seconds=time.perf_counter() - began,
        rejects={stage: d for stage, m in manifests.items() if (d := _dropped(m))},
    )
    return write_report(out, every, judgements, verdicts, meta)
