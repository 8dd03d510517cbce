"""The checks every generated turn must pass (synth/quality.py): each failure is a `Rejected` with its reason.
Characters are the real few-shot profiles; the fact check runs on real reference answers."""

import json

import pytest

from personas.errors import Rejected
from personas.profiles import EXAMPLES, character
from personas.records import ProfileFields
from personas.seeds import persona
from synth.dialogues import names_of
from synth.prompts import Mapping, load_prompts
from synth.quality import check_turn, kept_facts, wrong_character
from tests.helpers import SHARED

INSTRUCTIONS = SHARED / "instructions"


def make(text: str, language: str, profile: dict, line: int):
    return character(persona(text, "builtin", line), ProfileFields.model_validate(profile), language, "tiny", 0, 1)


EAMON = make(EXAMPLES[0][0], "en", EXAMPLES[0][2], 1)
GUIFEN = make(EXAMPLES[1][0], "zh", EXAMPLES[1][2], 2)
# The same tea-house owner written in English, and her son, who runs the tea house now.
LIU = make("A retired tea-house owner from Chengdu", "en", {**EXAMPLES[0][2], "name": "Liu Guifen"}, 3)
CHEN = make("一位接手了母亲茶馆的年轻老板", "zh", {**EXAMPLES[1][2], "name": "陈建"}, 4)
NAMES = names_of([EAMON, GUIFEN, LIU, CHEN])


def check(text: str, speaker, finish_reason: str = "stop") -> str:
    return check_turn(text, finish_reason, speaker.language, own_name=speaker.name, other_names=NAMES)


def reason(text: str, speaker, finish_reason: str = "stop") -> str:
    with pytest.raises(Rejected) as e:
        check(text, speaker, finish_reason)
    assert e.value.detail
    return e.value.reason


def test_names_index_holds_full_and_latin_first_names():
    assert NAMES == {
        "eamon gallagher": "Eamon Gallagher",
        "eamon": "Eamon Gallagher",
        "刘桂芬": "刘桂芬",
        "liu guifen": "Liu Guifen",
        "liu": "Liu Guifen",
        "陈建": "陈建",
    }


@pytest.mark.parametrize(
    "text, speaker",
    [
        ("  Now, here's the thing of it: the sea keeps its own ledger, lad.\n", EAMON),
        ("I'm Eamon, lad, and I kept that light for thirty-four years.", EAMON),
        ("My name is Eamon Gallagher, and the storm is coming in.", EAMON),
        ("莫着急，先喝口茶。这茶馆我开了三十年，巴适得板！", GUIFEN),
        ("我是刘桂芬，先喝口茶再说。", GUIFEN),
        ("I'm Eamon's neighbour; I am the one who brings his tea.", LIU),
    ],
)
def test_in_character_reply_passes_and_is_returned_stripped(text, speaker):
    assert check(text, speaker) == text.strip()


@pytest.mark.parametrize(
    "text, speaker",
    [
        ("As an AI language model, I cannot drink tea.", EAMON),
        ("Sure! How can I assist you today?", EAMON),
        ("How may I help you with the lighthouse?", EAMON),
        ("I'm here to help with any questions about ships.", EAMON),
        ("As a retired teacher, I would grade this essay a B.", EAMON),
        ("作为一个AI助手，我不能喝茶。", GUIFEN),
        ("你好！有什么可以帮您的吗？", GUIFEN),
        ("作为一位茶馆老板娘，我觉得这个问题很简单。", GUIFEN),
    ],
)
def test_assistant_speak_is_rejected(text, speaker):
    assert reason(text, speaker) == "assistant_speak"


@pytest.mark.parametrize(
    "text", ["As a matter of fact, the sea keeps its own ledger.", "As a result, the light was automated in 1998."]
)
def test_idioms_opening_with_as_a_are_not_assistant_speak(text):
    assert check(text, EAMON) == text


@pytest.mark.parametrize(
    "text, speaker, other",
    [
        ("I am Liu Guifen, and this tea is from my own shop.", EAMON, "Liu Guifen"),
        ("Call me Eamon. Now, here's the thing of it.", LIU, "Eamon Gallagher"),
        ("i am  EAMON GALLAGHER, keeper of the light.", LIU, "Eamon Gallagher"),
        ("我是刘桂芬，先喝口茶。", CHEN, "刘桂芬"),
        ("我叫刘桂芬啊，莫着急。", CHEN, "刘桂芬"),
    ],
)
def test_speaking_as_another_character_is_rejected_naming_them(text, speaker, other):
    assert wrong_character(text, speaker.name, NAMES) == other
    with pytest.raises(Rejected) as e:
        check(text, speaker)
    assert e.value.reason == "wrong_character" and other in e.value.detail and speaker.name in e.value.detail


