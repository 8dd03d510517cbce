"""Load persona seeds from jsonl / json / csv / txt / a Hugging Face dataset / the built-in set.

Every problem names the file and line; nothing is guessed. Blank lines, a BOM and CRLF are fine.
"""

import re
import unicodedata
from pathlib import Path

from personas.errors import DramatisError
from personas.language import detect_language
from personas.records import Persona, stable_id
from personas.sources import read_rows

BUILTIN = Path(__file__).with_name("builtin_seeds.jsonl")
SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """NFC (not NFKC: that would turn full-width Chinese punctuation into ASCII) and single spaces."""
    return SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def persona(text: str, source: str, line: int) -> Persona:
    text = normalize(text)
    return Persona(id=stable_id("p", text), text=text, language=detect_language(text), source=source, source_line=line)


def _texts(rows, field: str, kind: str):
    """(where, text) of each row: a .txt line as it is, else the row's `field`."""
    for where, row in rows:
        if kind == "txt":
            yield where, row
            continue
        if not isinstance(row, dict) or field not in row:
            keys = ", ".join(row) if isinstance(row, dict) else type(row).__name__
            raise DramatisError(f"{where}: no '{field}' field (found: {keys}); set seeds.field=<key>")
        text = row[field]
        if text is None and kind == "table":
            text = ""  # an empty csv cell or dataset value: the seeds stage rejects it as 'empty', naming the line
        if not isinstance(text, str):
            raise DramatisError(f"{where}: '{field}' is {type(text).__name__}, not text")
        yield where, text


def load_seeds(source: str, field: str = "persona", split: str = "train") -> list[Persona]:
    """All personas of `source` in file order (duplicates kept: the seeds stage rejects them with a reason).

    `source`: "builtin", "hf:<dataset id>", or a path ending in .jsonl/.json, .csv or .txt.
    """
    if source == "builtin":
        path, label, kind, field = BUILTIN, "builtin", "json", "persona"
        rows = read_rows(str(BUILTIN))
    elif source.startswith("hf:"):
        path, label, kind = source, source, "table"
        rows = read_rows(source, split, column=field, hint="set seeds.field=<column>")
    else:
        path = Path(source).expanduser()
        suffix = path.suffix.lower()
        if suffix not in (".jsonl", ".json", ".csv", ".txt"):
            raise DramatisError(
                f"{path}: unknown seed format '{suffix}' (use .jsonl, .json, .csv, .txt, builtin or hf:<id>)"
            )
        if not path.exists():
            raise DramatisError(f"{path}: seed file not found")
        label, kind = str(path), {".csv": "table", ".txt": "txt"}.get(suffix, "json")
        rows = read_rows(str(path), column=field, hint="set seeds.field=<column>")
    personas = [persona(text, label, where.line) for where, text in _texts(rows, field, kind)]
    if not personas:
        raise DramatisError(f"{path}: no personas found (the file is empty or blank)")
    return personas
