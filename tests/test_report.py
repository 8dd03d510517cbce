"""The data report: numbers gathered exactly from a run folder, plots that are real PNGs, the leakage verdict,
an atomic report folder — on a run built by the real stage runner with planted rejects, and on a real tiny-model run.

The planted run uses real Persona Hub seeds and real record types; its stages are plain generators (no LLM), so
every counter is known in advance.
"""

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from matplotlib.image import imread

from personas.errors import DramatisError
from personas.profiles import character
from personas.records import Character, Persona, ProfileFields
from personas.seeds import persona
from synth.dataset import write_dataset
from synth.pipeline import STAGES
from synth.records import Dialogue, Message, Prompt, Task
from synth.report import gather, leakage, tokens, write_report
from synth.runner import Reject, Stage, load_records, run_stage
from tests.helpers import SEEDS_5K

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SEED_TEXTS = [json.loads(line)["persona"] for line in SEEDS_5K.read_text().splitlines()[:9]]
PROFILES = [  # name, age, language, experience — distinct people, so the dataset's leakage check finds none
    ("Darnell Brooks", 54, "en", "Covered the Chicago Bulls for the Tribune through both three-peats."),
    ("Walter Kowalski", 98, "en", "Landed at Omaha Beach, then ran a hardware store in Hamtramck for forty years."),
    ("Harriet Pemberton", 61, "en", "Has published nine historical novels set in Georgian England."),
    ("Rajesh Iyer", 57, "en", "Examines chemical patent applications at the Indian Patent Office."),
    ("Viktor Lindqvist", 36, "en", "Plays rhythm guitar in a Swedish thrash band and boxes four mornings a week."),
    ("张玉平", 45, "zh", "在杭州的一所中学教了二十年数学，周末在西湖边下围棋。"),
    ("Kai Nakamura", 16, "en", "Restored his uncle's 1989 modem to dial into a hobbyist BBS."),
]
SPLIT_OF = ["train", "train", "train", "validation", "heldout"]  # the five characters the split stage keeps
LONG_REPLY = "Well now, " + "let me tell you about the old days at the plant, " * 12


def stage(name: str, out_type, process, chunk_size: int = 4) -> Stage:
    return Stage(name, out_type, process, chunk_size, {"test": name})


def make_character(p: Persona, i: int) -> Character:
    name, age, language, experience = PROFILES[i]
    fields = ProfileFields(
        name=name,
        age=age,
        gender="unspecified",
        race="unspecified",
        born_place="somewhere",
        appearance="Medium height.",
        experience=experience,
        personality=f"Personality number {i}.",
        speech_style="Direct.",
        catchphrases=["Right then."],
        relationships=["a sister"],
        likes=["tea"],
        dislikes=["noise"],
    )
    return character(p, fields, language, "planted", i, 1)


def seeds_process(chunk, counters):
    for p in chunk:
        if not p.text:
            yield Reject(id=p.id, stage="seeds", reason="empty")
        elif p.source_line == 99:  # the planted copy of line 1
            yield Reject(id=p.id, stage="seeds", reason="duplicate", duplicate_of=p.id)
        elif p.source_line > 7:
            counters["not_sampled"] += 1
        else:
            yield p


def profiles_process(chunk, counters):
    for p in chunk:
        counters.update(prompt_tokens=100, cached_prompt_tokens=60, output_tokens=50, requests_generated=1)
        if p.source_line == 3:
            counters.update(attempt_failed_wrong_language=1, requests_generated=1, prompt_tokens=100, output_tokens=50)
        if p.source_line == 7:
            yield Reject(id=p.id, stage="profiles", reason="truncated", output='{"name": "Kai')
        else:
            yield make_character(p, p.source_line - 1)


def split_process(chunk, counters):
    for c in chunk:
        if c.name == "张玉平":  # planted as a copy of a held-out character
            yield Reject(id=c.id, stage="split", reason="heldout_near_duplicate", duplicate_of="c-elsewhere")
            continue
        i = [p[0] for p in PROFILES if p[0] != "张玉平"].index(c.name)
        counters[f"split_{SPLIT_OF[i]}"] += 1
        yield c.model_copy(update={"split": SPLIT_OF[i]})


