"""Instruction sources → `Prompt` records: jsonl / csv files or Hugging Face datasets, with a column mapping.

The default mapping reads, unchanged, the three formats in ../shared/data/instructions/: self-instruct
seed tasks and user-oriented instructions (`instruction` + `instances[0].input/output`: usable by R and
G) and MT-Bench (`turns`: multi-turn; `reference` answers for its math, reasoning and coding questions). Each mapping entry lists alternatives separated by
commas; a dotted path walks into nested rows (`instances.0.output`). Errors name file and line.
"""

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from personas.errors import DramatisError, at
from personas.language import detect_language
from personas.records import stable_id
from personas.seeds import normalize, read_lines
from synth.records import Prompt


@dataclass(frozen=True)
class Mapping:
    id: str = "id,question_id"
    instruction: str = "instruction,prompt,question"
    input: str = "input,instances.0.input"
    output: str = "output,response,instances.0.output"
    turns: str = "turns"
    references: str = "references,reference"
    category: str = "category,motivation_app"


def _get(row, path: str):
    for part in path.split("."):
        if isinstance(row, list) and part.isdigit() and int(part) < len(row):
            row = row[int(part)]
        elif isinstance(row, dict) and part in row:
            row = row[part]
        else:
            return None
    return row


def _first(row: dict, alternatives: str):
    for path in alternatives.split(","):
        value = _get(row, path.strip()) if path.strip() else None
        if value is not None:
            return value
    return None


def _text(value, where: str, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DramatisError(f"{where}: '{name}' is {type(value).__name__}, not text")
    return value.strip()


def to_prompt(row: dict, mapping: Mapping, source: str, line: int) -> Prompt:
    """One source row as a `Prompt`; a row with neither turns nor an instruction is an error naming its line."""
    where = at(source, line)
    if not isinstance(row, dict):
        raise DramatisError(f"{where}: a row must be an object, not {type(row).__name__}")
    turns = _first(row, mapping.turns)
    if turns is not None:
        if not isinstance(turns, list) or not turns:
            raise DramatisError(f"{where}: '{mapping.turns}' must be a non-empty list of user turns")
        turns = [_text(t, where, mapping.turns) for t in turns]
        refs = _first(row, mapping.references) or []
        refs = [_text(r, where, mapping.references) for r in refs] if isinstance(refs, list) else []
    else:
        instruction = _text(_first(row, mapping.instruction), where, "instruction")
        if not instruction:
            keys = ", ".join(map(str, row))
            raise DramatisError(
                f"{where}: no instruction (looked for {mapping.instruction} and {mapping.turns}; "
                f"found: {keys}); set instructions.instruction_field=<key>"
            )
        extra = _text(_first(row, mapping.input), where, "input")
        # The input is the material the instruction works on: the user gives both in one message.
        turns = [instruction + ("\n\n" + extra if extra else "")]
        refs = [_text(_first(row, mapping.output), where, "output")]
    turns = [normalize_turn(t) for t in turns]
    refs = (refs + [""] * len(turns))[: len(turns)]
    own = _text(_first(row, mapping.id), where, "id") or str(line)
    # The file name, not the path: ids must not change with the working directory.
    return Prompt(
        id=stable_id("q", Path(source).name, own),
        source=source,
        source_id=own,
        source_line=line,
        turns=turns,
        references=refs,
        category=_text(_first(row, mapping.category), where, "category"),
        language=detect_language(" ".join(turns)),
    )


def normalize_turn(text: str) -> str:
    """NFC and trimmed lines, but newlines kept: inputs hold lists, tables and code."""
    return "\n".join(normalize(line) if line.strip() else "" for line in text.strip().splitlines())


def _jsonl_rows(path: Path):
    for number, text in read_lines(path):
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as e:
            raise DramatisError(f"{at(path, number)}: not valid JSON ({e.msg} at column {e.colno})") from None


def _json_rows(path: Path):
    """A .json file holds one array of rows; the row number stands in for the line."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DramatisError(f"{path}: not a valid UTF-8 JSON array ({e}); use .jsonl for one row per line") from None
    if not isinstance(data, list):
        raise DramatisError(f"{path}: a .json source must hold an array of rows; use .jsonl for one row per line")
    yield from enumerate(data, start=1)


def _csv_rows(path: Path):
    lines = dict(read_lines(path))  # read_lines checks the encoding and reports the bad line
    # Blank lines are put back so the reader's line count is the file's: a quoted cell may span lines.
    text = "\n".join(lines.get(n, "") for n in range(1, max(lines, default=0) + 1))
    reader = csv.DictReader(io.StringIO(text))
    reader.fieldnames  # reads the header row
    start = reader.line_num + 1
    for row in reader:
        while start <= reader.line_num and not lines.get(start, "").strip():
            start += 1  # the row begins at its first non-blank line
        yield start, row
        start = reader.line_num + 1


def _hub_rows(name: str, split: str):
    import datasets

    try:
        dataset_id, _, config = name.partition(":")  # hf:<id>:<config> picks one config of a multi-config dataset
        rows = datasets.load_dataset(dataset_id, config or None, split=split)
    except Exception as e:  # offline, missing, private: the user needs the reason, whatever its type
        raise DramatisError(f"hf:{name}: cannot load the dataset ({type(e).__name__}: {e})") from None
    yield from enumerate(rows, start=1)


def load_prompts(sources: list[str], mapping: Mapping = Mapping(), split: str = "train") -> list[Prompt]:
    """All prompts of all `sources` in order. A source is a .jsonl/.csv path or hf:<dataset id>."""
    if not sources:
        raise DramatisError("instructions.sources: give at least one instruction file or hf:<dataset id>")
    prompts = []
    for source in sources:
        if source.startswith("hf:"):
            rows, label = _hub_rows(source[3:], split), source
        else:
            path = Path(source).expanduser()
            if not path.is_file():
                raise DramatisError(f"{path}: instruction file not found")
            suffix = path.suffix.lower()
            if suffix not in (".jsonl", ".json", ".csv"):
                raise DramatisError(f"{path}: unknown instruction format '{suffix}' (use .jsonl, .csv or hf:<id>)")
            reader = {".csv": _csv_rows, ".json": _json_rows}.get(suffix, _jsonl_rows)
            rows, label = reader(path), str(path)
        found = [to_prompt(row, mapping, label, number) for number, row in rows]
        if not found:
            raise DramatisError(f"{label}: no instructions found (the source is empty)")
        prompts += found
    seen: dict[str, Prompt] = {}
    for p in prompts:
        first = seen.setdefault(p.id, p)
        if first is not p:
            raise DramatisError(
                f"{at(p.source, p.source_line)}: prompt id '{p.source_id}' repeats {at(first.source, first.source_line)} "
                "(ids come from the file name and the row id; give rows unique ids or rename one file)"
            )
    return prompts
