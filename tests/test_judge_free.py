"""Judge-free in-character check (eval/judge_free.py) on planted replies whose answer is known."""

import pytest

from eval.judge_free import out_of_character

SYSTEM = ("Name: Mara Quinn\nAge: 34\nBorn in: Galway\nExperience: ran a ferry between the islands for ten years, "
          "then opened a bakery on the harbour front.\nSpeech style: brisk, dry humour")
ZH_SYSTEM = "你是刘桂芬。\n年龄: 62\n出生地: 成都\n经历: 在茶馆里干了三十年，认识街坊每一个人。"
QUESTION = "What do you do on a slow Sunday morning when the weather keeps everyone indoors?"


@pytest.mark.parametrize("text,system,user,language,finish,reason", [
    ("I knead the dough before dawn, then I sit by the window with my tea.", SYSTEM, QUESTION, "en", "stop", ""),
    ("Well, we open late on Sundays; our regulars know it.", SYSTEM, QUESTION, "en", "stop", ""),
    ("I knead the dough before dawn, then I sit by the window with my", SYSTEM, QUESTION, "en", "length", ""),
    ("The bakery opens at nine and sells bread.", SYSTEM, QUESTION, "en", "stop", "not_first_person"),
    ("As an AI language model, I do not have Sunday mornings.", SYSTEM, QUESTION, "en", "stop", "assistant_speak"),
    ("How can I help you today? I can answer questions about baking.", SYSTEM, QUESTION, "en", "stop", "assistant_speak"),
    (SYSTEM.replace("\n", " ") + " I", SYSTEM, QUESTION, "en", "stop", "echo"),
    (QUESTION + " I wonder.", SYSTEM, QUESTION, "en", "stop", "echo"),
    ("...", SYSTEM, QUESTION, "en", "stop", "empty"),
    ("我一早就去茶馆，先给老街坊们泡一壶茶。", ZH_SYSTEM, "周末你一般做什么？", "zh", "stop", ""),
    ("茶馆一早就开门，街坊们都来喝茶。", ZH_SYSTEM, "周末你一般做什么？", "zh", "stop", "not_first_person"),
    ("I go to the teahouse early and make tea for the neighbours.", ZH_SYSTEM, "周末你一般做什么？", "zh", "stop", "wrong_language"),
    ("Ich backe am Sonntag Brot für meine Nachbarn und trinke Kaffee.", SYSTEM, QUESTION, "de", "stop", ""),
    ("Я пеку хлеб по воскресеньям и пью чай у окна.", SYSTEM, QUESTION, "ru", "stop", ""),
])
def test_planted_replies_get_the_known_verdict(text, system, user, language, finish, reason):
    assert out_of_character(text, name="Mara Quinn", system=system, user=user, language=language, finish_reason=finish) == reason
