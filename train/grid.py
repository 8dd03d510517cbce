"""Several training runs from one recipe, tabulated (Qianfan's six-run comparison: train/recipes/grid.yaml).

    .venv/bin/dramatis train train/recipes/grid.yaml

Each entry of `grid` is {name, overrides: [key=value, ...]} applied to the recipe; it trains into
`out/<name>` (resumable on its own with --resume) and `out/grid.md` compares them.
"""

from pathlib import Path

from synth.shards import write_atomic
from train.recipe import TrainRecipe, as_dict, load_train_recipe


def grid_recipes(recipe: TrainRecipe) -> list[TrainRecipe]:
    base = {**as_dict(recipe), "grid": []}
    runs = []
    for entry in recipe.grid:  # each a {name, overrides} (TrainRecipe.check)
        runs.append(
            load_train_recipe(
                None,
                [*entry.get("overrides", []), f"out={Path(recipe.out) / entry['name']}", f"name={entry['name']}"],
                base=base,
            )  # checked as it loads: a bad entry stops the grid before any run trains
        )
    return runs


def run_grid(recipe: TrainRecipe, resume: bool = False) -> list[dict]:
    from train.sft import run

    runs = grid_recipes(recipe)  # every entry checked before the first one trains
    results = [run(r, resume=resume and any(Path(r.out).glob("checkpoint-*"))) for r in runs]
    fmt = lambda x: f"{x:.4f}" if isinstance(x, float) else "–"  # noqa: E731
    lines = [
        "# Grid",
        "",
        "| run | method | lr | epochs | steps | final train loss | min validation loss | final validation loss "
        "| seconds | reading |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r, info in zip(runs, results, strict=False):
        lines.append(
            f"| {r.name} | {r.train.method} | {r.train.learning_rate:g} | {r.train.epochs:g} | {info['steps']} | "
            f"{fmt(info['final_train_loss'])} | {fmt(info['min_eval_loss'])} | {fmt(info['final_eval_loss'])} | "
            f"{info['seconds']:.0f} | {info['reading']} |"
        )
    Path(recipe.out).mkdir(parents=True, exist_ok=True)
    write_atomic(Path(recipe.out) / "grid.md", ("\n".join(lines) + "\n").encode())
    return results
