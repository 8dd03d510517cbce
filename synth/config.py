"""The one config mechanism of synth, train and eval: a recipe is a dataclass of `knob`s (a help string each)
in sections, loaded from YAML, then `key=value` overrides (synth/recipe.py, train/recipe.py, eval/recipe.py).

An unknown key is an error that names it and suggests the closest known key; a value of the wrong type names
the key and the expected type; a value outside the knob's `choices` or `min`/`max` names the key and what to
use. A section may define `check(self)` for rules across its fields (the role of `__post_init__` in TRL's
configs): `load_config` calls every section's once all overrides are applied, so a rule sees the values the run
will use, not those of the file an override replaced.
"""

import dataclasses
import difflib
import math
from dataclasses import field
from pathlib import Path

import yaml

from personas.errors import DramatisError


def knob(default, help: str, choices=None, min=None, max=None):
    """A recipe field: its default, its help line and the values it takes: one of `choices` (for a list knob,
    each element), a number from `min` to `max` (inclusive). `load_config` enforces them."""
    metadata = {"help": help, "choices": choices, "min": min, "max": max}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _keys(cls, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        out.append(prefix + f.name)
        if dataclasses.is_dataclass(f.type):
            out += _keys(f.type, prefix + f.name + ".")
    return out


def _coerce(key: str, value, default):
    kind = type(default)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and kind in (float, str):
        return kind(value)  # YAML reads `1` for a float knob and `123` for a name: both are meant as given
    if kind is float and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads `3e-4` (no dot) as a string; everyone writes learning rates so
        except ValueError:
            pass
    if type(value) is not kind:
        raise DramatisError(f"{key}: expected {kind.__name__}, got {value!r}")
    return value


def _listed(items: list, last: str) -> str:
    items = [str(i) for i in items]
    return ", ".join(items[:-1]) + last + items[-1] if len(items) > 1 else items[0]


def _refusal(key: str, value, f: dataclasses.Field) -> str | None:
    """Why the knob `f` does not take `value`, naming `key` and what to use instead; None if it does."""
    choices, low, high = (f.metadata.get(name) for name in ("choices", "min", "max"))
    if choices and isinstance(value, list):
        if any(v not in choices for v in value):
            return f"{key}={value}: use {_listed(choices, ' and/or ')}"
    elif choices and value not in choices:
        return f"{key}={value}: use {_listed([repr(c) for c in choices], ' or ')}"
    # YAML reads .nan and .inf, float() reads 'nan' and 'inf': no knob means them, and nan passes every bound.
    if isinstance(value, float) and not math.isfinite(value):
        return f"{key}={value}: give a finite number"
    if low is not None and value < low or high is not None and value > high:
        if high is None:
            return f"{key}={value}: at least {low}"
        return f"{key}={value}: at most {high}" if low is None else f"{key}={value}: use a value from {low} to {high}"
    return None


def check_recipe(section, prefix: str = "") -> None:
    """Every knob of `section` and its subsections within its choices and bounds, then each section's own
    `check()`, innermost first. `load_config` runs it last; call it on a recipe built or changed in code."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            check_recipe(value, prefix + f.name + ".")
        elif problem := _refusal(prefix + f.name, value, f):
            raise DramatisError(problem)
    if hasattr(section, "check"):
        section.check()


def _apply(obj, data: dict, where: str, prefix: str = "", root: type | None = None) -> None:
    names = {f.name: f for f in dataclasses.fields(obj)}
    root = root or type(obj)
    for key, value in data.items():
        full = prefix + str(key)
        if key not in names:
            close = difflib.get_close_matches(full, _keys(root), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise DramatisError(f"{where}: unknown recipe key '{full}'{hint}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise DramatisError(f"{where}: '{full}' is a section; give it keys, not {value!r}")
            _apply(current, value, where, full + ".", root)
        else:
            value = _coerce(f"{where}: {full}", value, current)
            if problem := _refusal(full, value, names[key]):
                # An override is its own `key=value`: the message starts with it, as the user typed it.
                raise DramatisError(problem if where == "override" else f"{where}: {problem}")
            setattr(obj, key, value)


def _nest(dotted: str, value) -> dict:
    head, _, rest = dotted.partition(".")
    return {head: _nest(rest, value) if rest else value}


def load_config(kind: type, path: str | Path | None, overrides: list[str] = (), base: dict | None = None):
    """The `kind` recipe (synth's `Recipe`, train's `TrainRecipe`, eval's `EvalRecipe`) at `path` (or `base`, a
    resolved recipe dict such as a manifest's) with `overrides` applied, then checked (`check_recipe`)."""
    recipe = kind()
    if base is not None:
        _apply(recipe, base, "recipe of the run")
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise DramatisError(f"{path}: recipe not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise DramatisError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
        if not isinstance(data, dict):
            raise DramatisError(f"{path}: a recipe is a mapping of keys, not {type(data).__name__}")
        _apply(recipe, data, str(path))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise DramatisError(f"override '{item}': write it as key=value, e.g. backend.model=tiny")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise DramatisError(
                f"override '{item}': the value is not valid YAML ({getattr(e, 'problem', e)})"
            ) from None
        _apply(recipe, _nest(key.strip(), value), "override")
    check_recipe(recipe)  # the cross-field rules, on the values the run will use
    return recipe