PROMPTS = [
    Prompt(
        id=f"q-{i}",
        source="planted.jsonl",
        source_id=str(i),
        source_line=i + 1,
        turns=[text],
        references=[""],
        language="en",
    )
    for i, text in enumerate(
        ["What did you do today?", "Tell me about your work.", "What did you do today?", "What do you fear most?"]
    )
]


def prompts_process(chunk, counters):
    for p in chunk:
        yield Reject(id=p.id, stage="prompts", reason="duplicate", duplicate_of="q-0") if p.id == "q-2" else p


def dialogue(task: Task, c: Character, prompt: Prompt, reply: str, turns: int) -> Dialogue:
    messages = [Message(role="system", content=c.system_prompt)]
    for t in range(turns):
        messages += [
            Message(role="user", content=prompt.turns[0] + f" ({t})"),
            Message(role="assistant", content=reply),
        ]
    return Dialogue(
        id=task.id,
        messages=messages,
        character_id=c.id,
        character_name=c.name,
        mode=task.mode,
        split=task.split,
        prompt_id=prompt.id,
        prompt_source=prompt.source,
        prompt_source_id=prompt.source_id,
        turns=turns,
        language=c.language,
        system_template=c.system_template,
        model="planted",
        seed=1,
        requests=turns,
        prompt_tokens=300 * turns,
        output_tokens=40 * turns,
    )


def make_dialogues_process(characters: dict[str, Character], prompts: dict[str, Prompt]):
    def process(chunk, counters):
        for task in chunk:
            counters.update(prompt_tokens=1000, cached_prompt_tokens=800, output_tokens=100, requests_generated=2)
            c = characters[task.character_id]
            # Planted drops: two of the held-out character's three dialogues, one of the third training character's.
            if (c.name, task.prompt_id) in (("Viktor Lindqvist", "q-0"), ("Harriet Pemberton", "q-0")):
                yield Reject(id=task.id, stage="dialogues", reason="echo", output="You are ...")
            elif (c.name, task.prompt_id) == ("Viktor Lindqvist", "q-1"):
                yield Reject(id=task.id, stage="dialogues", reason="empty")
            else:
                counters["kept_output_tokens"] += 75
                reply = (
                    LONG_REPLY if (c.name, task.prompt_id) == ("Darnell Brooks", "q-3") else f"{c.name} here, fine."
                )
                yield dialogue(task, c, prompts[task.prompt_id], reply, 1 + len(task.prompt_id + c.name) % 2)

    return process


def curate_process(chunk, counters):
    for d in chunk:
        if d.character_name == "Darnell Brooks" and d.prompt_id == "q-1":
            yield Reject(id=d.id, stage="curate", reason="near_duplicate", duplicate_of="d-other")
        else:
            counters["repaired_unicode"] += d.character_name == "Walter Kowalski"  # a curate note, not an outcome
            yield d


def build_run(run: Path, *, dataset: bool = True) -> Path:
    personas = [persona(text, "personahub", n) for n, text in enumerate(SEED_TEXTS, start=1)]
    personas += [
        personas[0].model_copy(update={"source_line": 99}),
        Persona(id="p-empty", text="", language="en", source="personahub", source_line=50),
    ]
    run_stage(stage("seeds", Persona, seeds_process), personas, run / "seeds", {})
    run_stage(
        stage("profiles", Character, profiles_process), load_records(run / "seeds", Persona), run / "profiles", {}
    )
    run_stage(stage("split", Character, split_process), load_records(run / "profiles", Character), run / "split", {})
    run_stage(stage("prompts", Prompt, prompts_process), PROMPTS, run / "prompts", {})
    characters = {c.id: c for c in load_records(run / "split", Character)}
    prompts = {p.id: p for p in load_records(run / "prompts", Prompt)}
    tasks = [
        Task(id=f"d-{c.name[:4]}-{p}-{mode}", prompt_id=p, character_id=c.id, mode=mode, user_turns=1, split=c.split)
        for c in characters.values()
        for p, mode in zip(prompts, "RGR", strict=False)
    ]
    run_stage(stage("dialogues", Dialogue, make_dialogues_process(characters, prompts)), tasks, run / "dialogues", {})
    run_stage(stage("curate", Dialogue, curate_process), load_records(run / "dialogues", Dialogue), run / "curate", {})
    if dataset:
        write_dataset(
            run / "dataset",
            load_records(run / "curate", Dialogue),
            list(characters.values()),
            [],
            info={"recipe": "planted", "model": "planted"},
        )
    return run


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    return build_run(tmp_path_factory.mktemp("planted") / "run")


