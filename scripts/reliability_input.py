"""The reliability suite's bad-input part: broken files, recipes and run folders, each handed to
the real CLI as a user would.

    .venv/bin/python scripts/reliability.py only=bad_input

A refused input must give a non-zero exit (2), one line naming the thing to change (file:line, recipe
key, folder), no traceback, and nothing half-written: no shard, temporary file or manifest in a fresh out
folder, and a resumed run byte-for-byte as it was. An acceptable input (a BOM, CRLF, blank lines, a
repeated persona) must give the clean file's rows. All 60 cases take ~4 min on two busy cores (~2 s of
CLI start-up each, 24 s for `dramatis train`), so `reduced` (CI) runs the 30 marked representative: every
kind of input and every fix at least once, in ~2 min.
"""

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from scripts.reliability_case import Case
from scripts.reliability_input_checks import (
    E2,
    SEEDS_5K,
    Base,
    Try,
    command_refused,
    damaged_shard,
    disk_full,
    eval_missing_run,
    flip_bytes,
    overrides_refused,
    recipe_refused,
    rows_of,
    tampered_run,
    truncate,
    unwritable_out,
)
from scripts.reliability_input_files import FILE_TRIES

WIDTH = 90
TRIES = FILE_TRIES + [
    Try(
        "recipe: invalid YAML",
        E2 + "recipe:4",
        recipe_refused("name: x\nseeds:\n  sample: 5\n   field: persona\n", r"{recipe}:4: not valid YAML"),
        True,
    ),
    Try(
        "recipe: a list, not a mapping",
        E2 + "the recipe",
        recipe_refused("- seeds\n- out\n", r"{recipe}: a recipe is a mapping of keys, not list"),
        True,
    ),
    Try("recipe: file missing", E2 + "the recipe", recipe_refused(None, r"{recipe}: recipe not found"), True),
    Try(
        "recipe: wrong type in the file (chunk_size: many)",
        E2 + "recipe and key",
        recipe_refused("chunk_size: many\n", r"{recipe}: chunk_size: expected int, got 'many'"),
    ),
    Try(
        "recipe: unknown key in the file (sed: 3)",
        E2 + "the key and 'seed'",
        recipe_refused("sed: 3\n", r"{recipe}: unknown recipe key 'sed' \(did you mean 'seed'\?\)"),
    ),
    Try(
        "recipe: a section given a value (seeds: 5)",
        E2 + "the section",
        recipe_refused("seeds: 5\n", r"{recipe}: 'seeds' is a section"),
    ),
    Try(
        "override: wrong type (seeds.sample=abc)",
        E2 + "the key and type",
        overrides_refused("seeds.sample=abc", pattern=r"seeds\.sample: expected int, got 'abc'"),
        True,
    ),
    Try(
        "override: unknown key (seeds.sampel=5)",
        E2 + "it and 'seeds.sample'",
        overrides_refused(
            "seeds.sampel=5", pattern=r"unknown recipe key 'seeds\.sampel' \(did you mean 'seeds\.sample'\?\)"
        ),
        True,
    ),
    Try(
        "override: no key (=5)",
        E2 + "the override",
        overrides_refused("=5", pattern=r"override '=5': write it as key=value"),
    ),
    Try(
        "override: a language without prompts (profiles.language=ja)",
        E2 + "the key and the supported set",
        overrides_refused(
            "profiles.language=ja", pattern=r"profiles\.language=ja: use 'auto', 'en', 'zh', 'de' or 'ru'"
        ),
    ),
    Try(
        "override: split shares summing to 1.5 (split.train=0.9 split.validation=0.5)",
        E2 + "the shares and their sum",
        overrides_refused("split.train=0.9", "split.validation=0.5", pattern=r"the shares sum to 1\.5, not 1"),
    ),
    Try(
        "override: not a finite number (profiles.temperature=nan)",
        E2 + "the key",
        overrides_refused("profiles.temperature=nan", pattern=r"profiles\.temperature=nan: give a finite number"),
    ),
    Try(
        "override: a turn range without its end (dialogues.user_turns=2-:0.5)",
        E2 + "the key and the format",
        overrides_refused("dialogues.user_turns=2-:0.5", pattern=r"dialogues\.user_turns='2-:0\.5': write 'lo-hi"),
    ),
    Try(
        "override: a negative sample (seeds.sample=-1)",
        E2 + "the key and the bound",
        overrides_refused("seeds.sample=-1", pattern=r"seeds\.sample=-1: at least 0"),
    ),
    Try(
        "model: missing folder (/nonexistent)",
        E2 + "backend.model",
        overrides_refused(
            "backend.model=/nonexistent",
            command="profiles",
            pattern=r"backend\.model=/nonexistent: no model folder there",
        ),
        True,
    ),
    Try(
        "model: HF id not in the offline cache",
        E2 + "backend.model",
        overrides_refused(
            "backend.model=nobody/no-such-model",
            command="profiles",
            pattern=r"backend\.model=nobody/no-such-model: not a local folder",
        ),
    ),
    Try(
        "backend: unknown kind (tpu)",
        E2 + "backend.kind",
        overrides_refused("backend.kind=tpu", command="profiles", pattern=r"backend\.kind=tpu"),
        True,
    ),
    Try(
        "output: read-only folder" if os.geteuid() else "output: under a regular file (root ignores chmod)",
        E2 + "out=",
        unwritable_out,
        True,
    ),
    Try("output: disk full (16 KiB file-size limit)", E2 + "the shard, no .tmp left", disk_full, True),
    Try(
        "resume: corrupted data shard",
        "warning naming it; chunk redone; same rows",
        damaged_shard(flip_bytes, "does not match the sha256 in its manifest"),
        True,
    ),
    Try(
        "resume: data shard deleted",
        "warning naming it; chunk redone; same rows",
        damaged_shard(Path.unlink, "is missing"),
    ),
    Try(
        "resume: another recipe (seeds.sample 5 then 6)",
        E2 + "the folder; run unchanged",
        tampered_run(
            lambda run: None, r"{run}/seeds: holds a 'seeds' stage built from other inputs", "seeds.sample=6"
        ),
        True,
    ),
    Try(
        "resume: seeds file edited between runs",
        E2 + "the folder; run unchanged",
        tampered_run(
            lambda run: None, r"{run}/seeds: holds a 'seeds' stage built from other inputs", edit_source=True
        ),
        True,
    ),
    Try(
        "resume: truncated manifest.json",
        E2 + "the manifest; run unchanged",
        tampered_run(
            lambda run: truncate(run / "seeds" / "manifest.json"),
            r"{run}/seeds/manifest\.json: not a readable manifest",
        ),
        True,
    ),
    Try(
        "resume: cache.sqlite full of garbage",
        E2 + "the cache; run unchanged",
        tampered_run(
            lambda run: (run / "cache.sqlite").write_bytes(b"garbage!" * 512),
            r"{run}/cache\.sqlite: cannot open the request cache",
        ),
        True,
    ),
    Try(
        "curate: a folder that is not a run",
        E2 + "the folder",
        command_refused(["curate", "{folder}"], r"{folder}: not a run folder"),
        True,
    ),
    Try(
        "curate: a run with only its seeds stage",
        E2 + "the missing stage",
        command_refused(["curate", "{folder}"], r"{folder}/dialogues: no finished stage here", clean_run=True),
    ),
    Try(
        "show: a truncated manifest.json",
        E2 + "the manifest",
        command_refused(
            ["show", "{folder}/seeds"],
            r"{folder}/seeds/manifest\.json: not a readable manifest",
            clean_run=True,
            tamper=lambda run: truncate(run / "seeds" / "manifest.json"),
        ),
    ),
    Try(
        "report: a folder that is not a run",
        E2 + "the folder",
        command_refused(["report", "{folder}"], r"{folder}: no finished stage here"),
    ),
    Try(
        "publish --dry-run: a folder that is not a run",
        E2 + "the folder",
        command_refused(["publish", "{folder}", "--dry-run"], r"{folder}: not a run folder"),
    ),
    Try("eval: a recipe naming a missing run", E2 + "heldout.run", eval_missing_run, True),
    Try(
        "train: data= a folder that is not a dataset",
        E2 + "data=",
        command_refused(
            ["train", "{root}/train/recipes/demo-lora.yaml", "data={folder}", "out={folder}/train"],
            r"data={folder}: not a Dramatis dataset folder",
        ),
    ),
]


