"""The one source reader (personas/sources.py): each format on the real files in ../shared/data, the line a
row starts on (multi-line csv cells, pretty-printed json), the byte checks, and seeds, prompts and PersonaGym
reading the same rows through it. No LLM involved."""

import csv
import io
import json
from pathlib import Path

import pytest

from eval.personagym import load_personagym
from personas.errors import DramatisError
from personas.seeds import load_seeds, normalize
from personas.sources import MAX_LINE_BYTES, Where, read_lines, read_rows
from synth.prompts import Mapping, load_prompts

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SEEDS_5K = SHARED / "seeds" / "personahub_tool_5k.jsonl"
SEED_TASKS = SHARED / "instructions" / "self_instruct_seed_tasks.jsonl"
PERSONAGYM = SHARED / "heldout" / "personagym_dev" / "personagym_dev.jsonl"
CORPORA = sorted((SHARED / "corpora").glob("*/*.txt"))


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def physical(path: Path) -> list[tuple[int, str]]:
    """(line, text) of the non-blank lines, split the way the reader splits them: on the bytes (a line of
    ideographic spaces, as 西遊記 has, is blank too)."""
    lines = [line.decode("utf-8") for line in path.read_bytes().removeprefix(b"\xef\xbb\xbf").splitlines()]
    return [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]


def lines_of(rows) -> list[int]:
    return [where.line for where, _ in rows]


def seed_tasks() -> list[dict]:
    """The 175 self-instruct seed tasks as flat rows: their outputs hold newlines, lists and code."""
    tasks = [json.loads(line) for line in SEED_TASKS.read_text(encoding="utf-8").splitlines()]
    return [
        {"id": t["id"], "instruction": t["instruction"], "input": t["instances"][0]["input"],
         "output": t["instances"][0]["output"]}
        for t in tasks
    ]  # fmt: skip


