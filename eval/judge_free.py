"""Judge-free checks of a reply (no LLM judge, CPU only): does it read as the character speaking?

A reply counts as in character when it has words, none of them assistant boilerplate, is written in the
character's language, does not copy its profile or the question back (the untuned 270M base model's
commonest failure under a chat template: it continues the system prompt), and speaks in the first person
(a role-play reply is the character talking, not a description of them).
"""

import re

from personas.errors import Rejected
from synth.quality import check_turn, echo

FIRST_PERSON = {
    "en": re.compile(r"\b(?:i|i'm|i've|i'd|i'll|me|my|mine|myself|we|our|us)\b", re.IGNORECASE),
    "zh": re.compile(r"[我咱俺]"),
    "de": re.compile(r"\b(?:ich|mich|mir|mein\w*|wir|uns\w*)\b", re.IGNORECASE),
    "ru": re.compile(r"(?<!\w)(?:я|меня|мне|мной|мой|моя|моё|мои|мы|нас|нам)(?!\w)", re.IGNORECASE),
}


def out_of_character(text: str, *, name: str, system: str, user: str, language: str, finish_reason: str = "stop") -> str:
    """'' when the reply reads as the character speaking, else the first reason it does not."""
    try:
        # A reply cut at max_tokens is judged on what it says: truncation is the sampler's limit, not the voice.
        check_turn(text, "stop" if finish_reason == "length" else finish_reason, language, own_name=name, other_names={})
        echo(text, {"the profile": system, "the question": user})
    except Rejected as e:
        return e.reason
    pattern = FIRST_PERSON.get(language)
    if pattern is not None and not pattern.search(text):
        return "not_first_person"
    return ""
