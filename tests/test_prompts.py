"""Instruction sources → `Prompt` records (synth/prompts.py): the three real instruction files, a CSV with a
custom column mapping, and bad input that must fail naming file:line. No LLM involved."""

import json
import os
from pathlib import Path

import pytest

from personas.errors import DramatisError
from synth.prompts import Mapping, load_prompts, to_prompt
from tests.helpers import ROOT, SHARED

INSTRUCTIONS = SHARED / "instructions"
SEED_TASKS = INSTRUCTIONS / "self_instruct_seed_tasks.jsonl"
USER_ORIENTED = INSTRUCTIONS / "self_instruct_user_oriented.jsonl"
MT_BENCH = INSTRUCTIONS / "mt_bench_questions.jsonl"


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("path, count", [(SEED_TASKS, 175), (USER_ORIENTED, 252)], ids=lambda v: getattr(v, "stem", v))
def test_self_instruct_rows_become_one_turn_prompts_with_input_and_reference(path, count):
    prompts = load_prompts([str(path)])
    assert len(prompts) == count
    for prompt, row in zip(prompts, rows(path), strict=False):
        instance = row["instances"][0]
        assert len(prompt.turns) == 1 and prompt.source_id == row["id"]
        assert prompt.turns[0].startswith(" ".join(row["instruction"].split()[:3]))
        # The instance input is the material the instruction works on: it goes into the same user turn.
        for line in instance["input"].strip().splitlines():
            assert " ".join(line.split()) in prompt.turns[0]
        assert prompt.references[0] and prompt.references == [instance["output"].strip()]
    assert len({p.id for p in prompts}) == count


def test_mt_bench_questions_become_two_turn_prompts_with_references_where_given():
    prompts = load_prompts([str(MT_BENCH)])
    assert len(prompts) == 80
    assert all(len(p.turns) == 2 and len(p.references) == 2 for p in prompts)
    assert all(p.references == ["", ""] for p, r in zip(prompts, rows(MT_BENCH), strict=False) if "reference" not in r)
    first = rows(MT_BENCH)[0]
    assert prompts[0].turns == first["turns"] and prompts[0].source_id == str(first["question_id"])
    assert prompts[0].category == "writing"


def test_all_three_files_load_in_order_with_the_default_mapping():
    prompts = load_prompts([str(SEED_TASKS), str(USER_ORIENTED), str(MT_BENCH)])
    assert len(prompts) == 175 + 252 + 80
    assert [p.source_line for p in prompts[:3]] == [1, 2, 3]
    assert prompts[0].source_id == "seed_task_0" and prompts[175].source_id == "user_oriented_task_0"
    assert prompts[175].category == "Grammarly"  # motivation_app, the default's second category column


def test_mt_bench_reference_answers_are_read_by_the_default_mapping():
    prompts = load_prompts([str(MT_BENCH)])
    with_reference = [p for p in prompts if any(p.references)]
    assert len(with_reference) == sum("reference" in r for r in rows(MT_BENCH)) == 39
    fibonacci = next(p for p in prompts if p.source_id == "122")
    assert "```" in fibonacci.references[0] and len(fibonacci.references) == 2


def test_ids_do_not_depend_on_the_path_spelling_or_working_directory(tmp_path, monkeypatch):
    absolute = load_prompts([str(SEED_TASKS)])
    monkeypatch.chdir(ROOT)
    relative = load_prompts(["../shared/data/instructions/self_instruct_seed_tasks.jsonl"])
    monkeypatch.chdir(INSTRUCTIONS)
    bare = load_prompts(["./self_instruct_seed_tasks.jsonl"])
    copy = tmp_path / "elsewhere" / SEED_TASKS.name
    write(copy, SEED_TASKS.read_text(encoding="utf-8"))
    moved = load_prompts([os.path.relpath(copy)])
    assert [p.id for p in absolute] == [p.id for p in relative] == [p.id for p in bare] == [p.id for p in moved]
    assert relative[0].turns == absolute[0].turns


