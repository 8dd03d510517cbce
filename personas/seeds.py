"""Load persona seeds from jsonl / csv / txt / a Hugging Face dataset / the built-in set.

Every problem names the file and line; nothing is guessed. Blank lines, a BOM and CRLF are fine.
"""

import csv
import io
import json
import re
import unicodedata
from pathlib import Path

from personas.errors import DramatisError, at
from personas.language import detect_language
from personas.records import Persona, stable_id

BUILTIN = Path(__file__).with_name("builtin_seeds.jsonl")
SPACE = re.compile(r"\s+")
# A persona or an instruction row is a few KB at most; a longer line is a wrong file (a dump without
# newlines, a binary), and reading it on would cost minutes of MinHash and an over-long prompt later.
MAX_LINE_BYTES = 1 << 20


def normalize(text: str) -> str:
    """NFC (not NFKC: that would turn full-width Chinese punctuation into ASCII) and single spaces."""
    return SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def persona(text: str, source: str, line: int) -> Persona:
    text = normalize(text)
    return Persona(id=stable_id("p", text), text=text, language=detect_language(text), source=source, source_line=line)


def read_lines(path: Path):
    """(line number, text) of the non-blank lines; strict UTF-8 so a bad byte is reported, not mangled."""
    if not path.exists():
        raise DramatisError(f"{path}: seed file not found")
    if not path.is_file():
        raise DramatisError(f"{path}: not a file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DramatisError(f"{path}: cannot read ({e.strerror})") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DramatisError(
            f"{at(path, 1)}: UTF-16 text (it starts with the byte-order mark {raw[:2].hex(' ')}); re-save the file as UTF-8"
        )
    for number, data in enumerate(raw.splitlines(), start=1):
        if number == 1 and data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        if len(data) > MAX_LINE_BYTES:
            raise DramatisError(
                f"{at(path, number)}: a line of {len(data) / 2**20:.1f} MiB, over the {MAX_LINE_BYTES >> 20} MiB "
                "one row may hold; is this the right file?"
            )
        if b"\x00" in data:  # valid UTF-8, yet no text file holds it: UTF-16 without a byte-order mark, or a binary
            raise DramatisError(
                f"{at(path, number)}: a NUL byte at column {data.index(0) + 1} (UTF-16 or a binary file?); "
                "re-save the file as UTF-8 text"
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DramatisError(
                f"{at(path, number)}: not valid UTF-8 (byte 0x{data[e.start]:02x} at column {e.start + 1}); "
                "re-save the file as UTF-8"
            ) from None
        if text.strip():
            yield number, text


def _from_jsonl(path: Path, field: str):
    for number, text in read_lines(path):
        try:
            row = json.loads(text)
        except json.JSONDecodeError as e:
            raise DramatisError(f"{at(path, number)}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict) or field not in row:
            keys = ", ".join(row) if isinstance(row, dict) else type(row).__name__
            raise DramatisError(f"{at(path, number)}: no '{field}' field (found: {keys}); set seeds.field=<key>")
        if not isinstance(row[field], str):
            raise DramatisError(f"{at(path, number)}: '{field}' is {type(row[field]).__name__}, not text")
        yield number, row[field]


def _from_csv(path: Path, field: str):
    lines = list(read_lines(path))
    if not lines:
        return
    reader = csv.DictReader(io.StringIO("\n".join(text for _, text in lines)))
    if field not in (reader.fieldnames or []):
        raise DramatisError(
            f"{at(path, lines[0][0])}: no '{field}' column (found: {', '.join(reader.fieldnames or [])}); set seeds.field=<column>"
        )
    for (number, _), row in zip(lines[1:], reader, strict=False):
        yield number, row[field] or ""


def _from_hub(name: str, field: str, split: str):
    import datasets

    try:
        dataset_id, _, config = name.partition(":")  # hf:<id>:<config> picks one config of a multi-config dataset
        rows = datasets.load_dataset(dataset_id, config or None, split=split)
    except Exception as e:  # offline, missing, private: the user needs the reason, whatever its type
        raise DramatisError(f"hf:{name}: cannot load the dataset ({type(e).__name__}: {e})") from None
    if field not in rows.column_names:
        raise DramatisError(
            f"hf:{name}: no '{field}' column (found: {', '.join(rows.column_names)}); set seeds.field=<column>"
        )
    for number, text in enumerate(rows[field], start=1):
        yield number, text or ""


def load_seeds(source: str, field: str = "persona", split: str = "train") -> list[Persona]:
    """All personas of `source` in file order (duplicates kept: the seeds stage rejects them with a reason).

    `source`: "builtin", "hf:<dataset id>", or a path ending in .jsonl/.json, .csv or .txt.
    """
    if source == "builtin":
        path, rows = BUILTIN, _from_jsonl(BUILTIN, "persona")
    elif source.startswith("hf:"):
        path, rows = source, _from_hub(source[3:], field, split)
    else:
        path = Path(source).expanduser()
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".json"):
            rows = _from_jsonl(path, field)
        elif suffix == ".csv":
            rows = _from_csv(path, field)
        elif suffix == ".txt":
            rows = read_lines(path)
        else:
            raise DramatisError(f"{path}: unknown seed format '{suffix}' (use .jsonl, .csv, .txt, builtin or hf:<id>)")
    label = "builtin" if source == "builtin" else str(path)
    personas = [persona(text, label, number) for number, text in rows]
    if not personas:
        raise DramatisError(f"{path}: no personas found (the file is empty or blank)")
    return personas
