"""PersonaGym loader (eval/personagym.py) on the real development half, and its refusals of malformed files."""

import json

import pytest

from eval.personagym import TASKS, load_personagym, load_rubrics
from personas.errors import DramatisError
from tests.helpers import SHARED

DEV = SHARED / "heldout" / "personagym_dev"


def test_the_development_half_loads_whole_and_light():
    full = list(load_personagym(DEV / "personagym_dev.jsonl"))
    assert len(full) == 100 and all(len(qs) == 50 for _, qs in full)
    assert len({q.id for _, qs in full for q in qs}) == 5000
    light = list(load_personagym(DEV / "personagym_dev.jsonl", light=True, limit=7))
    assert len(light) == 7 and all(
        [q.task for q in qs] == list(TASKS) and all(q.index == 0 for q in qs) for _, qs in light
    )
    persona, questions = full[0]
    assert persona.text.startswith("A 58-year-old former soldier from Russia") and persona.source_line == 1
    assert light[0][1][0] == questions[0]  # same persona, task and index: same question id in both modes


def test_every_rubric_loads_and_a_missing_one_is_named(tmp_path):
    rubrics = load_rubrics(DEV / "rubrics")
    assert set(rubrics) == set(TASKS) and "Linguistic Habits" in rubrics["Linguistic Habits"]
    for task in TASKS[1:]:
        (tmp_path / f"{task}.txt").write_text(rubrics[task])
    with pytest.raises(DramatisError, match="Expected Action"):
        load_rubrics(tmp_path)


GOOD = json.loads((DEV / "personagym_dev.jsonl").read_text().splitlines()[0])


@pytest.mark.parametrize(
    "line,says",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"questions": GOOD["questions"]}), "'persona'"),
        (json.dumps({"persona": "x", "questions": []}), "'questions'"),
        (json.dumps({"persona": "x", "questions": {**GOOD["questions"], "Humor": ["q"]}}), "unknown: Humor"),
        (
            json.dumps({"persona": "x", "questions": {k: v for k, v in GOOD["questions"].items() if k != "Toxicity"}}),
            "missing: Toxicity",
        ),
        (json.dumps({"persona": "x", "questions": {**GOOD["questions"], "Toxicity": ["ok", " "]}}), "'Toxicity'"),
        (json.dumps(GOOD), "the same persona as line 1"),
    ],
)
def test_a_malformed_line_is_refused_with_its_file_and_line(tmp_path, line, says):
    path = tmp_path / "pg.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + line + "\n")
    with pytest.raises(DramatisError, match=says) as e:
        list(load_personagym(path))
    assert f"{path}:3" in str(e.value)
