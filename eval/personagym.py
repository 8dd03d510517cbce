"""PersonaGym in its own file layout (vsamuel2003/PersonaGym `questions/benchmark-v1/`): personas with ten
questions per task, and the judges' 1–5 rubric per task.

    ../shared/data/heldout/personagym_dev/personagym_dev.jsonl   {"persona": str, "questions": {task: [str, ...]}}
    ../shared/data/heldout/personagym_dev/rubrics/<task>.txt      one rubric per task

PersonaScore is the mean over the five tasks; PersonaGym-Light asks only the first question of each task.
"""

from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from personas.errors import DramatisError
from personas.records import Persona, stable_id
from personas.seeds import persona
from personas.sources import jsonl_rows

TASKS = ("Expected Action", "Action Justification", "Linguistic Habits", "Persona Consistency", "Toxicity")


class Question(BaseModel):
    """One question put to a character in an evaluation."""

    id: str  # stable: q-<hash of persona id, task, index>
    benchmark: str  # "personagym" | "heldout"
    persona_id: str
    task: str  # PersonaGym task, or the question family
    index: int  # position within the task's questions
    text: str


def load_personagym(path: Path, *, light: bool = False, limit: int = 0) -> Iterator[tuple[Persona, list[Question]]]:
    """(persona, its questions) per line, in file order; `light`: the first question of each task only;
    `limit`: the first N personas. Any malformed line stops the load with its file:line."""
    path = Path(path)
    seen: dict[str, int] = {}
    for where, row in jsonl_rows(path):
        if not isinstance(row, dict) or not isinstance(row.get("persona"), str) or not row["persona"].strip():
            raise DramatisError(f"{where}: needs a non-empty 'persona' text")
        questions = row.get("questions")
        if not isinstance(questions, dict):
            raise DramatisError(f"{where}: needs 'questions' as {{task: [question, ...]}}")
        unknown = sorted(set(questions) - set(TASKS))
        missing = [t for t in TASKS if t not in questions]
        if unknown or missing:
            raise DramatisError(
                f"{where}: tasks must be {', '.join(TASKS)}"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                + (f"; missing: {', '.join(missing)}" if missing else "")
            )
        who = persona(row["persona"], where.source, where.line)
        if who.id in seen:
            raise DramatisError(f"{where}: the same persona as line {seen[who.id]}")
        seen[who.id] = where.line
        asked = []
        for task in TASKS:
            items = questions[task]
            if not isinstance(items, list) or not items or not all(isinstance(q, str) and q.strip() for q in items):
                raise DramatisError(f"{where}: '{task}' must be a non-empty list of non-empty questions")
            for index, q in enumerate(items[:1] if light else items):
                asked.append(
                    Question(
                        id=stable_id("q", who.id, task, str(index)),
                        benchmark="personagym",
                        persona_id=who.id,
                        task=task,
                        index=index,
                        text=q.strip(),
                    )
                )
        yield who, asked
        if limit and len(seen) >= limit:
            return  # before reading the next line: a malformed one past the limit is not this load's business


def load_rubrics(folder: Path) -> dict[str, str]:
    """Task → rubric text; every task's file must be there."""
    folder = Path(folder)
    missing = [t for t in TASKS if not (folder / f"{t}.txt").is_file()]
    if missing:
        raise DramatisError(
            f"{folder}: no rubric for {', '.join(missing)} (expected {folder / (missing[0] + '.txt')})"
        )
    return {t: (folder / f"{t}.txt").read_text(encoding="utf-8") for t in TASKS}
