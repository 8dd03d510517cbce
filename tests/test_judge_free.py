"""Judge-free checks and metrics (eval/judge_free.py) on planted replies whose answers are known."""

import math

import pytest

from eval.judge_free import Answer, distinct, judge_free_metrics, out_of_character, profile_retrieval, self_bleu

SYSTEM = (
    "Name: Mara Quinn\nAge: 34\nBorn in: Galway\nExperience: ran a ferry between the islands for ten years, "
    "then opened a bakery on the harbour front.\nSpeech style: brisk, dry humour"
)
ZH_SYSTEM = "你是刘桂芬。\n年龄: 62\n出生地: 成都\n经历: 在茶馆里干了三十年，认识街坊每一个人。"
QUESTION = "What do you do on a slow Sunday morning when the weather keeps everyone indoors?"


@pytest.mark.parametrize(
    "text,system,user,language,finish,reason",
    [
        ("I knead the dough before dawn, then I sit by the window with my tea.", SYSTEM, QUESTION, "en", "stop", ""),
        ("Well, we open late on Sundays; our regulars know it.", SYSTEM, QUESTION, "en", "stop", ""),
        ("I knead the dough before dawn, then I sit by the window with my", SYSTEM, QUESTION, "en", "length", ""),
        ("The bakery opens at nine and sells bread.", SYSTEM, QUESTION, "en", "stop", "not_first_person"),
        ("As an AI language model, I do not have Sunday mornings.", SYSTEM, QUESTION, "en", "stop", "assistant_speak"),
        (
            "How can I help you today? I can answer questions about baking.",
            SYSTEM,
            QUESTION,
            "en",
            "stop",
            "assistant_speak",
        ),
        (SYSTEM.replace("\n", " ") + " I", SYSTEM, QUESTION, "en", "stop", "echo"),
        (QUESTION + " I wonder.", SYSTEM, QUESTION, "en", "stop", "echo"),
        ("...", SYSTEM, QUESTION, "en", "stop", "empty"),
        ("我一早就去茶馆，先给老街坊们泡一壶茶。", ZH_SYSTEM, "周末你一般做什么？", "zh", "stop", ""),
        ("茶馆一早就开门，街坊们都来喝茶。", ZH_SYSTEM, "周末你一般做什么？", "zh", "stop", "not_first_person"),
        (
            "I go to the teahouse early and make tea for the neighbours.",
            ZH_SYSTEM,
            "周末你一般做什么？",
            "zh",
            "stop",
            "wrong_language",
        ),
        ("Ich backe am Sonntag Brot für meine Nachbarn und trinke Kaffee.", SYSTEM, QUESTION, "de", "stop", ""),
        ("Я пеку хлеб по воскресеньям и пью чай у окна.", SYSTEM, QUESTION, "ru", "stop", ""),
    ],
)
def test_planted_replies_get_the_known_verdict(text, system, user, language, finish, reason):
    assert (
        out_of_character(text, name="Mara Quinn", system=system, user=user, language=language, finish_reason=finish)
        == reason
    )


@pytest.mark.parametrize(
    "text",
    [
        # A tuned demo model's answer to a PersonaGym question: it learned the debris from its training rows.
        'I would bake for them first, and then I would listen. Please support your response.}")}}}}}}}}}}]} }}}}}}',
        "]} I have been working at the bakery since dawn, kneading the dough.",
        "I knead the dough before dawn.<end_of_turn>\n<start_of_turn>user\nAnd then?",
    ],
)
def test_a_reply_with_json_or_template_debris_is_out_of_character(text):
    assert out_of_character(text, name="Mara Quinn", system=SYSTEM, user=QUESTION, language="en") == "debris"


def test_distinct_n_counts_unique_word_ngrams_over_all_replies():
    assert distinct(["a b c", "A b d"], 1) == 4 / 6 and distinct(["a b c", "a b d"], 2) == 3 / 4
    assert distinct(["same words here"] * 5, 3) == 1 / 5 and distinct([], 1) == distinct(["one"], 2) == 0.0


BAKER = "Name: Mara Quinn\nExperience: a baker in Galway who rises at four to bake sourdough bread and scones."
PILOT = (
    "Name: Tomas Reyes\nExperience: an airline pilot who has flown long-haul routes across the Pacific "
    "for twenty years."
)
LAWYER = "Name: Ines Duval\nExperience: a criminal defence lawyer in Paris who argues murder trials in court."
PROFILES = {"Mara Quinn": BAKER, "Tomas Reyes": PILOT, "Ines Duval": LAWYER}


def answer(who: str, text: str, question: str = "q1", **extra) -> Answer:
    return Answer(
        text=text,
        character=who,
        language="en",
        profile=PROFILES[who],
        question_id=question,
        question="What did you do this morning?",
        **extra,
    )


ON_TOPIC = [
    answer("Mara Quinn", "I was up at four, my hands in the sourdough, and the scones came out of the oven by six."),
    answer("Tomas Reyes", "I flew the night leg over the Pacific; my co-pilot and I landed in Sydney at dawn."),
    answer("Ines Duval", "I argued before the jury in the murder trial; my client's alibi held up in court."),
]


def test_self_bleu_is_high_when_characters_answer_alike_and_low_when_they_differ():
    alike = [answer(who, "I had a quiet morning with a cup of coffee and the newspaper.") for who in PROFILES]
    assert self_bleu(alike) == pytest.approx(1.0)
    assert self_bleu(ON_TOPIC) < 0.1
    # Only other characters' replies to the same question count: one character's repeats are not compared.
    assert math.isnan(self_bleu([answer("Mara Quinn", "I baked bread."), answer("Mara Quinn", "I baked bread.")]))
    assert math.isnan(
        self_bleu([answer("Mara Quinn", "I baked bread.", "q1"), answer("Tomas Reyes", "I baked bread.", "q2")])
    )


def test_profile_retrieval_finds_each_reply_its_own_profile_with_minilm():
    assert profile_retrieval(ON_TOPIC) == 1.0
    swapped = [
        a.model_copy(update={"profile": PROFILES[other], "character": other})
        for a, other in zip(ON_TOPIC, ["Tomas Reyes", "Ines Duval", "Mara Quinn"], strict=False)
    ]
    assert profile_retrieval(swapped) == 0.0
    assert math.isnan(profile_retrieval(ON_TOPIC[:1]))  # one profile: nothing to tell apart


def test_metrics_of_a_planted_set_have_the_known_rates():
    replies = ON_TOPIC + [
        answer("Mara Quinn", "As an AI language model, I do not bake.", "q2"),
        answer("Tomas Reyes", "I am Ines Duval, and I was in court this morning.", "q2"),
        answer("Ines Duval", "Je suis allée au tribunal ce matin avec mon client.", "q2"),
        answer("Ines Duval", "I went to court this morning and then I", "q3", finish_reason="length"),
    ]
    m = judge_free_metrics(replies)
    assert m["replies"] == 7
    assert m["assistant_speak"] == 1 / 7 and m["wrong_character"] == 1 / 7 and m["language_match"] == 6 / 7
    assert m["truncated"] == 1 / 7 and m["in_character"] == 4 / 7  # the truncated one still speaks in character
    assert 0 < m["distinct_2"] <= 1 and 0 <= m["self_bleu"] < 0.2 and m["mean_words"] > 5
    assert judge_free_metrics([]) == {"replies": 0}
