"""The reliability suite's bad-input part: broken files, recipes and run folders, each handed to
the real CLI as a user would.

    .venv/bin/python scripts/reliability.py only=bad_input

A refused input must give a non-zero exit (2), one line naming the thing to change (file:line, recipe
key, folder), no traceback, and nothing half-written: no shard, temporary file or manifest in a fresh out
folder, and a resumed run byte-for-byte as it was. An acceptable input (a BOM, CRLF, blank lines, a
repeated persona) must give the clean file's rows. All 55 cases take ~4 min on two busy cores (~2 s of
CLI start-up each, 24 s for `dramatis train`), so `reduced` (CI) runs the 30 marked representative: every
kind of input and every fix at least once, in ~2 min.
"""

import hashlib
import os
import re
import resource
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from personas.records import Persona
from scripts import cli_process
from scripts.reliability_case import Case
from synth.runner import Reject, load_records, shard_paths
from synth.shards import read_shard

ROOT = Path(__file__).resolve().parent.parent
SEEDS_5K = ROOT.parent / "shared" / "data" / "seeds" / "personahub_tool_5k.jsonl"
# What a failed run must not leave in a fresh out folder (pathlib's `*` also matches `.data-00000.arrow.tmp`).
HALF_WRITTEN = ("*.arrow", "*.tmp", "manifest.json", "dataset_info.json")
WIDTH = 90


