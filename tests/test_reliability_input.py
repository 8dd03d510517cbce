"""The bad-input part of the reliability suite, and the fixes it asked for: failed writes leave no
temporary file and name the file, a changed shard is redone with a warning, a damaged manifest or request
cache is an error naming it, and seed files that are not UTF-8 text say so."""

import errno
import os
from collections import Counter
from pathlib import Path

import pytest
from pydantic import BaseModel

from personas.errors import DramatisError
from personas.seeds import load_seeds
from personas.sources import MAX_LINE_BYTES
from scripts.reliability import table
from scripts.reliability_input import bad_input_cases
from synth.cache import RequestCache
from synth.cli import _recipe_args
from synth.runner import Stage, load_records, run_stage
from synth.shards import write_atomic


@pytest.mark.cli
def test_bad_input_suite_refuses_every_bad_input_clearly_and_accepts_the_harmless_ones(tmp_path):
    cases = list(bad_input_cases(tmp_path, reduced=True))
    assert len(cases) >= 25, table(cases)
    assert all(c.passed for c in cases), "\n" + table(cases)


def test_a_write_that_fails_leaves_no_temporary_file_and_names_the_file(tmp_path, monkeypatch):
    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    target = tmp_path / "data-00000.arrow"
    with pytest.raises(DramatisError, match=rf"{target}: cannot write \(No space left on device\)"):
        write_atomic(target, b"rows")
    assert list(tmp_path.iterdir()) == []


class Row(BaseModel):
    id: str


def echo_stage() -> Stage:
    def process(chunk: list[Row], counters: Counter):
        yield from chunk

    return Stage("echo", Row, process, chunk_size=2)


def finished_run(folder: Path) -> list[Row]:
    rows = [Row(id=str(i)) for i in range(5)]
    run_stage(echo_stage(), rows, folder, {})
    return rows


def test_a_relaunch_redoes_a_changed_shard_and_says_which_file(tmp_path, capsys):
    rows = finished_run(tmp_path)
    shard = tmp_path / "data-00001.arrow"
    whole = shard.read_bytes()
    shard.write_bytes(whole[:-8] + b"\0" * 8)
    with pytest.raises(DramatisError, match=rf"{shard} does not match the sha256 in its manifest; relaunch the run"):
        load_records(tmp_path, Row)  # the next stage must not read it
    capsys.readouterr()
    run_stage(echo_stage(), rows, tmp_path, {})
    assert f"warning: {shard} does not match the sha256 in its manifest; chunk 1 is redone" in capsys.readouterr().err
    assert shard.read_bytes() == whole and load_records(tmp_path, Row) == rows


def test_a_relaunch_redoes_a_deleted_shard_and_says_so(tmp_path, capsys):
    rows = finished_run(tmp_path)
    (tmp_path / "data-00002.arrow").unlink()
    capsys.readouterr()
    run_stage(echo_stage(), rows, tmp_path, {})
    assert f"warning: {tmp_path / 'data-00002.arrow'} is missing; chunk 2 is redone" in capsys.readouterr().err
    assert load_records(tmp_path, Row) == rows


def test_a_truncated_manifest_is_an_error_naming_it_and_nothing_is_rewritten(tmp_path):
    rows = finished_run(tmp_path)
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:100])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for attempt in (lambda: run_stage(echo_stage(), rows, tmp_path, {}), lambda: load_records(tmp_path, Row)):
        with pytest.raises(DramatisError, match=rf"{manifest}: not a readable manifest"):
            attempt()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_request_cache_that_is_not_a_database_is_an_error_naming_it(tmp_path):
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"garbage!" * 512)
    with pytest.raises(DramatisError, match=rf"{path}: cannot open the request cache \(file is not a database\)"):
        RequestCache(path)
    assert path.read_bytes() == b"garbage!" * 512


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"persona": "A pilot"}\n'.encode("utf-16"), r":1: UTF-16 text"),
        ('{"persona": "A pilot"}\n'.encode("utf-16-le"), r":1: a NUL byte at column 2"),
        (
            b'{"persona": "A pilot"}\n{"persona": "' + b"x" * MAX_LINE_BYTES + b'"}\n',
            r":2: a line of 1\.0 MiB, over the 1 MiB",
        ),
    ],
    ids=["utf16_with_bom", "utf16_without_bom", "over_long_line"],
)
def test_a_seed_file_that_is_not_utf8_text_names_file_and_line(tmp_path, content, message):
    path = tmp_path / "seeds.jsonl"
    path.write_bytes(content)
    with pytest.raises(DramatisError, match=f"{path}{message}"):
        load_seeds(str(path))


def test_an_override_whose_value_is_a_path_is_not_taken_for_a_recipe_file():
    assert _recipe_args(Path("seeds.source=/data/seeds.jsonl"), ["out=runs/x"]) == (
        None,
        ["seeds.source=/data/seeds.jsonl", "out=runs/x"],
    )
    assert _recipe_args(Path("runs/a=b/recipe.yaml"), []) == (
        Path("runs/a=b/recipe.yaml"),
        [],
    )  # a path, reported as not found
