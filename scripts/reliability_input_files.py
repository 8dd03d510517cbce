"""The bad-input cases on input files: seeds files (encodings, line endings, broken or repeated rows,
formats) and instruction files, each a row of the suite's table."""

from scripts.reliability_input_checks import E2, Try, instructions_refused, put, seeds_accepted, seeds_refused

LATIN1 = '{"persona": "A café owner in Lyon"}'.encode("latin-1")
RESPACED = (
    b'{"persona": "A  sports journalist who has  interviewed Michael Jordan multiple times and has insider stories '
    b'about his career"}'
)
FILE_TRIES = [
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
]
