"""Curation filters and dedup on planted cases and on real data from ../shared/data; `dramatis curate` re-curates a
finished run from its shards."""

import json
import shutil

import pytest

from personas.errors import Rejected
from personas.records import Character
from personas.seeds import load_seeds
from synth.curate import (
    check_reply,
    check_structure,
    curate_dialogue,
    curate_stage,
    duplicate_responses,
    fix_unicode,
    garbled_share,
    repeated_share,
)
from synth.pipeline import duplicate_characters, seeds_stage
from synth.recipe import CurateConfig, DedupConfig, Recipe
from synth.records import Dialogue, Message
from synth.runner import load_records, run_stage, shard_paths
from synth.shards import read_shard
from tests.helpers import SEEDS_5K, SHARED, run_cli

SELF_INSTRUCT = SHARED / "instructions" / "self_instruct_seed_tasks.jsonl"


def dialogue(
    did: str, *turns: str, language: str = "en", name: str = "Mara Quill", character: str = "c-1"
) -> Dialogue:
    messages = [Message(role="system", content=f"You are {name}.")]
    for i, text in enumerate(turns):
        messages.append(Message(role="user" if i % 2 == 0 else "assistant", content=text))
    return Dialogue(
        id=did,
        messages=messages,
        character_id=character,
        character_name=name,
        mode="G",
        split="train",
        prompt_id="q-1",
        prompt_source="test",
        prompt_source_id="1",
        turns=len(turns) // 2,
        language=language,
        system_template="profile@1",
        model="test",
        seed=0,
        requests=1,
        prompt_tokens=1,
        output_tokens=1,
    )


def reason_of(call) -> str:
    with pytest.raises(Rejected) as info:
        call()
    return info.value.reason


# ------------------------------------------------------------------------------------------- filters


def test_mojibake_is_repaired_and_text_still_broken_is_dropped():
    assert fix_unicode("The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.") == "The Mona Lisa doesn’t have eyebrows."
    assert reason_of(lambda: fix_unicode("I lost the \ufffd\ufffd part")) == "mojibake"
    # Correct text is left exactly as written: full-width Chinese punctuation, curly quotes, accents.
    for text in ["你好，世界！（笑）", "It’s “fine” — ok", "naïve café", "Привет, как дела?"]:
        assert fix_unicode(text) == text


def test_chinese_is_converted_only_when_the_recipe_asks():
    d = dialogue("d1", "你會說話嗎？", "我會說話，這是真的。", language="zh", name="林")
    keep = curate_dialogue(d, CurateConfig(), {})
    assert keep is d
    simplified = curate_dialogue(d, CurateConfig(chinese="simplified"), {})
    assert [m.content for m in simplified.messages[1:]] == ["你会说话吗？", "我会说话，这是真的。"]
    traditional = curate_dialogue(simplified, CurateConfig(chinese="traditional"), {})
    assert traditional.messages[2].content == "我會說話，這是真的。"
    english = dialogue("d2", "Hi", "Hello there, stranger.")
    assert curate_dialogue(english, CurateConfig(chinese="simplified"), {}) is english


def test_garbled_share_counts_markup_and_control_characters_but_not_code():
    gemma_residue = "In my opinion, what are the qualities? }</p><p>Follow me</p><p>Answer: Strength</p><p>"
    assert garbled_share(gemma_residue) > 0.2
    assert garbled_share("A plain answer, with punctuation; and numbers 1, 2, 3!") == 0
    assert garbled_share("Use this:\n```html\n<p>hello</p>\n```\nThat is all.") == 0
    assert garbled_share("bad\x00\x01\x02 text") == pytest.approx(3 / 11)


def test_repeated_share_flags_a_looping_model_and_spares_prose():
    loop = "I love the sea and " * 10
    prose = (
        "The harbour smelled of tar and salt, and the gulls fought over the fish heads the boys threw from the pier "
        "while my father mended nets and cursed the weather."
    )
    assert repeated_share(loop) > 0.7
    assert repeated_share(prose) == 0
    assert repeated_share("yes yes yes") == 0  # too short to call a loop
    assert repeated_share("好的好的好的好的好的好的好的好的") > 0.5  # Han characters count as words


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "I cannot assist with that request.",
        "I must decline this request.",
        "抱歉，我无法提供这方面的帮助。",
        "Es tut mir leid, aber ich kann dabei nicht helfen.",
        "Извините, но я не могу помочь с этим.",
    ],
)
def test_assistant_refusals_are_dropped(text):
    assert reason_of(lambda: check_reply(text, dialogue("d", "q", text), CurateConfig(), {})) == "refusal"


