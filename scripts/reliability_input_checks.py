"""The reliability suite's bad-input machinery: running the real CLI on a case's input, judging what it did
(exit, message, traceback, half-written or changed files), and the case builders its table is made of."""

import hashlib
import os
import re
import resource
import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from personas.records import Persona
from scripts import cli_process
from synth.runner import Reject, load_records, shard_paths
from synth.shards import read_shard

ROOT = Path(__file__).resolve().parent.parent
SEEDS_5K = ROOT.parent / "shared" / "data" / "seeds" / "personahub_tool_5k.jsonl"
# What a failed run must not leave in a fresh out folder (pathlib's `*` also matches `.data-00000.arrow.tmp`).
HALF_WRITTEN = ("*.arrow", "*.tmp", "manifest.json", "dataset_info.json")


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
