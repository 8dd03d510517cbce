"""The reliability suite: crashes, backend faults, bad input and secrets, printed as one table.

    make reliability                                   # = .venv/bin/python scripts/reliability.py
    .venv/bin/python scripts/reliability.py --reduced  # the CI form (tests/test_reliability.py runs each part)
    .venv/bin/python scripts/reliability.py only=bad_input,secrets

Every case prints: case, expected, observed, pass. The exit status is non-zero when any case fails.
The table also goes to reliability-out/reliability.json.
"""

import json
import sys
from pathlib import Path

from scripts.reliability_case import Case

OUT = Path("reliability-out")
PARTS = ("crash", "faults", "bad_input", "secrets")


def run_part(part: str, out: Path, reduced: bool) -> list[Case]:
    if part == "crash":
        from scripts.reliability_crash import crash_cases as cases
    elif part == "faults":
        from scripts.reliability_faults import fault_cases as cases
    elif part == "bad_input":
        from scripts.reliability_input import bad_input_cases as cases
    else:
        from scripts.reliability_faults import secret_cases as cases
    return list(cases(out / part, reduced))


def table(cases: list[Case]) -> str:
    width = [
        max(
            len(getattr(c, f))
            for c in cases + [Case(case="case", expected="expected", observed="observed", passed=True)]
        )
        for f in ("case", "expected", "observed")
    ]
    lines = [
        f"| {'case':{width[0]}} | {'expected':{width[1]}} | {'observed':{width[2]}} | pass |",
        f"|{'-' * (width[0] + 2)}|{'-' * (width[1] + 2)}|{'-' * (width[2] + 2)}|------|",
    ]
    lines += [
        f"| {c.case:{width[0]}} | {c.expected:{width[1]}} | {c.observed:{width[2]}} | "
        f"{'yes' if c.passed else 'NO'}   |"
        for c in cases
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    reduced = "--reduced" in argv
    only = next((a.partition("=")[2].split(",") for a in argv if a.startswith("only=")), list(PARTS))
    unknown = [a for a in argv if a != "--reduced" and not a.startswith("only=")] + [p for p in only if p not in PARTS]
    if unknown:
        print(
            f"error: unknown argument or part {unknown[0]!r} (parts: {', '.join(PARTS)}; flags: --reduced, only=...)",
            file=sys.stderr,
        )
        return 2
    cases = []
    for part in only:
        cases += run_part(part, OUT, reduced)
        print(table(cases), flush=True)  # the table so far: a long suite shows where it is
    OUT.mkdir(exist_ok=True)
    (OUT / "reliability.json").write_text(json.dumps([c.model_dump() for c in cases], indent=2, ensure_ascii=False))
    failed = [c for c in cases if not c.passed]
    print(f"\n{len(cases) - len(failed)} of {len(cases)} cases passed; written: {OUT / 'reliability.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