@pytest.mark.parametrize(
    "text",
    [
        "I can't tell you where the gold is buried, lad. Not yet.",
        "Sorry, I'm late! The bus broke down again.",
        "I cannot believe you came all this way in the rain.",
    ],
)
def test_a_character_saying_no_is_role_play_not_a_refusal(text):
    check_reply(text, dialogue("d", "q", text), CurateConfig(), {})


def test_length_bounds_turn_counts_and_structure():
    cfg = CurateConfig(min_chars=5, max_chars=40, min_turns=2, max_turns=2)
    assert reason_of(lambda: check_reply("Hm.", dialogue("d", "q", "Hm."), cfg, {})) == "too_short"
    assert reason_of(lambda: check_reply("x" * 41, dialogue("d", "q", "x"), cfg, {})) == "too_long"
    assert reason_of(lambda: check_structure(dialogue("d", "q", "An answer."), cfg)) == "too_few_turns"
    assert reason_of(lambda: check_structure(dialogue("d", *["q", "An answer."] * 3), cfg)) == "too_many_turns"
    check_structure(dialogue("d", *["q", "An answer."] * 2), cfg)
    assert (
        reason_of(lambda: check_structure(dialogue("d", "q", "An answer.", "a question left unanswered"), cfg))
        == "missing_turns"
    )
    assert reason_of(lambda: check_structure(dialogue("d", "q", " ... "), CurateConfig())) == "empty_turn"


def test_generation_checks_run_again_on_stored_turns():
    others = {"jonas weber": "Jonas Weber"}
    d = dialogue("d", "Who are you?", "x")
    assert (
        reason_of(lambda: check_reply("As an AI language model, I have no past.", d, CurateConfig(), others))
        == "assistant_speak"
    )
    assert (
        reason_of(lambda: check_reply("I am Jonas Weber, the baker.", d, CurateConfig(), others)) == "wrong_character"
    )
    assert reason_of(lambda: check_reply("我是一个面包师，住在这里。", d, CurateConfig(), others)) == "wrong_language"
    check_reply("I am Jonas Weber, the baker.", d, CurateConfig(checks=False), others)


# Character turns seen in the training split of `make synth`: leftovers of the JSON-constrained output.
DEBRIS_TURNS = [
    ("]} I have been working at the harbour since I was a boy, mending nets.", "opens with ']}'"),
    (">Hey, I have a question about the ferry timetable, if you have a minute.", "opens with '>'"),
    ("I keep the ferry log myself, every crossing.}}}{功夫user} staan(for, have) the tide", "'}}}'"),
    ('"} Well, the bakery opens at six, as it always has.', "opens with '\"}'"),
    ("Sure, come by the bakery tomorrow.<end_of_turn>\n<start_of_turn>user\nThanks!", "'<end_of_turn>'"),
    ("I bake sourdough every morning.<|im_end|>\n<|im_start|>user\nAnd then?", "'<|im_end|>'"),
    ("I bake sourdough every morning, user} and then I open the shop.", "'user}'"),
    ('I had a quiet morning. Please support your response.}")}}}}}}}}}}]} }}}}}}', "'}\")}}}}}}}}}}]} }}}}}}'"),
]
CLEAN_TURNS = [
    "I knead the dough before dawn, then I sit by the window with my tea.",
    "Use `{}` in Python's format strings: `'{} loaves'.format(12)` prints 12 loaves.",
    'My recipe file looks like this:\n```json\n{"bread": {"flour": 500, "water": 350}}\n```\nThat is all of it.',
    "他说：「明天见。」我点点头，回茶馆去了。",
    "(笑) 好啊，明天我请你喝茶。",
    "[laughs] You would not last a day on my boat, lad.",
    '"Well," I said, "we open late on Sundays."',
    "Every user of the harbour knows my model of the old ferry (the blue one [1970]).",
]


@pytest.mark.parametrize("text,detail", DEBRIS_TURNS)
def test_json_and_template_debris_in_a_character_turn_is_dropped_with_what_it_was(text, detail):
    with pytest.raises(Rejected) as e:
        check_reply(text, dialogue("d", "q", text), CurateConfig(checks=False), {})
    assert (e.value.reason, e.value.detail) == ("debris", detail)
    try:  # curate.debris=false keeps it, unless another filter drops it (template tags are markup too)
        check_reply(text, dialogue("d", "q", text), CurateConfig(debris=False, checks=False), {})
    except Rejected as other:
        assert other.reason == "garbled" and "_of_turn>" in text


