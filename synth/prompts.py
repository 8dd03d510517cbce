"""Instruction sources → `Prompt` records: jsonl / json / csv files or Hugging Face datasets, with a column mapping.

The default mapping reads, unchanged, the three formats in ../shared/data/instructions/: self-instruct
seed tasks and user-oriented instructions (`instruction` + `instances[0].input/output`: usable by R and
G) and MT-Bench (`turns`: multi-turn; `reference` answers for its math, reasoning and coding questions).
Each mapping entry lists alternatives separated by commas; a dotted path walks into nested rows
(`instances.0.output`). Errors name file and line.
"""

from dataclasses import dataclass
from pathlib import Path

from personas.errors import DramatisError, at
from personas.language import detect_language
from personas.records import stable_id
from personas.seeds import normalize
from personas.sources import read_rows
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


def load_prompts(sources: list[str], mapping: Mapping = Mapping(), split: str = "train") -> list[Prompt]:
    """All prompts of all `sources` in order. A source is a .jsonl/.json/.csv path or hf:<dataset id>."""
    if not sources:
        raise DramatisError("instructions.sources: give at least one instruction file or hf:<dataset id>")
    prompts = []
    for source in sources:
        label = source
        if not source.startswith("hf:"):
            path = Path(source).expanduser()
            if not path.is_file():
                raise DramatisError(f"{path}: instruction file not found")
            suffix = path.suffix.lower()
            if suffix not in (".jsonl", ".json", ".csv"):
                raise DramatisError(
                    f"{path}: unknown instruction format '{suffix}' (use .jsonl, .json, .csv or hf:<id>)"
                )
            label = str(path)
        found = [to_prompt(row, mapping, where.source, where.line) for where, row in read_rows(source, split)]
        if not found:
            raise DramatisError(f"{label}: no instructions found (the source is empty)")
        prompts += found
    seen: dict[str, Prompt] = {}
    for p in prompts:
        first = seen.setdefault(p.id, p)
        if first is not p:
            raise DramatisError(
                f"{at(p.source, p.source_line)}: prompt id '{p.source_id}' repeats "
                f"{at(first.source, first.source_line)} "
                "(ids come from the file name and the row id; give rows unique ids or rename one file)"
            )
    return prompts
