"""The `dramatis` command: one subcommand per stage.

.venv/bin/dramatis synth synth/recipes/demo.yaml backend.model=tiny seeds.sample=8 out=runs/tiny

This is the composition root: the one synth module that imports `train` and `eval` (inside the commands that
run them, so `dramatis synth` never loads their dependencies). Everywhere else the layers point one way,
personas ← synth ← train, eval, and train and eval do not import each other; tests/test_layering.py holds it.
"""

import gc
import json
import multiprocessing
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from personas.errors import DramatisError, Interrupted

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Dramatis: synthetic persona data for role-play models."
)
Recipe = Annotated[Path | None, typer.Argument(help="recipe YAML (default: built-in defaults)")]
Overrides = Annotated[list[str] | None, typer.Argument(help="key=value overrides, e.g. backend.model=tiny out=runs/x")]


def _fail(error: DramatisError) -> None:
    typer.secho(f"error: {error}", fg="red", err=True)
    raise typer.Exit(2)


def _summary(manifests: dict[str, dict], out: Path) -> None:
    spent = Counter()
    for stage, manifest in manifests.items():
        if stage == "dataset":
            continue
        counters = manifest["counters"]
        spent.update({k: v for k, v in counters.items() if k.endswith("_tokens") or k.startswith("requests_")})
        dropped = {k.removeprefix("dropped_"): v for k, v in counters.items() if k.startswith("dropped_")}
        why = ", ".join(f"{k} {v}" for k, v in dropped.items()) or "none"
        typer.echo(f"{stage:10s} kept {counters.get('kept', 0)}, dropped {sum(dropped.values())} ({why})")
    if spent:
        typer.echo(
            f"requests: {spent['requests_generated']} generated, {spent['requests_cached']} from cache; "
            f"tokens: {spent['prompt_tokens']} prompt ({spent['cached_prompt_tokens']} from the prefix cache), "
            f"{spent['output_tokens']} output"
            + (
                f"; reused from the cache: {spent['reused_prompt_tokens']} prompt, "
                f"{spent['reused_output_tokens']} output"
                if spent["requests_cached"]
                else ""
            )
        )
    dialogues = manifests.get("dialogues", {}).get("counters", {})
    output = dialogues.get("output_tokens", 0) + dialogues.get("reused_output_tokens", 0)
    if output:
        typer.echo(
            f"dialogues: {dialogues.get('kept_output_tokens', 0) / output:.0%} of output tokens in kept rows, "
            f"{dialogues.get('cached_prompt_tokens', 0) / max(dialogues.get('prompt_tokens', 0), 1):.0%} "
            "of prompt tokens from the prefix cache"
        )
    if "dataset" in manifests:
        info = manifests["dataset"]
        rows = ", ".join(
            f"{split} {v['rows']} rows / {v['characters']} characters" for split, v in info["splits"].items()
        )
        typer.echo(
            f"dataset    {out / 'dataset'}: {rows or 'no rows'}; leakage check passed "
            f"({info['leakage']['training_characters']} training vs {info['leakage']['heldout_characters']} "
            f"held-out characters, {info['leakage']['eval_personas']} eval personas)"
        )
    typer.echo(f"stages in {out}/<stage>/ (data-*.arrow, rejects-*.arrow, manifest.json)")


def _finish(out: Path, fmt: str) -> None:
    """The report and the folder `dramatis publish` would upload, after the dataset is (re)built."""
    from synth.publish import build_folder
    from synth.report import write_report

    typer.echo(f"report     {write_report(out)}")
    info = json.loads((out / "dataset" / "dataset_info.json").read_text())
    if not info.get("splits"):  # every row was rejected: the report says why, and there is nothing to upload
        typer.echo("publish    none: the dataset has no rows (see the report's reject reasons)")
        return
    typer.echo(
        f"publish    {build_folder(out, out / 'hub', fmt)} "
        f"(dry run: `dramatis publish {out} --repo user/name` uploads it)"
    )


def _recipe_args(recipe: Path | None, overrides: list[str] | None) -> tuple[Path | None, list[str]]:
    """`dramatis synth key=value`: no recipe file given, the first argument is an override."""
    overrides = list(overrides or [])
    # The key, not the file name: in `seeds.source=/data/x.jsonl` the '=' sits before the last '/'.
    key, sep, _ = str(recipe).partition("=")
    if recipe is not None and sep and "/" not in key and not recipe.exists():
        return None, [str(recipe), *overrides]
    return recipe, overrides


