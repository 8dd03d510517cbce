"""Rows of a source file or Hugging Face dataset, each with the `file:line` it starts on.

One reader for every format a source comes in: .jsonl (one JSON value a line), .json (one array of values),
.csv (one dict a row, keyed by the header), .txt (one text a line) and `hf:<id>[:<config>]`. Blank lines, a
UTF-8 BOM and CRLF are fine; bytes that are not UTF-8 text are refused naming the line and column, never
mangled. Which field of a row holds the persona or the instruction is the caller's business.
"""

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from personas.errors import DramatisError, at

# A persona or an instruction row is a few KB at most; a longer line is a wrong file (a dump without
# newlines, a binary), and reading it on would cost minutes of MinHash and an over-long prompt later.
MAX_LINE_BYTES = 1 << 20
SPACE = re.compile(r"[ \t\n\r]*")  # the whitespace JSON allows between values


class Where(NamedTuple):
    """Where a row starts: its file (or `hf:<id>`) and 1-based line (a dataset's row number)."""

    source: str
    line: int

    def __str__(self) -> str:
        return at(self.source, self.line)


def _lines(path: Path, limit: int | None = MAX_LINE_BYTES) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line, blank ones included; strict UTF-8 so a bad byte is reported."""
    if not path.exists():
        raise DramatisError(f"{path}: file not found")
    if not path.is_file():
        raise DramatisError(f"{path}: not a file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DramatisError(f"{path}: cannot read ({e.strerror})") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DramatisError(
            f"{at(path, 1)}: UTF-16 text (it starts with the byte-order mark {raw[:2].hex(' ')}); "
            "re-save the file as UTF-8"
        )
    for number, data in enumerate(raw.splitlines(), start=1):
        if number == 1 and data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        if limit is not None and len(data) > limit:
            raise DramatisError(
                f"{at(path, number)}: a line of {len(data) / 2**20:.1f} MiB, over the {limit >> 20} MiB "
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
        yield number, text


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of the non-blank lines."""
    return ((number, text) for number, text in _lines(Path(path)) if text.strip())


def txt_rows(path: Path) -> Iterator[tuple[Where, str]]:
    """Each non-blank line as it stands (spaces kept: normalizing is the caller's choice)."""
    for number, text in read_lines(path):
        yield Where(str(path), number), text


def jsonl_rows(path: Path) -> Iterator[tuple[Where, object]]:
    """Each non-blank line parsed as one JSON value (an object, or whatever the line holds)."""
    for number, text in read_lines(path):
        try:
            yield Where(str(path), number), json.loads(text)
        except json.JSONDecodeError as e:
            raise DramatisError(f"{at(path, number)}: not valid JSON ({e.msg} at column {e.colno})") from None


def json_rows(path: Path) -> Iterator[tuple[Where, object]]:
    """Each element of the one array a .json file holds, with the line the element starts on."""
    # No line limit: a minified array is one long line. The limit holds for each element instead.
    text = "\n".join(line for _, line in _lines(path, limit=None))
    decoder, line, counted = json.JSONDecoder(), 1, 0

    def invalid(e: json.JSONDecodeError) -> DramatisError:
        return DramatisError(f"{at(path, e.lineno)}: not valid JSON ({e.msg} at column {e.colno})")

    pos = SPACE.match(text).end()
    if not text[pos:].startswith("["):
        if not text.strip():
            return
        raise DramatisError(f"{path}: a .json source must hold an array of rows; use .jsonl for one row per line")
    # The stdlib decoder reads one element at a time from where the last one ended, so the line each starts
    # on costs only counting the newlines since the previous one.
    pos = SPACE.match(text, pos + 1).end()
    end = pos + 1  # past the "]" of an empty array
    while not text.startswith("]", pos):
        line, counted = line + text.count("\n", counted, pos), pos
        try:
            row, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise invalid(e) from None
        if end - pos > MAX_LINE_BYTES:
            raise DramatisError(
                f"{at(path, line)}: a row of {(end - pos) / 2**20:.1f} MiB, over the {MAX_LINE_BYTES >> 20} MiB "
                "one row may hold; is this the right file?"
            )
        yield Where(str(path), line), row
        pos = SPACE.match(text, end).end()
        if text.startswith("]", pos):
            end = pos + 1
            break
        if not text.startswith(",", pos):
            raise invalid(json.JSONDecodeError("Expecting ',' delimiter", text, pos))
        pos = SPACE.match(text, pos + 1).end()
    if text[end:].strip():
        raise invalid(json.JSONDecodeError("Extra data", text, SPACE.match(text, end).end()))