def prepare(out: Path) -> Base:
    """The part's folder wiped; the clean seeds file (12 real personas) and its seeds-stage rows."""
    shutil.rmtree(out, ignore_errors=True)
    # The seeds stage never loads the model, and a folder with a config.json and a tokenizer file passes the
    # up-front model check: no case depends on the Gemma folder being built, and none can start an engine by mistake.
    (out / "model").mkdir(parents=True)
    (out / "model" / "config.json").write_text("{}")
    (out / "model" / "tokenizer.json").write_text("{}")
    lines = SEEDS_5K.read_bytes().splitlines(keepends=True)[:12]
    base = Base(out, out / "model", out / "clean.jsonl", lines)
    base.clean.write_bytes(b"".join(lines))
    ran = base.seeds(base.clean, out / "clean-run")
    if ran.code:
        raise RuntimeError(f"the clean seeds file fails: {ran.stderr[-2000:]}")
    base.rows = rows_of(out / "clean-run")
    return base


def clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= WIDTH else text[: WIDTH - 1] + "…"


def bad_input_cases(out: Path, reduced: bool) -> Iterator[Case]:
    out = out.resolve()
    base = prepare(out)
    for t in TRIES:
        if reduced and not t.reduced:
            continue
        d = out / re.sub(r"[^a-z0-9]+", "-", t.case.lower()).strip("-")
        d.mkdir()
        try:
            observed, problems = t.check(base, d)
        except Exception as e:  # a broken case is a failed row, not a stopped suite
            observed, problems = f"{type(e).__name__}: {e}", ["the case itself failed"]
        observed = observed.replace(f"{d}/", "").replace(f"{out}/", "")  # the paths' tails say enough
        if problems:
            observed = "; ".join(problems) + " | " + observed
        yield Case(case=t.case, expected=t.expected, observed=clip(observed), passed=not problems, part="bad_input")