@pytest.fixture
def run_copy(planted, tmp_path) -> Path:
    return Path(shutil.copytree(planted, tmp_path / "run"))


def embedded_pngs(markdown: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", markdown)


def assert_valid_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000, path
    height, width = imread(path).shape[:2]
    assert height >= 200 and width >= 400, path


# --- numbers -------------------------------------------------------------------------------------------------------


def test_kept_and_dropped_by_reason_are_counted_exactly_with_their_shares(planted):
    o = gather(planted)["outcomes"]
    assert o["seeds"] == {
        "inputs": 11,
        "kept": 7,
        "not_sampled": 2,
        "dropped": {"duplicate": 1, "empty": 1},
        "share": {"kept": 7 / 11, "not_sampled": 2 / 11, "dropped": {"duplicate": 1 / 11, "empty": 1 / 11}},
        "retried": {},
        "other": {},
    }
    assert o["profiles"]["dropped"] == {"truncated": 1} and o["profiles"]["kept"] == 6
    assert o["profiles"]["share"]["dropped"] == {"truncated": 1 / 7} and o["profiles"]["retried"] == {
        "wrong_language": 1
    }
    assert o["split"]["dropped"] == {"heldout_near_duplicate": 1} and o["split"]["kept"] == 5
    assert o["prompts"]["dropped"] == {"duplicate": 1} and o["prompts"]["share"]["kept"] == 3 / 4
    assert (o["dialogues"]["inputs"], o["dialogues"]["kept"], o["dialogues"]["dropped"]) == (
        15,
        12,
        {"echo": 2, "empty": 1},
    )
    assert o["dialogues"]["share"]["dropped"] == {"echo": 2 / 15, "empty": 1 / 15}


def test_tokens_yield_and_prefix_cache_share_come_from_the_counters(planted):
    t = gather(planted)["tokens"]
    assert t["per_stage"]["profiles"] == {
        "prompt_tokens": 800,
        "cached_prompt_tokens": 420,
        "output_tokens": 400,
        "reused_prompt_tokens": 0,
        "reused_output_tokens": 0,
        "requests_generated": 8,
        "requests_cached": 0,
    }
    assert t["per_stage"]["dialogues"] == {
        "prompt_tokens": 15000,
        "cached_prompt_tokens": 12000,
        "output_tokens": 1500,
        "reused_prompt_tokens": 0,
        "reused_output_tokens": 0,
        "requests_generated": 30,
        "requests_cached": 0,
    }
    assert t["total"]["prompt_tokens"] == 15800 and t["total"]["output_tokens"] == 1900
    assert t["yield"] == 12 * 75 / 1500 and t["prefix_cache_share"] == 12420 / 15800
    assert set(t["per_stage"]) == {"profiles", "dialogues"}  # stages that spent nothing are left out


def test_rows_per_character_balance_and_splits_come_from_the_final_rows(planted):
    n = gather(planted)
    # Curated rows: Darnell 3 - 1 (curate), Walter 3, Harriet 3 - 1 (echo), Rajesh 3, Viktor 3 - 2 (echo, empty).
    assert n["final"] == {"source": "dataset", "rows": 11}
    b = n["balance"]
    assert (b["characters"], b["min"], b["median"], b["max"]) == (5, 1, 2, 3)
    assert sorted(b["rows"].values()) == [1, 2, 2, 3, 3]
    assert n["characters_by_split"] == {"train": 3, "validation": 1, "heldout": 1}
    assert {k: v["rows"] for k, v in n["splits"].items()} == {"train": 7, "validation": 3, "heldout": 1}
    info = json.loads((planted / "dataset" / "dataset_info.json").read_text())["splits"]
    assert {k: v["rows"] for k, v in info.items()} == {k: v["rows"] for k, v in n["splits"].items()}


def test_distributions_hold_one_value_per_record(planted):
    d = gather(planted)["dists"]
    assert d["persona_chars"] == [len(p.text) for p in load_records(planted / "seeds", Persona)]
    assert len(d["profile_chars"]) == 5 and d["languages"] == {"en": 5}
    rows = gather(planted)["final"]["rows"]
    assert sum(d["turns"].values()) == rows
    assert sum(len(v) for v in d["reply_chars"].values()) == sum(t * n for t, n in d["turns"].items())


@pytest.mark.parametrize(
    "check,status",
    [
        ({"overlap": 0, "near_duplicates": 0}, "PASS"),
        ({"overlap": 1, "near_duplicates": 0}, "FAIL"),
        ({"overlap": 0, "near_duplicates": 2}, "FAIL"),
        ({"overlap": 0}, "FAIL"),  # a missing number is not a zero
    ],
)
def test_leakage_passes_only_when_overlap_and_near_duplicates_are_zero(check, status):
    assert leakage({"leakage": check})["status"] == status
    assert leakage(None)["status"] == leakage({})["status"] == "NOT CHECKED"


def test_samples_are_deterministic_per_mode_and_clip_long_turns(planted):
    first, again = gather(planted)["samples"], gather(planted)["samples"]
    assert first == again and set(first) == {"R", "G"} and all(len(v) == 2 for v in first.values())
    for s in first["R"] + first["G"]:
        assert s["system"].startswith("You are ") and all(len(text) <= 300 for _, text in s["messages"])


# --- the written report --------------------------------------------------------------------------------------------


def test_report_names_every_stage_and_embeds_only_valid_pngs(run_copy):
    path = write_report(run_copy)
    assert path == run_copy / "report" / "report.md"
    md = path.read_text()
    for name in ("seeds", "profiles", "split", "prompts", "dialogues"):
        assert f"### {name}\n" in md
    assert "## Splits (dataset)" in md and "## Sample rows" in md
    pngs = embedded_pngs(md)
    assert set(pngs) == {
        "outcomes.png",
        "tokens.png",
        "turns.png",
        "persona_length.png",
        "profile_length.png",
        "response_length.png",
        "languages.png",
        "balance.png",
    }
    for name in pngs:
        assert_valid_png(path.parent / name)
    assert "- **Seeds**: 11 read → 7 kept (2 not sampled, 2 dropped)" in md
    assert "| dropped: echo | 2 | 13.3% |" in md and "| dropped: truncated | 1 | 14.3% |" in md
    assert "- **Token yield**: 60.0% of dialogue output tokens ended in kept rows (900 of 1,500)" in md
    assert "rows per character min 1, median 2, max 3" in md
    assert "- **Leakage**: PASS — 0 held-out characters in training splits, 0 near-duplicates" in md
    assert "the split stage dropped 1 such character(s) earlier" in md
    assert "…" in md  # the long reply, clipped
    assert write_report(run_copy).read_text() == md  # same run, same report


def test_curate_stage_is_reported_between_dialogues_and_dataset(run_copy):
    n = gather(run_copy)
    assert n["stages"] == ["seeds", "profiles", "split", "prompts", "dialogues", "curate", "dataset"]
    assert n["outcomes"]["curate"]["dropped"] == {"near_duplicate": 1}
    assert n["outcomes"]["curate"]["other"] == {"repaired_unicode": 3}
    md = write_report(run_copy).read_text()
    assert "Also counted: repaired_unicode 3" in md
    assert "- **Kept after curation**: 11 of 12 (91.7%); 73.3% of the planned dialogues" in md
    assert md.index("### dialogues") < md.index("### curate")


def test_leakage_numbers_above_zero_fail_in_the_report(run_copy):
    info_path = run_copy / "dataset" / "dataset_info.json"
    info = json.loads(info_path.read_text())
    info["leakage"].update(overlap=1, near_duplicates=2)
    info_path.write_text(json.dumps(info))
    md = write_report(run_copy).read_text()
    assert "- **Leakage**: FAIL — 1 held-out characters in training splits, 2 near-duplicates" in md


def test_a_run_with_only_some_stages_gets_a_report_of_those(tmp_path):
    run = build_run(tmp_path / "run", dataset=False)
    shutil.rmtree(run / "curate")
    n = gather(run)
    assert (
        n["stages"] == ["seeds", "profiles", "split", "prompts", "dialogues"] and n["final"]["source"] == "dialogues"
    )
    assert n["final"]["rows"] == 12 and n["leakage"]["status"] == "NOT CHECKED"
    for name in ("split", "prompts", "dialogues"):
        shutil.rmtree(run / name)
    md = write_report(run).read_text()
    assert "### seeds" in md and "### dialogues" not in md and "NOT CHECKED" in md
    assert set(embedded_pngs(md)) == {
        "outcomes.png",
        "tokens.png",
        "persona_length.png",
        "profile_length.png",
        "languages.png",
    }
    for name in embedded_pngs(md):
        assert_valid_png(run / "report" / name)


def test_a_folder_without_a_finished_stage_is_refused_by_name(tmp_path):
    with pytest.raises(DramatisError, match=re.escape(str(tmp_path))):
        write_report(tmp_path)
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "manifest.json").write_text(
        json.dumps({"complete": False, "counters": {}, "inputs": 3, "chunks": []})
    )
    with pytest.raises(DramatisError, match="no finished stage"):
        write_report(tmp_path)
    assert not (tmp_path / "report").exists()