def csv_rows(path: Path, column: str = "", hint: str = "") -> Iterator[tuple[Where, dict]]:
    """Each row as {header: cell}, with the line it starts on: a quoted cell may span lines, and the csv
    reader's own line count (not one row per line) says where the next row begins. The header is the first
    non-blank line; `column`, when given, must be one of its names (`hint` ends that error)."""
    lines = [text for _, text in _lines(path)]
    first = next((i for i, text in enumerate(lines) if text.strip()), None)
    if first is None:
        return
    # The lines before the header are left out and `first` added back, so the reader's line count stays the
    # file's; the lines inside quoted cells go to the reader as they are (a blank line in code is content).
    reader = csv.DictReader(io.StringIO("\n".join(lines[first:])))
    header = reader.fieldnames or []
    if column and column not in header:
        raise DramatisError(
            f"{at(path, first + 1)}: no '{column}' column (found: {', '.join(header)})" + (f"; {hint}" if hint else "")
        )
    start = reader.line_num + 1
    for row in reader:
        while start < reader.line_num and not lines[first + start - 1].strip():
            start += 1  # the row begins at its first non-blank line (the reader skipped the empty ones)
        if start < reader.line_num or lines[first + start - 1].strip():
            yield Where(str(path), first + start), row
        # else a line of spaces between rows: blank, as in every other format, not a row of one space cell
        start = reader.line_num + 1


def hub_rows(name: str, split: str = "train", column: str = "", hint: str = "") -> Iterator[tuple[Where, dict]]:
    """Each row of the dataset `name` (`<id>` or `<id>:<config>`) as a dict; `column` as for csv_rows."""
    import datasets  # slow to import, and only a hub source needs it

    try:
        dataset_id, _, config = name.partition(":")  # hf:<id>:<config> picks one config of a multi-config dataset
        rows = datasets.load_dataset(dataset_id, config or None, split=split)
    except Exception as e:  # offline, missing, private: the user needs the reason, whatever its type
        raise DramatisError(f"hf:{name}: cannot load the dataset ({type(e).__name__}: {e})") from None
    if column and column not in rows.column_names:
        raise DramatisError(
            f"hf:{name}: no '{column}' column (found: {', '.join(rows.column_names)})" + (f"; {hint}" if hint else "")
        )
    for number, row in enumerate(rows, start=1):
        yield Where(f"hf:{name}", number), row


def read_rows(source: str, split: str = "train", column: str = "", hint: str = "") -> Iterator[tuple[Where, object]]:
    """The rows of `source` ("hf:<id>[:<config>]" or a .jsonl, .json, .csv or .txt path) in order.

    `split` is the dataset split of a hub source; `column` (with `hint`) a column a csv file or hub dataset must
    have, checked at its header. Callers that accept fewer formats check the suffix first, in their own words.
    """
    if source.startswith("hf:"):
        return hub_rows(source[3:], split, column, hint)
    path = Path(source).expanduser()
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return jsonl_rows(path)
    if suffix == ".json":
        return json_rows(path)
    if suffix == ".csv":
        return csv_rows(path, column, hint)
    if suffix == ".txt":
        return txt_rows(path)
    raise DramatisError(f"{path}: unknown source format '{suffix}' (use .jsonl, .json, .csv, .txt or hf:<id>)")