def as_csv(rows: list[dict]) -> tuple[str, list[int]]:
    """`rows` as csv text, and the line each row starts on (counted as the rows are written)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    starts = []
    for row in rows:
        starts.append(out.getvalue().count("\n") + 1)
        writer.writerow(row)
    return out.getvalue(), starts


def as_json(rows: list) -> tuple[str, list[int]]:
    """`rows` as a pretty-printed json array, and the line each element starts on."""
    starts, line = [], 2  # "[" alone on line 1
    for row in rows:
        starts.append(line)
        line += json.dumps(row, indent=2, ensure_ascii=False).count("\n") + 1
    return json.dumps(rows, indent=2, ensure_ascii=False), starts


# --- each format on real files -----------------------------------------------------------------------


@pytest.mark.parametrize("path", [SEEDS_5K, SEED_TASKS, PERSONAGYM], ids=lambda p: p.stem)
def test_real_jsonl_files_give_every_line_parsed_with_its_file_and_line(path):
    rows = list(read_rows(str(path)))
    assert [(w, r) for w, r in rows] == [(Where(str(path), n), json.loads(t)) for n, t in physical(path)]
    assert str(rows[-1][0]) == f"{path}:{len(physical(path))}"


@pytest.mark.parametrize("path", CORPORA, ids=lambda p: p.parent.name)
def test_real_txt_corpora_give_each_non_blank_line_as_it_stands(path):
    rows = list(read_rows(str(path)))
    assert [(w.line, r) for w, r in rows] == physical(path)
    assert rows[0][1].strip() and "\ufeff" not in rows[0][1]


def test_real_rows_written_as_csv_read_back_unchanged_with_the_line_each_row_starts_on(tmp_path):
    tasks = seed_tasks()
    text, starts = as_csv(tasks)
    assert text.count("\n") > len(tasks) + 100  # many outputs span lines: the count is not one row a line
    path = write(tmp_path / "tasks.csv", text)
    rows = list(read_rows(str(path)))
    assert [r for _, r in rows] == tasks
    assert lines_of(rows) == starts


def test_real_rows_written_as_json_arrays_give_the_line_each_element_starts_on(tmp_path):
    tasks = seed_tasks()
    pretty, starts = as_json(tasks)
    rows = list(read_rows(str(write(tmp_path / "pretty.json", pretty))))
    assert [r for _, r in rows] == tasks and lines_of(rows) == starts
    minified = list(read_rows(str(write(tmp_path / "minified.json", json.dumps(tasks)))))
    assert [r for _, r in minified] == tasks and set(lines_of(minified)) == {1}


def test_a_local_dataset_read_as_hf_gives_its_rows_numbered_from_one(tmp_path, monkeypatch):
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "dataset"
    folder.mkdir()
    write(folder / "train.jsonl", b"".join(SEEDS_5K.read_bytes().splitlines(keepends=True)[:20]))
    rows = list(read_rows(f"hf:{folder}"))
    assert [w for w, _ in rows] == [Where(f"hf:{folder}", n) for n in range(1, 21)]
    assert [r for _, r in rows] == [json.loads(t) for _, t in physical(folder / "train.jsonl")]
    assert [p.source_line for p in load_seeds(f"hf:{folder}")] == list(range(1, 21))
    with pytest.raises(DramatisError, match=rf"hf:{folder}: no 'bio' column \(found: persona\); set seeds\.field="):
        load_seeds(f"hf:{folder}", "bio")
    with pytest.raises(DramatisError, match=r"hf:no/such-dataset: cannot load the dataset"):
        list(read_rows("hf:no/such-dataset"))


# --- multi-line csv cells: the line a row starts on --------------------------------------------------

MULTILINE = (
    'persona,instruction\n"A sailor\nwho restores\nwooden boats",Describe your boat.\n\n"A chef",Name a dish.\n'
)


def test_a_csv_row_after_a_quoted_cell_spanning_three_lines_starts_on_its_own_line(tmp_path):
    path = write(tmp_path / "seeds.csv", MULTILINE)
    assert lines_of(read_rows(str(path))) == [2, 6]
    personas = load_seeds(str(path))
    assert [(p.text, p.source_line) for p in personas] == [("A sailor who restores wooden boats", 2), ("A chef", 6)]


def test_a_bad_csv_row_after_a_multi_line_cell_is_reported_on_its_own_line(tmp_path):
    path = write(tmp_path / "tasks.csv", MULTILINE + ",\n")
    with pytest.raises(DramatisError, match=rf"{path}:7: no instruction"):
        load_prompts([str(path)], Mapping(instruction="instruction"))
    bad = write(tmp_path / "bad.csv", MULTILINE.replace("A chef", "A ch\xe9f").encode("latin-1"))
    with pytest.raises(DramatisError, match=rf"{bad}:6: not valid UTF-8 \(byte 0xe9 at column 6\)"):
        load_seeds(str(bad))


def test_the_csv_header_is_the_first_non_blank_line_and_a_missing_column_names_it(tmp_path):
    path = write(tmp_path / "seeds.csv", "\n  \n" + MULTILINE.replace("persona,", "name,"))
    with pytest.raises(DramatisError, match=rf"{path}:3: no 'persona' column \(found: name, instruction\)"):
        load_seeds(str(path))
    assert lines_of(read_rows(str(path))) == [4, 8]


# --- seeds from .json --------------------------------------------------------------------------------


def test_seeds_load_from_a_json_array_with_the_line_of_each_element(tmp_path):
    real = [json.loads(t) for _, t in physical(SEEDS_5K)[:30]]
    text, starts = as_json(real)
    personas = load_seeds(str(write(tmp_path / "seeds.json", text)))
    assert [p.text for p in personas] == [normalize(r["persona"]) for r in real]
    assert [p.source_line for p in personas] == starts
    assert [p.id for p in personas] == [p.id for p in load_seeds(str(SEEDS_5K))[:30]]


@pytest.mark.parametrize(
    "text, message",
    [
        ('[\n  {"persona": "A pilot"},\n  {"name": "Ada"}\n]', r":3: no 'persona' field \(found: name\)"),
        ('[\n  {"persona": "A pilot"},\n  {"persona": 42}\n]', r":3: 'persona' is int, not text"),
        ('[\n  {"persona": "A pilot"},\n  {"persona": "x",}\n]', r":3: not valid JSON \(.* at column 19\)"),
        ('[\n  {"persona": "A pilot"}\n  {"persona": "x"}\n]', r":3: not valid JSON \(Expecting ',' delimiter"),
        ('[{"persona": "A pilot"}] []', r":1: not valid JSON \(Extra data at column 26\)"),
        ('[{"persona": "A pilot"},\n', r":1: not valid JSON \(Expecting value at column 25\)"),
        ('{"persona": "A pilot"}', r": a \.json source must hold an array of rows; use \.jsonl"),
        ("[]", r": no personas found"),
        ("\n \n", r": no personas found"),
    ],
    ids=["no_field", "not_text", "bad_element", "no_comma", "extra_data", "cut_off", "not_an_array", "empty", "blank"],
)
def test_a_bad_json_seed_file_names_the_line_of_the_element(tmp_path, text, message):
    path = write(tmp_path / "seeds.json", text)
    with pytest.raises(DramatisError, match=f"{path}{message}"):
        load_seeds(str(path))


# --- the byte checks hold for every file format ------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".txt"])
@pytest.mark.parametrize(
    "content, message",
    [
        ('"persona"\n"A pilot"\n'.encode("utf-16"), r":1: UTF-16 text \(it starts with the byte-order mark ff fe\)"),
        ('"persona"\n"A pilot"\n'.encode("utf-16-le"), r":1: a NUL byte at column 2"),
        (b'"persona"\n"A pilot"\n"A caf\xff owner"\n', r":3: not valid UTF-8 \(byte 0xff at column 7\)"),
    ],
    ids=["utf16_bom", "utf16_no_bom", "bad_byte"],
)
def test_bytes_that_are_not_utf8_text_are_refused_in_every_format(tmp_path, suffix, content, message):
    path = write(tmp_path / f"source{suffix}", content)
    with pytest.raises(DramatisError, match=f"{path}{message}"):
        list(read_rows(str(path)))


def test_the_line_limit_holds_for_line_formats_and_for_each_json_element_not_a_minified_array(tmp_path):
    long = "x" * (MAX_LINE_BYTES + 1)
    for suffix in (".jsonl", ".csv", ".txt"):
        path = write(tmp_path / f"long{suffix}", f'"persona"\n"{long}"\n')
        with pytest.raises(DramatisError, match=rf"{path}:2: a line of 1\.0 MiB, over the 1 MiB"):
            list(read_rows(str(path)))
    many = [{"persona": f"A pilot, number {i}"} for i in range(40_000)]
    minified = write(tmp_path / "many.json", json.dumps(many))
    assert minified.stat().st_size > MAX_LINE_BYTES and [r for _, r in read_rows(str(minified))] == many
    one = write(tmp_path / "one.json", json.dumps([{"persona": "A pilot"}, {"persona": long}], indent=1))
    with pytest.raises(DramatisError, match=rf"{one}:5: a row of 1\.0 MiB, over the 1 MiB one row may hold"):
        list(read_rows(str(one)))


def test_a_bom_crlf_and_blank_lines_leave_rows_and_lines_as_in_the_file(tmp_path):
    path = write(
        tmp_path / "seeds.csv", b'\xef\xbb\xbfpersona,age\r\n\r\nA pilot,40\r\n  \r\n"A chef,\r\nat dawn",35\r\n'
    )
    rows = list(read_rows(str(path)))
    assert [(w.line, r) for w, r in rows] == [(3, {"persona": "A pilot", "age": "40"}),
                                              (5, {"persona": "A chef,\nat dawn", "age": "35"})]  # fmt: skip
    assert [n for n, _ in read_lines(path)] == [1, 3, 5, 6]


def test_missing_files_folders_and_unknown_formats_are_named(tmp_path):
    with pytest.raises(DramatisError, match=rf"{tmp_path / 'none.jsonl'}: file not found"):
        list(read_rows(str(tmp_path / "none.jsonl")))
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(DramatisError, match=rf"{tmp_path / 'folder.csv'}: not a file"):
        list(read_rows(str(tmp_path / "folder.csv")))
    with pytest.raises(DramatisError, match=r"unknown source format '\.xlsx' \(use \.jsonl, \.json, \.csv, \.txt"):
        read_rows(str(tmp_path / "seeds.xlsx"))


# --- seeds, prompts and PersonaGym read the same rows ------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv"])
def test_the_same_file_read_by_seeds_and_prompts_gives_the_same_lines(tmp_path, suffix):
    personas = [json.loads(text)["persona"] for _, text in physical(SEEDS_5K)[:40]]
    rows = [{"persona": "A sailor\nwho restores boats", "instruction": "Describe\n\nyour boat."}] + [
        {"persona": p, "instruction": t["instruction"]} for p, t in zip(personas, seed_tasks(), strict=False)
    ]
    if suffix == ".jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n\n" for r in rows)
    else:
        text = (as_csv if suffix == ".csv" else as_json)(rows)[0]
    path = write(tmp_path / f"both{suffix}", text)
    wheres = [w for w, _ in read_rows(str(path))]
    seeds, prompts = load_seeds(str(path)), load_prompts([str(path)])
    assert [p.source_line for p in seeds] == [p.source_line for p in prompts] == [w.line for w in wheres]
    assert {p.source for p in seeds} == {p.source for p in prompts} == {w.source for w in wheres} == {str(path)}
    assert len(set(lines_of(read_rows(str(path))))) == len(rows)  # pretty-printed or not, each row has its line


def test_personagym_reads_its_lines_through_the_same_reader():
    loaded = list(load_personagym(PERSONAGYM))
    assert [p.source_line for p, _ in loaded] == lines_of(read_rows(str(PERSONAGYM)))
    assert {p.source for p, _ in loaded} == {str(PERSONAGYM)}