def test_csv_source_with_custom_column_mapping(tmp_path):
    path = write(
        tmp_path / "quiz.csv", 'q,a,topic\nWhat is 6 times 7?,42,math\n\n"Name a colour, any colour.",Blue,art\n'
    )
    prompts = load_prompts([str(path)], Mapping(instruction="q", output="a", category="topic"))
    assert [(p.turns, p.references, p.category, p.source_line) for p in prompts] == [
        (["What is 6 times 7?"], ["42"], "math", 2),
        (["Name a colour, any colour."], ["Blue"], "art", 4),
    ]
    # No id column: the line number is the row's own id.
    assert [p.source_id for p in prompts] == ["2", "4"]
    with pytest.raises(DramatisError, match=r"quiz\.csv:2: no instruction .*instructions\.instruction_field"):
        load_prompts([str(path)])  # the default mapping looks for 'instruction', which this file lacks


def test_csv_line_numbers_count_the_lines_of_a_multiline_cell(tmp_path):
    path = write(tmp_path / "multi.csv", 'q,a\n"Fix this:\nline two",ok\n,7\n')
    with pytest.raises(DramatisError, match=r"multi\.csv:4: no instruction"):
        load_prompts([str(path)], Mapping(instruction="q", output="a"))


@pytest.mark.parametrize(
    "files",
    [
        {"a/tasks.jsonl": '{"instruction": "Say hello."}\n', "b/tasks.jsonl": '{"instruction": "Say goodbye."}\n'},
        {"tasks.jsonl": '{"id": "1", "instruction": "Say hello."}\n{"id": "1", "instruction": "Say goodbye."}\n'},
    ],
    ids=["same_file_name", "repeated_row_id"],
)
def test_different_prompts_never_share_an_id(tmp_path, files):
    paths = [str(write(tmp_path / name, text)) for name, text in files.items()]
    try:
        prompts = load_prompts(paths)
    except DramatisError:
        return  # refusing the collision is as good as avoiding it
    assert len({p.id for p in prompts}) == len(prompts) == 2


def test_turns_are_normalized_but_keep_their_line_breaks():
    row = {"instruction": "  Sort   these\u0301 ", "input": "- b\n\n-   a  "}
    prompt = to_prompt(row, Mapping(), "x.jsonl", 7)
    assert prompt.turns == ["Sort thesé\n\n- b\n\n- a"] and prompt.references == [""]
    assert prompt.source_id == "7" and prompt.source_line == 7


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("missing.jsonl", None, r"missing\.jsonl: instruction file not found"),
        ("tasks.txt", "Say hello.\n", r"tasks\.txt: unknown instruction format '\.txt'"),
        ("broken.jsonl", '{"instruction": "ok"}\n{"instruction": \n', r"broken\.jsonl:2: not valid JSON"),
        (
            "noinst.jsonl",
            '{"instruction": "ok"}\n\n{"task": "Say hello."}\n',
            r"noinst\.jsonl:3: no instruction .*found: task\); set instructions\.instruction_field",
        ),
        ("empty.jsonl", "\n\n", r"empty\.jsonl: no instructions found"),
        ("turns_str.jsonl", '{"turns": "Say hello."}\n', r"turns_str\.jsonl:1: 'turns' must be a non-empty list"),
        ("turns_empty.jsonl", '{"turns": []}\n', r"turns_empty\.jsonl:1: 'turns' must be a non-empty list"),
        ("turn_obj.jsonl", '{"turns": [{"text": "hi"}]}\n', r"turn_obj\.jsonl:1: 'turns' is dict, not text"),
        ("row_list.jsonl", '["Say hello."]\n', r"row_list\.jsonl:1: a row must be an object"),
    ],
)
def test_bad_sources_fail_naming_file_and_line(tmp_path, name, text, message):
    path = tmp_path / name
    if text is not None:
        write(path, text)
    with pytest.raises(DramatisError, match=message):
        load_prompts([str(path)])


def test_no_sources_names_the_recipe_key():
    with pytest.raises(DramatisError, match=r"instructions\.sources"):
        load_prompts([])
