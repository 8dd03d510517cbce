"""The `dramatis` command: one subcommand per stage.

    .venv/bin/dramatis synth synth/recipes/demo.yaml backend.model=tiny seeds.sample=8
"""

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from personas.errors import DramatisError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Dramatis: synthetic persona data for role-play models.")
Recipe = Annotated[Path | None, typer.Argument(help="recipe YAML (default: built-in defaults)")]
Overrides = Annotated[list[str] | None, typer.Argument(help="key=value overrides, e.g. backend.model=tiny out=runs/x")]


def _fail(error: DramatisError) -> None:
    typer.secho(f"error: {error}", fg="red", err=True)
    raise typer.Exit(2)


def _summary(manifests: dict[str, dict], out: Path) -> None:
    for stage, manifest in manifests.items():
        counters = manifest["counters"]
        dropped = {k.removeprefix("dropped_"): v for k, v in counters.items() if k.startswith("dropped_")}
        why = ", ".join(f"{k} {v}" for k, v in dropped.items()) or "none"
        typer.echo(f"{stage:9s} kept {counters.get('kept', 0)}, dropped {sum(dropped.values())} ({why})")
        typer.echo(f"          shards {out / stage}/data-*.arrow, rejects {out / stage}/rejects-*.arrow, manifest {out / stage}/manifest.json")
    profiles = manifests.get("profiles", {}).get("counters", {})
    if profiles:
        typer.echo(f"requests: {profiles.get('requests_generated', 0)} generated, {profiles.get('requests_cached', 0)} from cache; "
                   f"tokens: {profiles.get('prompt_tokens', 0)} prompt, {profiles.get('output_tokens', 0)} output")


def _run(recipe: Path | None, overrides: list[str] | None, stages: tuple[str, ...]) -> None:
    from synth.pipeline import run_synth
    from synth.recipe import load_recipe

    overrides = list(overrides or [])
    if recipe is not None and "=" in recipe.name and not recipe.exists():
        recipe, overrides = None, [str(recipe), *overrides]  # `dramatis synth key=value`: no recipe file given
    try:
        r = load_recipe(recipe, overrides)
        manifests = run_synth(r, stages)
    except DramatisError as e:
        _fail(e)
    _summary(manifests, Path(r.out))


@app.command()
def synth(recipe: Recipe = None, overrides: Overrides = None) -> None:
    """Run the whole pipeline of a recipe (seeds → profiles), resuming what a killed run left."""
    _run(recipe, overrides, ("seeds", "profiles"))


@app.command()
def seeds(recipe: Recipe = None, overrides: Overrides = None) -> None:
    """Load, normalize, dedup and sample the seed personas only."""
    _run(recipe, overrides, ("seeds",))


@app.command()
def profiles(recipe: Recipe = None, overrides: Overrides = None) -> None:
    """Seeds → character profiles (runs the seeds stage first if needed)."""
    _run(recipe, overrides, ("seeds", "profiles"))


@app.command("prepare-model")
def prepare_model() -> None:
    """Build the offline default model folder (Gemma 3 270M) once; prints its path."""
    from synth.models import prepare_gemma

    typer.echo(prepare_gemma())


@app.command()
def show(stage_dir: Path) -> None:
    """Print a stage folder's counters and chunk list (e.g. runs/demo/profiles)."""
    path = stage_dir / "manifest.json"
    if not path.exists():
        _fail(DramatisError(f"{stage_dir}: no manifest.json here"))
    manifest = json.loads(path.read_text())
    typer.echo(json.dumps({k: manifest[k] for k in ("stage", "complete", "inputs", "counters")}, indent=2, ensure_ascii=False))
    typer.echo(f"{len(manifest['chunks'])} chunks, {sum(c['rows'] for c in manifest['chunks'])} rows")


def main() -> None:
    app(sys.argv[1:])


if __name__ == "__main__":
    main()