def test_a_failed_render_leaves_the_old_report_whole(run_copy, monkeypatch):
    old = write_report(run_copy).read_text()
    (run_copy / "report" / "stale.txt").write_text("from an older report")
    monkeypatch.setattr("synth.report.render_markdown", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_report(run_copy)
    assert (run_copy / "report" / "report.md").read_text() == old and (run_copy / "report" / "stale.txt").exists()
    assert not (run_copy / "report.tmp").exists()
    monkeypatch.undo()
    write_report(run_copy)
    assert not (run_copy / "report" / "stale.txt").exists()  # a new report replaces the old folder whole


# --- a real run ----------------------------------------------------------------------------------------------------


def test_report_of_a_real_tiny_run_matches_its_manifests(tiny_run):
    md = write_report(tiny_run).read_text()
    manifests = {
        s: json.loads((tiny_run / s / "manifest.json").read_text())
        for s in STAGES
        if (tiny_run / s / "manifest.json").exists()
    }
    assert {"seeds", "profiles", "split", "prompts", "dialogues"} <= set(manifests)
    for name in manifests:
        assert f"### {name}\n" in md
    assert (tiny_run / "dataset" / "dataset_info.json").exists() and "## Splits (dataset)" in md
    pngs = embedded_pngs(md)
    assert {"outcomes.png", "tokens.png", "turns.png", "balance.png", "response_length.png"} <= set(pngs)
    for name in pngs:
        assert_valid_png(tiny_run / "report" / name)
    c = {s: m["counters"] for s, m in manifests.items()}
    assert f"- **Seeds**: {manifests['seeds']['inputs']:,} read → {c['seeds']['kept']:,} kept" in md
    assert f"- **Profiles**: {manifests['profiles']['inputs']:,} personas → {c['profiles']['kept']:,} characters" in md
    assert (
        f"- **Dialogues**: {manifests['dialogues']['inputs']:,} planned → "
        f"{c['dialogues']['kept']:,} generated and kept" in md
    )
    spent = Counter()
    for counters in c.values():
        spent.update({k: counters.get(k, 0) for k in ("prompt_tokens", "output_tokens", "cached_prompt_tokens")})
    assert f"- **Tokens spent**: {spent['prompt_tokens']:,} prompt + {spent['output_tokens']:,} output" in md
    assert f"({spent['cached_prompt_tokens']:,} of {spent['prompt_tokens']:,})" in md
    info = json.loads((tiny_run / "dataset" / "dataset_info.json").read_text())
    rows = sum(s["rows"] for s in info["splits"].values())
    assert f"- **Final rows** (dataset): {rows:,}" in md
    assert "- **Leakage**: PASS — 0 held-out characters in training splits, 0 near-duplicates" in md
    print("\n".join(line for line in md.splitlines() if line.startswith("- **")))


def test_token_yield_counts_the_output_a_resumed_run_took_from_the_request_cache():
    # A resumed run generated 100 output tokens now and reused 300 from the cache; its kept rows hold 200.
    counters = {
        "output_tokens": 100,
        "reused_output_tokens": 300,
        "kept_output_tokens": 200,
        "prompt_tokens": 50,
        "cached_prompt_tokens": 10,
        "reused_prompt_tokens": 900,
        "requests_generated": 2,
        "requests_cached": 6,
    }
    t = tokens({"dialogues": {"counters": counters}})
    assert t["yield"] == 0.5 and t["dialogue_output_tokens"] == 400
    assert t["total"]["reused_prompt_tokens"] == 900 and t["prefix_cache_share"] == 0.2
