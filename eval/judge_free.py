"""Judge-free checks of a reply and metrics over a model's replies (no LLM judge, CPU only).

A reply counts as in character when it has words, none of them assistant boilerplate, is written in the
character's language, does not copy its profile or the question back (the untuned 270M base model's
commonest failure under a chat template: it continues the system prompt), holds no JSON or chat-template
debris, and speaks in the first person (a role-play reply is the character talking, not a description of them).
"""

import math
import re
from collections import defaultdict

from pydantic import BaseModel

from personas.errors import Rejected
from personas.language import detect_language
from synth.dedup import words
from synth.quality import AS_A_OPENER, ASSISTANT_SPEAK, check_turn, debris, echo, name_index, wrong_character

FIRST_PERSON = {
    "en": re.compile(r"\b(?:i|i'm|i've|i'd|i'll|me|my|mine|myself|we|our|us)\b", re.IGNORECASE),
    "zh": re.compile(r"[我咱俺]"),
    "de": re.compile(r"\b(?:ich|mich|mir|mein\w*|wir|uns\w*)\b", re.IGNORECASE),
    "ru": re.compile(r"(?<!\w)(?:я|меня|мне|мной|мой|моя|моё|мои|мы|нас|нам)(?!\w)", re.IGNORECASE),
}


def out_of_character(
    text: str,
    *,
    name: str,
    system: str,
    user: str,
    language: str,
    finish_reason: str = "stop",
    other_names: dict[str, str] | None = None,
) -> str:
    """'' when the reply reads as the character speaking, else the first reason it does not. `other_names`
    (synth.quality.name_index of the other characters) adds the wrong-character check."""
    try:
        # A reply cut at max_tokens is judged on what it says: truncation is the sampler's limit, not the voice.
        check_turn(
            text,
            "stop" if finish_reason == "length" else finish_reason,
            language,
            own_name=name,
            other_names=other_names or {},
        )
        echo(text, {"the profile": system, "the question": user})
    except Rejected as e:
        return e.reason
    if debris(text):  # a model that learned JSON or chat-template debris from its data is not speaking as anyone
        return "debris"
    pattern = FIRST_PERSON.get(language)
    if pattern is not None and not pattern.search(text):
        return "not_first_person"
    return ""


# -------------------------------------------------------------------------------------- metrics over a model's replies
# The judge-free set, each a number a skeptic can recompute: rates of the checks above, lexical diversity,
# how alike different characters answer the same question, and whether a reply points back to its own profile.


class Answer(BaseModel):
    """One reply of the model under test, with what the metrics need to know about who was asked what."""

    text: str
    finish_reason: str = "stop"
    character: str  # the character's name
    language: str  # the character's language
    profile: str  # the character's system prompt as the model saw it
    question_id: str
    question: str


def distinct(texts: list[str], n: int) -> float:
    """Distinct-n: unique word n-grams / all word n-grams over the replies (Li et al. 2016); 0 when there are none."""
    grams = [tuple(w[i : i + n]) for w in (words(t.casefold()) for t in texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def self_bleu(answers: list[Answer]) -> float:
    """Cross-character self-BLEU in [0, 1]: each reply scored against the other characters' replies to the same
    question, averaged. High means characters answer alike — the role is not shaping the answer. NaN when no
    question was put to two characters (PersonaGym's questions are each persona's own)."""
    from sacrebleu.metrics import BLEU

    bleu = {"zh": BLEU(effective_order=True, tokenize="zh"), "other": BLEU(effective_order=True)}
    by_question = defaultdict(list)
    for a in answers:
        by_question[a.question_id].append(a)
    scores = [
        bleu["zh" if a.language == "zh" else "other"]
        .sentence_score(a.text, [b.text for b in group if b.character != a.character])
        .score
        / 100
        for group in by_question.values()
        for a in group
        if any(b.character != a.character for b in group)
    ]
    return sum(scores) / len(scores) if scores else math.nan  # no question put to two characters: undefined


def profile_retrieval(answers: list[Answer]) -> float:
    """Share of replies whose own profile is the nearest (MiniLM cosine) among the profiles of every character
    in the set: a reply that carries its character's facts and manner points back to them."""
    from personas.embed import embed

    profiles = list(dict.fromkeys(a.profile for a in answers))
    if len(profiles) < 2:
        return math.nan  # one profile: nothing to tell apart
    nearest = (embed([a.text for a in answers]) @ embed(profiles).T).argmax(axis=1)
    return sum(profiles[j] == a.profile for j, a in zip(nearest, answers, strict=False)) / len(answers)


def judge_free_metrics(answers: list[Answer]) -> dict:
    """Every judge-free number for one model's replies (rates are shares of all replies)."""
    if not answers:
        return {"replies": 0}
    names = name_index(sorted({a.character for a in answers}))
    verdicts = [
        out_of_character(
            a.text,
            name=a.character,
            system=a.profile,
            user=a.question,
            language=a.language,
            finish_reason=a.finish_reason,
            other_names=names,
        )
        for a in answers
    ]
    n = len(answers)
    return {
        "replies": n,
        "in_character": sum(not v for v in verdicts) / n,
        "assistant_speak": sum(bool(ASSISTANT_SPEAK.search(a.text) or AS_A_OPENER.search(a.text)) for a in answers)
        / n,
        "wrong_character": sum(bool(wrong_character(a.text, a.character, names)) for a in answers) / n,
        "language_match": sum(detect_language(a.text) == a.language for a in answers) / n,
        "distinct_1": distinct([a.text for a in answers], 1),
        "distinct_2": distinct([a.text for a in answers], 2),
        "self_bleu": self_bleu(answers),
        "profile_retrieval": profile_retrieval(answers),
        "mean_words": sum(len(words(a.text)) for a in answers) / n,
        "truncated": sum(a.finish_reason == "length" for a in answers) / n,
    }