def _run(recipe: Path | None, overrides: list[str] | None, stages: tuple[str, ...]) -> None:
    from synth.pipeline import run_synth
    from synth.recipe import load_recipe

    recipe, overrides = _recipe_args(recipe, overrides)
    try:
        r = load_recipe(recipe, overrides)
        manifests = run_synth(r, stages)
        _summary(manifests, Path(r.out))
        if "dataset" in stages:
            _finish(Path(r.out), r.publish.format)
    except DramatisError as e:
        _fail(e)


@app.command()
def synth(recipe: Recipe = None, overrides: Overrides = None) -> None:
    """Run the whole pipeline of a recipe (seeds → profiles → split → prompts → dialogues → curate → dataset,
    then the report and the publish folder), resuming what a killed run left."""
    from synth.pipeline import STAGES

    _run(recipe, overrides, STAGES)


@app.command()
def seeds(recipe: Recipe = None, overrides: Overrides = None) -> None:
    """Load, normalize, dedup and sample the seed personas only."""
    _run(recipe, overrides, ("seeds",))


@app.command()
def profiles(recipe: Recipe = None, overrides: Overrides = None) -> None:
    """Seeds → character profiles (runs the seeds stage first if needed)."""
    _run(recipe, overrides, ("seeds", "profiles"))


@app.command()
def dialogues(recipe: Recipe = None, overrides: Overrides = None) -> None:
    """Everything up to the dialogues stage, without rebuilding the dataset folder."""
    _run(recipe, overrides, ("seeds", "profiles", "split", "prompts", "dialogues"))


RunFolder = Annotated[Path, typer.Argument(help="a run folder, e.g. runs/demo")]


@app.command()
def curate(run: RunFolder, overrides: Overrides = None) -> None:
    """Re-curate a finished run from its shards (filters, dedup, dataset, report), no model needed:
    `dramatis curate runs/demo curate.max_chars=2000 dedup.threshold=0.8`."""
    from synth.lock import run_lock
    from synth.pipeline import curate_run, run_recipe

    try:
        recipe = run_recipe(run, list(overrides or []))
        with run_lock(run):
            manifests = curate_run(recipe, run)
        _summary(manifests, run)
        _finish(run, recipe.publish.format)
    except DramatisError as e:
        _fail(e)


@app.command()
def report(run: RunFolder) -> None:
    """Write the run's data report (Markdown + PNG plots) into RUN/report/."""
    from synth.report import write_report

    try:
        typer.echo(write_report(run))
    except DramatisError as e:
        _fail(e)


@app.command()
def publish(
    run: RunFolder,
    repo: Annotated[str, typer.Option(help="Hub dataset repo, user/name (default: the recipe's publish.repo)")] = "",
    private: Annotated[bool, typer.Option(help="create the repo private")] = False,
    dry_run: Annotated[
        bool, typer.Option(help="only write RUN/hub/, the exact folder that would be uploaded")
    ] = False,
    format: Annotated[str, typer.Option(help="parquet (the Hub viewer reads it) or arrow")] = "",
) -> None:
    """Upload the run's dataset (dialogues + profiles configs, card, plots) to the Hugging Face Hub; a rerun
    after a failed upload skips the files already there. The token comes from HF_TOKEN or `hf auth login`."""
    from synth.pipeline import run_recipe
    from synth.publish import publish as upload

    try:
        recipe = run_recipe(run)
        repo = repo or recipe.publish.repo
        if not repo:
            raise DramatisError("no repo: give --repo user/name (or set publish.repo in the recipe)")
        folder = upload(
            run, repo, private=private or recipe.publish.private, dry_run=dry_run, fmt=format or recipe.publish.format
        )
    except DramatisError as e:
        _fail(e)
    typer.echo(
        f"{folder} "
        + ("written (dry run: nothing uploaded)" if dry_run else f"uploaded to https://huggingface.co/datasets/{repo}")
    )