@pytest.mark.parametrize("text", CLEAN_TURNS)
def test_braces_in_code_quotes_and_cues_are_not_debris(text):
    check_reply(text, dialogue("d", "q", text), CurateConfig(checks=False), {})  # the language is not checked here


def test_a_dialogue_with_debris_in_a_later_turn_is_dropped_naming_the_turn():
    d = dialogue("d", "Who are you?", "I am Mara, the baker.", "And?", "]} I have been working since dawn.")
    with pytest.raises(Rejected) as e:
        curate_dialogue(d, CurateConfig(), {})
    assert (e.value.reason, e.value.detail) == ("debris", "turn 4: opens with ']}'")


# ------------------------------------------------------------------------------------------- dedup


@pytest.fixture(scope="module")
def real_answers() -> list[str]:
    rows = [json.loads(line) for line in SELF_INSTRUCT.read_text(encoding="utf-8").splitlines()]
    return [r["instances"][0]["output"] for r in rows if len(r["instances"][0]["output"].split()) >= 20]


def test_the_same_answer_from_another_character_is_dropped_naming_the_first(real_answers):
    answers = real_answers[:40]
    rows = [dialogue(f"d{i}", "question", a, character=f"c{i}", name=f"Person {i}") for i, a in enumerate(answers)]
    words = answers[3].split()
    rows += [
        dialogue("copy", "another question", answers[3], character="c99", name="Someone Else"),
        dialogue("recased", "q", answers[5].upper(), character="c98", name="Other"),
        dialogue("one_word", "q", " ".join(words[:-1] + ["indeed"]), character="c97", name="Third"),
    ]
    found = duplicate_responses(rows, DedupConfig())
    assert found == {
        "copy": ("duplicate_response", "d3"),
        "recased": ("duplicate_response", "d5"),
        "one_word": ("near_duplicate_response", "d3"),
    }


def test_semantic_dedup_is_optional_and_english_only(real_answers):
    a = "The best way to learn to swim is to start in shallow water with an instructor and practice floating first."
    b = (  # cosine 0.96
        "To learn swimming, the best way is starting in shallow water with an instructor "
        "and practicing floating first."
    )
    rows = [
        dialogue("a", "q", a),
        dialogue("b", "q", b, character="c2", name="B"),
        dialogue("z1", "q", "我每天早上六点起床，去公园打太极拳。", language="zh"),
        dialogue("z2", "q", "晚上我喜欢在家里看书，喝一杯绿茶。", language="zh", character="c3", name="C"),
    ]
    assert duplicate_responses(rows, DedupConfig()) == {}
    found = duplicate_responses(rows, DedupConfig(semantic=True))
    assert found == {"b": ("semantic_duplicate_response", "a")}


def test_seeds_stage_drops_near_duplicates_of_real_persona_hub_seeds_with_the_line_they_repeat(tmp_path):
    personas = load_seeds(str(SEEDS_5K), "persona")[:300]
    original = max(personas[:50], key=lambda p: len(p.text.split()))
    planted = tmp_path / "seeds.jsonl"
    lines = [json.dumps({"persona": p.text}) for p in personas]
    lines.append(json.dumps({"persona": original.text.rstrip(".") + "!"}))  # punctuation only: a near-duplicate
    planted.write_text("\n".join(lines) + "\n")
    seeds = load_seeds(str(planted), "persona")
    manifest = run_stage(seeds_stage(Recipe(), seeds), seeds, tmp_path / "seeds", {})
    rejects = [row for path in shard_paths(tmp_path / "seeds", rejects=True) for row in read_shard(path).to_pylist()]
    assert manifest["counters"]["kept"] == 300 and manifest["counters"]["dropped_near_duplicate"] == 1
    [reject] = rejects
    assert reject["duplicate_of"] == original.id and f"line {original.source_line}" in reject["detail"]
    off = Recipe()
    off.dedup.seeds = False
    assert run_stage(seeds_stage(off, seeds), seeds, tmp_path / "off", {})["counters"]["kept"] == 301


def make_character(cid: str, name: str, experience: str, language: str = "en") -> Character:
    return Character(
        id=cid,
        persona_id="p-" + cid,
        persona="a persona",
        language=language,
        system_prompt=f"You are {name}.",
        system_template="profile@1",
        model="test",
        seed=0,
        attempts=1,
        name=name,
        age=40,
        gender="female",
        race="Irish",
        born_place="Cork",
        appearance="tall",
        experience=experience,
        personality="calm",
        speech_style="slow",
        catchphrases=["aye"],
        relationships=["a brother"],
        likes=["tea"],
        dislikes=["rain"],
    )


