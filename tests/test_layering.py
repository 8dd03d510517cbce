"""The layering rule, read from the source: personas ← synth ← train, eval (an arrow points at what a package may
import). personas imports none of the others; synth imports train and eval only in synth/cli.py, the composition
root; train and eval do not import each other; and no module imports another module's `_private` name (a name
another module needs is public in the module that owns it)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("personas", "synth", "train", "eval")
FORBIDDEN = {"personas": {"synth", "train", "eval"}, "synth": {"train", "eval"}, "train": {"eval"}, "eval": {"train"}}
COMPOSITION_ROOTS = {"synth/cli.py"}


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def violations(root: Path) -> list[str]:
    """Every import under `root`'s packages that breaks the rule, as 'file:line imports what'."""
    found = []
    for path in sorted(p for package in PACKAGES for p in (root / package).rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        module = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        # The package a relative import counts from: the module's own for __init__.py, else its parent.
        here = module.split(".")[: None if path.name == "__init__.py" else -1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), rel)):  # lazy imports in functions too
            if isinstance(node, ast.Import):
                targets = [(alias.name, "") for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(here[: len(here) - node.level + 1]) if node.level else ""
                targets = [(".".join(filter(None, [base, node.module])), alias.name) for alias in node.names]
            else:
                continue
            for target, name in targets:
                parts = target.split(".")
                if parts[0] in FORBIDDEN[rel.split("/")[0]] and rel not in COMPOSITION_ROOTS:
                    found.append(f"{rel}:{node.lineno} imports {target}")
                if parts[0] in PACKAGES and target != module and any(map(private, [*parts, name])):
                    found.append(f"{rel}:{node.lineno} imports the private {target}.{name}".rstrip("."))
    return found


def test_the_packages_import_only_down_the_layers_and_no_private_names():
    assert violations(ROOT) == []


def test_the_check_finds_planted_backward_and_private_imports(tmp_path):
    planted = {
        "personas/bad.py": "from synth.pipeline import STAGES\n",
        "synth/bad.py": "def f():\n    import eval.run\n",
        "synth/cli.py": "def train():\n    from train.sft import run\n",  # the composition root may
        "train/bad.py": "from eval.stats import gsb\n",
        "eval/bad.py": "from synth.report import _axes\n",
        "eval/sub/bad.py": "from ..stats import _helper\n",
        "eval/good.py": "from synth.plots import axes\nfrom personas.records import name_key\n",
    }
    for rel, text in planted.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert violations(tmp_path) == [
        "eval/bad.py:1 imports the private synth.report._axes",
        "eval/sub/bad.py:1 imports the private eval.stats._helper",
        "personas/bad.py:1 imports synth.pipeline",
        "synth/bad.py:2 imports eval.run",
        "train/bad.py:1 imports eval.stats",
    ]
