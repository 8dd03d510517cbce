"""Dramatis dataset rows of real text without a model, for training tests and benchmarks: Persona Hub seeds as the
characters, real self-instruct tasks as the user turns and their reference answers as the character turns.

    .venv/bin/python scripts/sample_dataset.py OUT [rows]      # writes a dataset folder (train + validation)
"""

import json
import sys
from pathlib import Path

from personas.records import Character
from synth.dataset import write_dataset
from synth.records import Dialogue, Message

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
TASKS = [
    json.loads(line) for line in (SHARED / "instructions" / "self_instruct_seed_tasks.jsonl").read_text().splitlines()
]
PERSONAS = [
    json.loads(line)["persona"]
    for line in (SHARED / "seeds" / "personahub_tool_5k.jsonl").read_text().splitlines()[:64]
]


def character(i: int, split: str) -> Character:
    text = PERSONAS[i]
    return Character(
        name=f"Person {i}",
        age=30 + i,
        gender="female",
        race="Breton",
        born_place="Lyon",
        appearance="tall",
        experience=text[:600],
        personality="calm",
        speech_style="terse",
        catchphrases=["well then"],
        relationships=["a sister"],
        likes=["tea"],
        dislikes=["noise"],
        id=f"c-{i:016d}",
        persona_id=f"p-{i:016d}",
        persona=text,
        language="en",
        system_prompt=f"You are Person {i}. {text}",
        system_template="profile@1",
        model="test",
        seed=i,
        attempts=1,
        split=split,
    )


def dialogue(
    did: str, c: Character, tasks: list[dict], weights: list[int] | None = None, reply_chars: int = 160
) -> Dialogue:
    messages = [Message(role="system", content=c.system_prompt)]
    for j, task in enumerate(tasks):
        messages.append(
            Message(role="user", content=(task["instruction"] + " " + task["instances"][0]["input"])[:160].strip())
        )
        messages.append(
            Message(
                role="assistant",
                content=task["instances"][0]["output"][:reply_chars].strip() or "Done.",
                weight=1 if weights is None else weights[j],
            )
        )
    return Dialogue(
        id=did,
        messages=messages,
        character_id=c.id,
        character_name=c.name,
        mode="G",
        split=c.split,
        prompt_id=f"q-{did}",
        prompt_source="self-instruct",
        prompt_source_id=tasks[0]["id"],
        turns=len(tasks),
        language="en",
        system_template="profile@1",
        model="test",
        seed=0,
        requests=1,
        prompt_tokens=1,
        output_tokens=1,
    )


def build(folder: Path, rows: int = 160, characters: int = 16, reply_chars: int = 2000) -> Path:
    """`rows` training rows of 1-3 turns over `characters` characters (whole reference answers: lengths vary as real
    data does, which is what packing is for), and a validation character with 4 rows."""
    cast = [character(i, "train") for i in range(characters)] + [character(characters, "validation")]
    made = []
    for k in range(rows + 4):
        turns = 1 + k % 3
        tasks = [TASKS[(k * 3 + j) % len(TASKS)] for j in range(turns)]
        c = cast[k % characters] if k < rows else cast[-1]
        made.append(dialogue(f"{'d' if k < rows else 'v'}-{k:05d}", c, tasks, reply_chars=reply_chars))
    write_dataset(folder, made, cast, [])
    return folder


if __name__ == "__main__":
    print(build(Path(sys.argv[1]), *(int(a) for a in sys.argv[2:3])))