@app.command()
def train(
    recipe: Recipe = None,
    overrides: Overrides = None,
    resume: Annotated[bool, typer.Option(help="continue from the last checkpoint in the recipe's out folder")] = False,
    push: Annotated[
        str | None,
        typer.Option(
            help="upload the trained model to this Hub repo (user/name); token from HF_TOKEN or `hf auth login`"
        ),
    ] = None,
    private: Annotated[bool, typer.Option(help="with --push: create the repo private")] = False,
) -> None:
    """Fine-tune on a Dramatis dataset with TRL (LoRA or full):
    `dramatis train train/recipes/demo-lora.yaml [--push user/name]`."""
    from synth.hub import check_repo, hub_token
    from train.recipe import load_train_recipe
    from train.sft import run

    recipe, overrides = _recipe_args(recipe, overrides)
    try:
        loaded = load_train_recipe(recipe, overrides)
        token = None
        if push is not None:  # before training: a missing token or a bad repo id must not cost a training run
            if loaded.grid:
                raise DramatisError("--push: a grid trains several models; push one of its runs with its own recipe")
            check_repo(push, "--push")
            token = hub_token("no --push")
        if loaded.grid:
            from train.grid import run_grid

            run_grid(loaded, resume=resume)
            typer.echo(f"grid: {Path(loaded.out) / 'grid.md'}")
            return
        info = run(loaded, resume=resume)
    except DramatisError as e:
        _fail(e)
    losses = (
        f"train loss {info['first_train_loss']:.3f} → {info['final_train_loss']:.3f}"
        if info["final_train_loss"] is not None
        else ""
    )
    if info["final_eval_loss"] is not None:
        first = info["base_eval_loss"] or info["first_eval_loss"]
        losses += f"; validation loss {first:.3f} → {info['final_eval_loss']:.3f}"
    typer.echo(
        f"trained {info['steps']} steps in {info['seconds']:.0f} s on {info['train_rows']} rows "
        f"({info['supervised_tokens']} supervised tokens); {losses}"
    )
    typer.echo(f"reading: {info['reading']}")
    typer.echo(
        f"weights {info['weights']}"
        + (f"; merged model {info['merged']}" if info.get("merged") else "")
        + f"; curve {Path(info['recipe']['out']) / 'loss.png'}"
    )
    if push is not None:
        from train.push import push as upload

        try:
            folder = upload(Path(loaded.out), push, token, private=private)
        except DramatisError as e:
            _fail(e)
        typer.echo(f"pushed {folder} to https://huggingface.co/{push}")


@app.command("eval")
def evaluate(recipe: Recipe = None, overrides: Overrides = None) -> None:
    """Evaluate models on characters they never trained on (held-out characters, PersonaGym personas): LLM-judge
    rubric scores and GSB, judge-free metrics, latency; `dramatis eval eval/recipes/demo.yaml` writes OUT/report/."""
    from eval.recipe import load_eval_recipe
    from eval.run import run_eval

    recipe, overrides = _recipe_args(recipe, overrides)
    try:
        report = run_eval(load_eval_recipe(recipe, overrides))
    except DramatisError as e:
        _fail(e)
    headline = json.loads((report.parent / "report.json").read_text()).get("headline", [])
    for line in headline:
        typer.echo(line)
    typer.echo(f"report {report}")


@app.command("prepare-model")
def prepare_model() -> None:
    """Build the offline default model folder (Gemma 3 270M) once; prints its path."""
    from synth.models import prepare_gemma

    typer.echo(prepare_gemma())


@app.command()
def show(stage_dir: Path) -> None:
    """Print a stage folder's counters and chunk list (e.g. runs/demo/profiles)."""
    from synth.runner import read_manifest

    try:
        manifest = read_manifest(stage_dir)
    except DramatisError as e:
        _fail(e)
    if not manifest:
        _fail(DramatisError(f"{stage_dir}: no manifest.json here"))
    typer.echo(
        json.dumps({k: manifest[k] for k in ("stage", "complete", "inputs", "counters")}, indent=2, ensure_ascii=False)
    )
    typer.echo(f"{len(manifest['chunks'])} chunks, {sum(c['rows'] for c in manifest['chunks'])} rows")


def _interrupt(signum, frame) -> None:
    # A second Ctrl-C while the first unwinds (closing the engine takes seconds) ends the process at once.
    for again in (signal.SIGINT, signal.SIGTERM):
        signal.signal(again, lambda n, f: os._exit(128 + n))
    raise Interrupted(signum)


def main() -> None:
    # Ctrl-C (SIGINT to the terminal's whole process group) and SIGTERM (kill, a scheduler's timeout) unwind the
    # same way: the stage in progress stops with its chunk unfinished (nothing from the shutdown becomes a reject
    # or a cache entry), the `finally` blocks close the cache and shut vLLM's engine down, no later stage starts.
    # Seen without this: a killed run left its engine core spinning a CPU core.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    stopped_by = 0
    try:
        app(sys.argv[1:])
    except Interrupted as e:
        stopped_by = e.signum
    finally:
        # A signal during the engine's start-up comes before the backend object exists to close it.
        for child in multiprocessing.active_children():
            child.terminate()
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
    if stopped_by:
        # Out of the except block, the interrupted frames are gone and their progress bars closed: the message
        # is then the last line the user sees.
        gc.collect()
        name = signal.Signals(stopped_by).name
        typer.secho(
            f"interrupted ({name}): the chunks finished so far are kept; run the same command again to resume",
            fg="red",
            err=True,
        )
        sys.exit(128 + stopped_by)


if __name__ == "__main__":
    main()
