"""Cheap language identification by script and function words.

Enough to route a seed to a profile language and to reject a reply in the wrong script; the dialogue
stage checks turn languages with the same function.
"""

import re

# The languages every stage has prompts, few-shot turns and checks for. A text in another language can only be
# made into a character in one of these (profiles.language), never silently as if it were English.
SUPPORTED = ("en", "zh", "de", "ru")
SCRIPTS = {
    "zh": re.compile(r"[\u4e00-\u9fff]"),
    "ja": re.compile(r"[\u3040-\u30ff]"),
    "ko": re.compile(r"[\uac00-\ud7af]"),
    "ru": re.compile(r"[\u0400-\u04ff]"),
    # Scripts of languages we have no prompts for: detected, so that they are not taken for English.
    "ar": re.compile(r"[\u0600-\u06ff\u0750-\u077f]"),
    "he": re.compile(r"[\u0590-\u05ff]"),
    "el": re.compile(r"[\u0370-\u03ff]"),
    "hi": re.compile(r"[\u0900-\u097f]"),
    "th": re.compile(r"[\u0e00-\u0e7f]"),
}
LATIN = re.compile(r"[A-Za-zÀ-ÿ]")
# Frequent function words, a few per language ("y" is left out: it is also the algebra's y): a Latin-script text
# is the language whose words it uses most.
WORDS = {
    "en": {"the", "a", "an", "and", "who", "of", "in", "to", "with", "is", "his", "her", "for"},
    "de": {"der", "die", "das", "und", "ein", "eine", "einer", "mit", "ist", "sich", "auf", "im", "den"},
    "fr": {"le", "la", "les", "et", "un", "une", "qui", "des", "du", "dans", "avec", "est", "sa", "son"},
    "es": {"el", "la", "los", "las", "un", "una", "que", "del", "con", "en", "es", "su", "por"},
}


def detect_language(text: str) -> str:
    """ISO 639-1 code of `text`'s dominant language; "en" when nothing decides."""
    counts = {lang: len(rx.findall(text)) for lang, rx in SCRIPTS.items()}
    latin = len(LATIN.findall(text))
    # Japanese uses kanji too: any kana marks it Japanese.
    if counts["ja"]:
        return "ja"
    best = max(counts, key=counts.get)
    if counts[best] >= latin / 4 and counts[best] > 0:
        return best
    tokens = re.findall(r"[a-zà-ÿ]+", text.lower())
    scores = {lang: sum(t in words for t in tokens) for lang, words in WORDS.items()}
    top = max(scores, key=scores.get)
    return top if scores[top] > scores["en"] else "en"