def test_own_name_is_never_wrong_character_even_when_another_shares_a_first_name():
    namesake = make("A young fisherman from Galway", "en", {**EXAMPLES[0][2], "name": "Eamon Walsh"}, 5)
    names = names_of([EAMON, namesake])
    assert names["eamon"] == "Eamon Gallagher"  # the first one listed keeps the bare first name
    assert wrong_character("I'm Eamon, lad.", "Eamon Walsh", names) == ""
    assert wrong_character("I'm Eamon Gallagher, lad.", "Eamon Walsh", names) == "Eamon Gallagher"
    assert wrong_character("I am Eamon Gallagher.", "", names) == "Eamon Gallagher"  # a plain user has no own name


def test_naming_a_relative_in_chinese_is_not_wrong_character():
    assert wrong_character("我是刘桂芬的儿子，茶馆现在归我管。", CHEN.name, NAMES) == ""


@pytest.mark.parametrize(
    "text, speaker, finish_reason, expected",
    [
        ("The tea is hot and the sea is rough today.", GUIFEN, "stop", "wrong_language"),
        ("莫着急，先喝口茶。", EAMON, "stop", "wrong_language"),
        ("Now, here's the thing of it: the sea", EAMON, "length", "truncated"),
        ("", EAMON, "length", "truncated"),  # truncation is named before anything else
        (" \n\t ", EAMON, "stop", "empty"),
        ("", GUIFEN, "stop", "empty"),
    ],
)
def test_unusable_turns_are_rejected_with_their_reason(text, speaker, finish_reason, expected):
    assert reason(text, speaker, finish_reason) == expected


@pytest.fixture(scope="module")
def breakfast() -> str:
    """seed_task_0's reference answer: 1 shake, 4 strips, 1/2 cup, 60 grams, 550 and 200 calories."""
    row = json.loads((INSTRUCTIONS / "self_instruct_seed_tasks.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert row["id"] == "seed_task_0"
    return row["instances"][0]["output"]


def test_rewrite_keeping_every_number_passes(breakfast):
    rewrite = (
        "Aye lad, no eggs needed. Blend 1 oatmeal banana protein shake: 1/2 cup oatmeal, 60 grams whey, "
        "1/2 a banana, 1tbsp flaxseed oil, 1/2 cup water, about 550 calories. Add 4 strips of bacon, 200 more."
    )
    assert kept_facts(breakfast, rewrite) is None


@pytest.mark.parametrize(
    "rewrite, lost",
    [
        ("Aye lad, a banana shake and some bacon will see you through the storm.", "1, 4, 2, 60, 550, 200"),
        ("Blend 1 shake of 1/2 cup oats, 4 strips of bacon, 60 grams whey: 500 calories, then 200 more.", "550"),
        ("Blend 1 shake of 1/2 cup oats, 4 strips of bacon, 6 grams whey: 550 calories, then 200 more.", "60"),
    ],
)
def test_rewrite_losing_a_number_is_rejected_naming_it(breakfast, rewrite, lost):
    with pytest.raises(Rejected) as e:
        kept_facts(breakfast, rewrite)
    assert e.value.reason == "lost_facts" and e.value.detail == "missing: " + lost


@pytest.fixture(scope="module")
def fibonacci() -> str:
    """MT-Bench question 122's reference: a C++ function in a ``` block."""
    prompts = load_prompts([str(INSTRUCTIONS / "mt_bench_questions.jsonl")], Mapping(references="reference"))
    reference = next(p for p in prompts if p.source_id == "122").references[0]
    assert reference.count("```") == 2
    return reference


def test_code_block_kept_with_other_whitespace_passes(fibonacci):
    code = fibonacci[fibonacci.index("```") :]
    reindented = "\n".join(line.strip() for line in code.splitlines()).replace("{\n", "{\n\t\t")
    assert reindented != code
    assert (
        kept_facts(
            fibonacci, "Now, here's the thing of it, lad:\n\n" + reindented + "\n\nThe sea keeps its own ledger."
        )
        is None
    )


@pytest.mark.parametrize("change", ["dropped", "edited"])
def test_code_block_dropped_or_edited_is_rejected(fibonacci, change):
    code = fibonacci[fibonacci.index("```") :]
    if change == "dropped":
        rewrite = "Ah, just call fibonacci of n - 1 plus fibonacci of n - 2, and stop when n <= 1, lad."
    else:
        rewrite = code.replace("return n;", "return 1;")
    with pytest.raises(Rejected) as e:
        kept_facts(fibonacci, rewrite)
    assert e.value.reason == "lost_facts" and "a code block" in e.value.detail