def test_profiles_with_a_taken_name_or_a_repeated_profile_are_dropped():
    chars = [
        make_character(
            "c1", "Elara Vance", "Kept a lighthouse on the west coast for thirty years and saved many sailors."
        ),
        make_character("c2", "elara  vance", "Ran a bakery in Lyon and taught her grandchildren to bake bread."),
        make_character(
            "c3", "Maeve Byrne", "Kept a lighthouse on the west coast for thirty years and saved many sailors."
        ),
        make_character("c4", "Tom Reilly", "Drove a taxi in Dublin for twenty years and knows every pub by name."),
    ]
    found = duplicate_characters(chars, DedupConfig())
    assert {k: v[:2] for k, v in found.items()} == {
        "c2": ("duplicate_name", "c1"),
        "c3": ("near_duplicate_profile", "c1"),
    }
    assert duplicate_characters(chars, DedupConfig(names=False, profiles=False)) == {}


def test_curate_stage_keeps_reasons_and_rebuilds_when_the_filters_change(tmp_path):
    rows = [
        dialogue("ok", "Tell me about the sea.", "The sea took my father and gave me my trade; I respect it."),
        dialogue("loop", "Hi", "I love the sea " * 6),
        dialogue(
            "copy",
            "Tell me about rivers.",
            "The sea took my father and gave me my trade; I respect it.",
            character="c2",
            name="Other Person",
        ),
        dialogue(
            "long",
            "Hi",
            "Well, since you ask: I was born in a fishing village where the boats went out before dawn, "
            "and by the time I was nine I could gut a mackerel faster than my uncle.",
        ),
    ]
    recipe = Recipe()
    folder = tmp_path / "curate"
    manifest = run_stage(curate_stage(recipe, rows, []), rows, folder, {})
    assert manifest["counters"] == {"kept": 2, "dropped_repetitive": 1, "dropped_duplicate_response": 1}
    [copy] = [r for r in read_shard(shard_paths(folder, rejects=True)[0]).to_pylist() if r["id"] == "copy"]
    assert (
        copy["duplicate_of"] == "ok"
        and "Mara Quill" in copy["detail"]
        and Dialogue.model_validate_json(copy["record"]).id == "copy"
    )
    recipe.curate.max_chars = 100
    manifest = run_stage(curate_stage(recipe, rows, []), rows, folder, {})
    assert manifest["counters"] == {
        "kept": 1,
        "dropped_repetitive": 1,
        "dropped_duplicate_response": 1,
        "dropped_too_long": 1,
    }
    assert [d.id for d in load_records(folder, Dialogue)] == ["ok"]


# ------------------------------------------------------------------------------------------- the command


def test_curate_command_recurates_a_finished_run_without_a_model(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("hub", "report"))
    before = json.loads((run / "curate" / "manifest.json").read_text())["counters"]
    proc = run_cli("curate", str(run), "curate.max_chars=30", "backend.model=/nonexistent")  # no model is loaded
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = json.loads((run / "curate" / "manifest.json").read_text())["counters"]
    assert after.get("dropped_too_long", 0) > before.get("dropped_too_long", 0)
    info = json.loads((run / "dataset" / "dataset_info.json").read_text())
    assert sum(s["rows"] for s in info["splits"].values()) == after["kept"]
    kept = load_records(run / "curate", Dialogue)
    assert all(len(m.content) <= 30 for d in kept for m in d.messages if m.role == "assistant")
    # The folder to publish only when rows are left: a card over no data files is one `load_dataset` cannot read.
    assert (run / "report" / "report.md").exists() and (run / "hub" / "README.md").exists() == (after["kept"] > 0)
    assert after["kept"] > 0 or "publish    none: the dataset has no rows" in proc.stdout
    assert "curate" in proc.stdout and "too_long" in proc.stdout


def test_curate_command_refuses_a_bad_setting_and_changes_nothing(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    manifest = (run / "curate" / "manifest.json").read_bytes()
    proc = run_cli("curate", str(run), "curate.chinese=klingon")
    assert proc.returncode == 2 and "curate.chinese=klingon" in proc.stderr and "Traceback" not in proc.stderr
    assert (run / "curate" / "manifest.json").read_bytes() == manifest
    proc = run_cli("curate", str(tmp_path / "nothing-here"))
    assert proc.returncode == 2 and "not a run folder" in proc.stderr