@dataclass
class Ran:
    code: int
    stderr: str

    @property
    def message(self) -> str:
        """The line a user reads: the CLI's `error:` line, else stderr's last line (a traceback's last)."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return ([line for line in lines if line.startswith("error:")] or lines or ["(nothing on stderr)"])[-1]

    @property
    def traceback(self) -> bool:
        return "Traceback" in self.stderr


def _file_size_limit(limit: int) -> None:
    # Ignoring SIGXFSZ turns a write past the limit into OSError EFBIG, as a full disk gives ENOSPC.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def dramatis(*args, limit: int | None = None) -> Ran:
    argv, env = cli_process.command(*map(str, args))  # cli_process.run, plus the file size limit
    proc = subprocess.run(
        argv,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        preexec_fn=(lambda: _file_size_limit(limit)) if limit else None,
    )
    return Ran(proc.returncode, proc.stderr)


@dataclass
class Base:
    root: Path  # the part's out folder: messages are shown relative to it
    model: Path  # a stand-in model folder, see prepare()
    clean: Path  # 12 real personas
    lines: list[bytes]  # the clean file's lines
    rows: list = field(default_factory=list)  # (id, text) of the clean file's seeds stage

    def seeds(
        self,
        source: Path,
        out: Path,
        *extra,
        command: str = "seeds",
        recipe: Path | None = None,
        limit: int | None = None,
    ) -> Ran:
        """`dramatis <command> [recipe] key=value...`; `extra` overrides come last and so win."""
        head = [command] + ([recipe] if recipe else [])
        return dramatis(
            *head, f"backend.model={self.model}", f"seeds.source={source}", f"out={out}", *extra, limit=limit
        )


def q(path: Path) -> str:  # a path inside a message pattern
    return re.escape(str(path))


def snapshot(folder: Path) -> dict[str, str]:
    return (
        {
            p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        if folder.exists()
        else {}
    )


def changed(before: dict[str, str], folder: Path) -> list[str]:
    after = snapshot(folder)
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def half_written(folder: Path) -> list[str]:
    return (
        sorted({p.relative_to(folder).as_posix() for pattern in HALF_WRITTEN for p in folder.rglob(pattern)})
        if folder.exists()
        else []
    )


def rows_of(run: Path) -> list[tuple[str, str]]:
    return [(p.id, p.text) for p in load_records(run / "seeds", Persona)]


def rejects_of(run: Path) -> list[Reject]:
    return [
        Reject.model_validate(r) for p in shard_paths(run / "seeds", rejects=True) for r in read_shard(p).to_pylist()
    ]


def crashed(ran: Ran) -> list[str]:
    return [p for p, bad in ((f"exit {ran.code}", ran.code != 0), ("a traceback", ran.traceback)) if bad]


def refusal(ran: Ran, pattern: str, out: Path, before: dict | None = None) -> tuple[str, list[str]]:
    """Exit non-zero, a message matching `pattern`, and `out` as it was: free of half-written files when it
    was fresh (`before` None), else byte-for-byte the snapshot `before`."""
    problems = [
        p
        for p, bad in (
            ("exit 0", ran.code == 0),
            ("a traceback", ran.traceback),
            ("the message does not name it", not re.search(pattern, ran.message)),
        )
        if bad
    ]
    left = half_written(out) if before is None else changed(before, out)
    if left:
        problems.append(f"{'left' if before is None else 'changed'} {left[0]}")
    return f"exit {ran.code}: {ran.message.removeprefix('error: ')}", problems


def put(lines: list[bytes], number: int, row: bytes) -> bytes:
    """The clean file with `row` as line `number`."""
    return b"".join(lines[: number - 1] + [row + b"\n"] + lines[number - 1 :])


def write_input(path: Path, content, lines: list[bytes]) -> Path:
    if content == "dir":
        path.mkdir()
    elif content is not None:  # None: the file is missing
        path.write_bytes(content(lines))
    return path


def seeds_refused(name: str, content, pattern: str):
    """`dramatis seeds` on a seeds file `content(clean lines)` ("dir": a folder; None: no file): refused."""

    def check(base: Base, d: Path):
        src = write_input(d / name, content, base.lines)
        return refusal(base.seeds(src, d / "run"), pattern.format(src=q(src)), d / "run")

    return check


def seeds_accepted(content, reject: tuple[str, int, int] | None = None):
    """Accepted: exit 0 and the clean file's rows; `reject` = (reason, line, line it repeats or 0) is the one
    row the rejects shard must hold, with a detail naming those lines."""

    def check(base: Base, d: Path):
        src = write_input(d / "seeds.jsonl", content, base.lines)
        ran = base.seeds(src, d / "run")
        problems = crashed(ran)
        if problems:
            return f"exit {ran.code}: {ran.message}", problems
        rows, rejects = rows_of(d / "run"), rejects_of(d / "run")
        if rows != base.rows:
            problems.append(f"{len(rows)} rows, not the clean file's {len(base.rows)}")
        got, want = [(r.reason, r.detail, r.duplicate_of) for r in rejects], []
        if reject:
            reason, line, of = reject
            want = [
                (
                    reason,
                    f"{src}:{line}" + (f" repeats {src} line {of}" if of else ""),
                    base.rows[of - 1][0] if of else "",
                )
            ]
        if got != want:
            problems.append(f"rejects {got}")
        said = f"; reject {got[0][0]}: {got[0][1]}" if got else ""
        return f"exit 0, the clean file's {len(rows)} rows{said}", problems

    return check


def instructions_refused(content: bytes | None, pattern: str):
    """`dramatis synth` with `instructions.sources=[FILE]`: refused before the model or any file."""

    def check(base: Base, d: Path):
        src = d / "instructions.jsonl"
        if content is not None:
            src.write_bytes(content)
        ran = base.seeds(base.clean, d / "run", f"instructions.sources=[{src}]", command="synth")
        return refusal(ran, pattern.format(src=q(src)), d / "run")

    return check


def recipe_refused(text: str | None, pattern: str):
    """`dramatis seeds recipe.yaml` with the recipe `text` (None: no such file): refused."""

    def check(base: Base, d: Path):
        path = d / "recipe.yaml"
        if text is not None:
            path.write_text(text)
        return refusal(base.seeds(base.clean, d / "run", recipe=path), pattern.format(recipe=q(path)), d / "run")

    return check


def overrides_refused(*overrides: str, command: str = "seeds", pattern: str):
    def check(base: Base, d: Path):
        return refusal(base.seeds(base.clean, d / "run", *overrides, command=command), pattern, d / "run")

    return check


def unwritable_out(base: Base, d: Path):
    if os.geteuid() == 0:  # root writes through chmod 555: a path under a regular file fails for everyone
        (d / "file").write_text("not a folder")
        out = d / "file" / "run"
    else:
        (d / "ro").mkdir()
        (d / "ro").chmod(0o555)
        out = d / "ro" / "run"
    try:
        return refusal(base.seeds(base.clean, out), rf"out={q(out)}: cannot write there", out)
    finally:
        if (d / "ro").exists():
            (d / "ro").chmod(0o755)  # so the next suite run can wipe it


def disk_full(base: Base, d: Path):
    """A 16 KiB file-size limit stands in for a full disk: the 200-row data shard cannot be written."""
    src, run = d / "seeds.jsonl", d / "run"
    src.write_bytes(b"".join(SEEDS_5K.read_bytes().splitlines(keepends=True)[:200]))
    ran = base.seeds(src, run, limit=16 << 10)
    return refusal(ran, rf"{q(run / 'seeds' / 'data-00000.arrow')}: cannot write \(File too large\)", run)


def fresh_run(base: Base, d: Path, *extra, source: Path | None = None) -> Path:
    run = d / "run"
    ran = base.seeds(source or base.clean, run, *extra)
    if ran.code:
        raise RuntimeError(f"the first run failed: {ran.message}")
    return run


def flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


def damaged_shard(damage: Callable[[Path], None], says: str):
    """Relaunching after `damage` to a finished run's shard: a warning naming it, the chunk redone, the run
    byte-for-byte the undamaged one (the seeds stage is deterministic)."""

    def check(base: Base, d: Path):
        run = fresh_run(base, d)
        before, shard = snapshot(run), run / "seeds" / "data-00000.arrow"
        damage(shard)
        ran = base.seeds(base.clean, run)
        warning = f"warning: {shard} {says}; chunk 0 is redone"
        problems = crashed(ran) + ([] if warning in ran.stderr else ["no warning naming the shard"])
        if diff := changed(before, run):
            problems.append(f"{diff[0]} differs from the undamaged run")
        said = next((line for line in ran.stderr.splitlines() if line.startswith("warning:")), "no warning")
        return f"exit {ran.code}, run identical again; {said}", problems

    return check


def tampered_run(tamper: Callable[[Path], None], pattern: str, *relaunch: str, edit_source: bool = False):
    """A finished run, then `tamper(run)` (or an edited seeds file), relaunched with `relaunch` overrides:
    refused with a message matching `pattern` ({run} is the run folder), the run left as it was."""

    def check(base: Base, d: Path):
        src = d / "seeds.jsonl"
        shutil.copy(base.clean, src)
        run = fresh_run(base, d, source=src)
        tamper(run)
        if edit_source:
            src.write_bytes(put(base.lines[:-1], 5, b'{"persona": "A lighthouse keeper who writes to strangers"}'))
        before = snapshot(run)
        return refusal(base.seeds(src, run, *relaunch), pattern.format(run=q(run)), run, before)

    return check


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def command_refused(
    command: list, pattern: str, clean_run: bool = False, tamper: Callable[[Path], None] | None = None
):
    """Another subcommand on a folder `{folder}` (a copy of a finished seeds run, or a plain folder): refused,
    the folder unchanged."""

    def check(base: Base, d: Path):
        folder = d / "folder"
        if clean_run:
            shutil.copytree(base.root / "clean-run", folder)
        else:
            folder.mkdir()
            (folder / "notes.txt").write_text("not a run")
        if tamper:
            tamper(folder)
        before = snapshot(folder)
        args = [str(a).format(folder=folder, root=ROOT) for a in command]
        return refusal(dramatis(*args), pattern.format(folder=q(folder)), folder, before)

    return check


def eval_missing_run(base: Base, d: Path):
    ran = dramatis(
        "eval",
        ROOT / "eval" / "recipes" / "demo.yaml",
        f"heldout.run={d / 'norun'}",
        "benchmarks=[heldout]",
        f"out={d / 'eval'}",
    )
    return refusal(ran, rf"heldout\.run={q(d / 'norun')}: no finished synth run there", d / "eval")


class Try(NamedTuple):
    """One row: its check returns (observed, problems); no problems is a pass."""

    case: str
    expected: str
    check: Callable[[Base, Path], tuple[str, list[str]]]
    reduced: bool = False  # in the CI subset


E2 = "exit 2 naming "
LATIN1 = '{"persona": "A café owner in Lyon"}'.encode("latin-1")
RESPACED = (
    b'{"persona": "A  sports journalist who has  interviewed Michael Jordan multiple times and has insider stories '
    b'about his career"}'
)
TRIES = [
    Try(
        "seeds: latin-1 file (é as 0xe9)",
        E2 + "file:3 and the byte",
        seeds_refused("seeds.jsonl", lambda c: put(c, 3, LATIN1), r"{src}:3: not valid UTF-8 \(byte 0xe9"),
        True,
    ),
    Try(
        "seeds: invalid UTF-8 byte 0xff on line 5",
        E2 + "file:5 and the byte",
        seeds_refused(
            "seeds.jsonl", lambda c: put(c, 5, b'{"persona": "A \xff pilot"}'), r"{src}:5: not valid UTF-8 \(byte 0xff"
        ),
    ),
    Try(
        "seeds: UTF-16 file with a BOM",
        E2 + "file:1 as UTF-16",
        seeds_refused("seeds.jsonl", lambda c: b"".join(c).decode().encode("utf-16"), r"{src}:1: UTF-16 text"),
        True,
    ),
    Try(
        "seeds: UTF-16 file without a BOM",
        E2 + "file:1 and the NUL byte",
        seeds_refused("seeds.jsonl", lambda c: b"".join(c).decode().encode("utf-16-le"), r"{src}:1: a NUL byte"),
    ),
    Try(
        "seeds: UTF-8 BOM",
        "accepted: the clean file's rows",
        seeds_accepted(lambda c: b"\xef\xbb\xbf" + b"".join(c)),
        True,
    ),
    Try(
        "seeds: CRLF line endings",
        "accepted: the clean file's rows",
        seeds_accepted(lambda c: b"".join(c).replace(b"\n", b"\r\n")),
        True,
    ),
    Try(
        "seeds: blank lines and stray spaces",
        "accepted: the clean file's rows",
        seeds_accepted(lambda c: b"\n".join(b"  " + x.rstrip(b"\n") + b" \t\n" for x in c) + b"\n\n"),
        True,
    ),
    Try(
        "seeds: no newline at the end",
        "accepted: the clean file's rows",
        seeds_accepted(lambda c: b"".join(c).rstrip(b"\n")),
    ),
    Try(
        "seeds: empty file (0 bytes)",
        E2 + "the file: no personas",
        seeds_refused("seeds.jsonl", lambda c: b"", r"{src}: no personas found"),
        True,
    ),
    Try(
        "seeds: only blank lines",
        E2 + "the file: no personas",
        seeds_refused("seeds.jsonl", lambda c: b"\n  \n\r\n\t\n", r"{src}: no personas found"),
    ),
    Try(
        "seeds: a 20 MiB single line",
        E2 + "file:2 and the 1 MiB limit",
        seeds_refused(
            "seeds.jsonl",
            lambda c: put(c, 2, b'{"persona": "' + b"x" * (20 << 20) + b'"}'),
            r"{src}:2: a line of 20\.0 MiB, over the 1 MiB",
        ),
        True,
    ),
    Try(
        "seeds: bad JSON on line 3",
        E2 + "file:3: not valid JSON",
        seeds_refused("seeds.jsonl", lambda c: put(c, 3, b'{"persona": "A pilot",}'), r"{src}:3: not valid JSON"),
        True,
    ),
    Try(
        "seeds: last line cut off mid-row",
        E2 + "file:13: not valid JSON",
        seeds_refused("seeds.jsonl", lambda c: b"".join(c) + b'{"persona": "A pil', r"{src}:13: not valid JSON"),
    ),
    Try(
        "seeds: a row without the 'persona' field",
        E2 + "file:4 and the keys found",
        seeds_refused(
            "seeds.jsonl", lambda c: put(c, 4, b'{"name": "Ada"}'), r"{src}:4: no 'persona' field \(found: name\)"
        ),
        True,
    ),
    Try(
        "seeds: a number instead of text",
        E2 + "file:2 and the type",
        seeds_refused("seeds.jsonl", lambda c: put(c, 2, b'{"persona": 42}'), r"{src}:2: 'persona' is int, not text"),
        True,
    ),
    Try(
        "seeds: a row that is a list",
        E2 + "file:2: no 'persona' field",
        seeds_refused(
            "seeds.jsonl", lambda c: put(c, 2, b'["A pilot"]'), r"{src}:2: no 'persona' field \(found: list\)"
        ),
    ),
    Try(
        "seeds: the same persona twice (lines 3, 13)",
        "kept once; line 13 a duplicate reject of line 3",
        seeds_accepted(lambda c: b"".join(c) + c[2], ("duplicate", 13, 3)),
        True,
    ),
    Try(
        "seeds: a persona repeated with other spacing",
        "kept once; line 13 a duplicate reject of line 2",
        seeds_accepted(lambda c: b"".join(c) + RESPACED + b"\n", ("duplicate", 13, 2)),
    ),
    Try(
        "seeds: a blank persona text",
        "line 13 an 'empty' reject naming it",
        seeds_accepted(lambda c: b"".join(c) + b'{"persona": "   "}\n', ("empty", 13, 0)),
    ),
    Try(
        "seeds: csv without the 'persona' column",
        E2 + "file:1 and the columns",
        seeds_refused(
            "seeds.csv", lambda c: b"name,age\nAda,36\n", r"{src}:1: no 'persona' column \(found: name, age\)"
        ),
        True,
    ),
    Try(
        "seeds: unknown format (.xlsx)",
        E2 + "the file and the formats",
        seeds_refused("seeds.xlsx", lambda c: b"PK\x03\x04", r"{src}: unknown seed format '\.xlsx'"),
    ),
    Try("seeds: file missing", E2 + "the file", seeds_refused("missing.jsonl", None, r"{src}: seed file not found")),
    Try("seeds: a folder, not a file", E2 + "the folder", seeds_refused("folder.jsonl", "dir", r"{src}: not a file")),
    Try(
        "instructions: bad JSON on line 2",
        E2 + "file:2, before any model",
        instructions_refused(b'{"instruction": "Say hi"}\n{"instruction": "x"\n', r"{src}:2: not valid JSON"),
        True,
    ),
    Try(
        "instructions: duplicate ids (lines 1, 3)",
        E2 + "both lines",
        instructions_refused(
            b'{"id": "t1", "instruction": "Say hi"}\n{"id": "t2", "instruction": "Say bye"}\n'
            b'{"id": "t1", "instruction": "Sing"}\n',
            r"{src}:3: prompt id 't1' repeats {src}:1",
        ),
        True,
    ),
    Try(
        "instructions: a row without an instruction",
        E2 + "file:2 and the keys found",
        instructions_refused(
            b'{"instruction": "Say hi"}\n{"id": "t2", "text": "Sing"}\n', r"{src}:2: no instruction \(looked for"
        ),
    ),
    Try(
        "instructions: a list instead of text",
        E2 + "file:1 and the type",
        instructions_refused(b'{"instruction": ["Say hi"]}\n', r"{src}:1: 'instruction' is list, not text"),
    ),
    Try(
        "instructions: file missing", E2 + "the file", instructions_refused(None, r"{src}: instruction file not found")
    ),
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
    # The seeds stage never loads the model, and a folder with a config.json passes the up-front model
    # check: no case depends on the Gemma folder being built, and none can start an engine by mistake.
    (out / "model").mkdir(parents=True)
    (out / "model" / "config.json").write_text("{}")
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
