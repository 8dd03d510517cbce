"""Checks every generated turn must pass; each failure is a `Rejected(reason, detail)` the stage counts.

Reasons: empty, truncated, assistant_speak, wrong_character (串戏), wrong_language, lost_facts,
and echo: a turn that mostly copies the user's message, an earlier turn or a few-shot example (seen with
the small offline base model: it parrots the example answer or the question instead of replying).
"""

import re

from personas.errors import Rejected
from personas.language import detect_language
from personas.records import name_key

# Assistant boilerplate in the languages we write; an opening "As a <persona>," is the classic tell of a
# model describing the role instead of playing it (OpenCharacter's R outputs show it).
ASSISTANT_SPEAK = re.compile(
    "|".join(
        [
            r"\bas an ai\b",
            r"\bai (?:language )?model\b",
            r"\blanguage model\b",
            r"\bi'?m an ai\b",
            r"\bi am an ai\b",
            r"\bvirtual assistant\b",
            r"how (?:can|may) i (?:help|assist) you",
            r"\bi'?m here to (?:help|assist)\b",
            r"作为(?:一个|一名)?(?:AI|人工智能|语言模型|助手)",
            r"我是(?:一个)?(?:AI|人工智能|语言模型)",
            r"语言模型",
            r"有什么(?:可以|能)(?:帮|为)(?:你|您)",
            r"\bals (?:eine )?ki\b",
            r"\bsprachmodell\b",
            r"как (?:ии|искусственный интеллект)",
            r"языков(?:ая|ой) модел",
            r"я\s*[-—–]?\s*(?:ии|искусственный интеллект)\b",
        ]
    ),
    re.IGNORECASE,
)
AS_A_OPENER = re.compile(
    r"^\W*(?:as an? (?!matter of fact|result\b|rule\b|whole\b)[^,.!?\n]{1,80},"
    r"|作为一(?:个|名|位)[^，,。]{1,30}[，,]|als [^,.!?\n]{1,60},|как [^,.!?\n]{1,60},)",
    re.IGNORECASE,
)
# "I am X" / "我是X": the words after a self-introduction, to look up among the run's other characters.
SELF_NAMING = re.compile(
    r"(?:\bi am|\bi'm|\bmy name is|\bcall me|\bich bin|\bich heiße|\bменя зовут|\bя\s*[-—–])\s+"
    r"([^\s,.!?;:]+(?:\s+[^\s,.!?;:]+){0,3})|(?:我是|我叫|本人)([\u4e00-\u9fff·]{2,6})",
    re.IGNORECASE,
)
WORDLIKE = re.compile(r"[^\W\d_]", re.UNICODE)
SHINGLE = 12  # characters: long enough to mean copying, short enough for Chinese, which has no spaces
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
CODE_BLOCK = re.compile(r"```.*?```", re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]+`")
# Structural debris: what a model leaves of a JSON-constrained output or of its chat template when it loses
# the thread, and what a model trained on such rows learns to emit ("…support your response.}")}}}}]}").
# Prose opens with a word, a quote or a cue in brackets, never with a closing bracket, a '>' or '"}'.
DEBRIS_OPENER = re.compile(r'^\s*(?:[\]}>]|"\s*[\]}:,])')
PUNCTUATION = re.compile(r"[^\w\s]+")
DEBRIS = re.compile(
    "|".join(
        [
            r"<\|[A-Za-z_]{2,30}\|>",  # ChatML and Llama 3 tokens: <|im_start|>, <|im_end|>, <|eot_id|>
            r"</?(?:start_of_turn|end_of_turn|bos|eos|s)>|\[/?INST\]",  # Gemma, Llama 2 / Mistral
            r"[{}][^\s{}]{0,6}(?:user|assistant|model|system)\b|\b(?:user|assistant|model|system)[{}]",  # {功夫user}
            r"[\]}](?:\s*[\"')\]}]){2,}",  # a run of JSON closers: }}}, ]} }}, }")}}
            r"\"\s*}",  # a JSON string closed, then its object
        ]
    ),
    re.IGNORECASE,
)


def check_turn(text: str, finish_reason: str, language: str, *, own_name: str, other_names: dict[str, str]) -> str:
    """The turn's text if it passes every check; raises `Rejected` with the first failed check."""
    if finish_reason == "length":
        raise Rejected("truncated", "the output hit max_tokens")
    text = text.strip()
    if not WORDLIKE.search(text):
        raise Rejected("empty", "no words in the turn" if text else "an empty turn")
    found = ASSISTANT_SPEAK.search(text) or AS_A_OPENER.search(text)
    if found:
        raise Rejected("assistant_speak", repr(found.group(0)))
    other = wrong_character(text, own_name, other_names)
    if other:
        raise Rejected("wrong_character", f"speaks as {other}, plays {own_name}")
    written = detect_language(text)
    if written != language:
        raise Rejected("wrong_language", f"turn written in {written}, the dialogue is in {language}")
    return text


def debris(text: str) -> str:
    """The structural debris in a turn (an opening `]}`, a chat-template token, `{user}`, a run of `}}}`), else ''.
    Code is left out: `{}` in a format string or braces in a code block are what the character meant to write."""
    if DEBRIS_OPENER.match(text):
        return f"opens with {PUNCTUATION.match(text.lstrip()).group(0)[:12]!r}"
    found = DEBRIS.search(INLINE_CODE.sub(" ", CODE_BLOCK.sub(" ", text)))
    return repr(found.group(0)) if found else ""


def name_index(full_names) -> dict[str, str]:
    """name_key → full name, for full names and (Latin-script) first names: `wrong_character`'s index."""
    names = {}
    for name in full_names:
        names[name_key(name)] = name
        first = name.split()[0] if name.split() else ""
        if first != name and len(first) > 2:
            names.setdefault(name_key(first), name)
    return names


def wrong_character(text: str, own_name: str, other_names: dict[str, str]) -> str:
    """The other character's name if the text introduces itself as one (串戏), else ''.

    `other_names` maps `name_key(full name)` and `name_key(first name)` to the full name; one lookup per
    self-introduction, so the check costs the same with 20 or 20,000 characters in the run.
    """
    own = {name_key(own_name), name_key(own_name.split()[0])} if own_name.strip() else set()
    for match in SELF_NAMING.finditer(text):
        words = (match.group(1) or "").split()
        candidates = [" ".join(words[:n]) for n in range(len(words), 0, -1)]
        if match.group(2) and "的" not in match.group(2):  # "我是刘桂芬的儿子" names a relative, not the speaker
            candidates += [match.group(2)[:n] for n in range(len(match.group(2)), 1, -1)]
        for candidate in candidates:
            key = name_key(candidate)
            if key in own:
                break
            if key in other_names:
                return other_names[key]
    return ""


def _shingles(text: str) -> set[str]:
    flat = " ".join(text.casefold().split())
    return {flat[i : i + SHINGLE] for i in range(max(len(flat) - SHINGLE + 1, 1))}


def echo(text: str, sources: dict[str, str], share: float = 0.5) -> None:
    """Raise `Rejected("echo")` when at least `share` of the turn's 12-character shingles come from one of
    `sources` (label → text): the user's message, an earlier turn, a few-shot example."""
    mine = _shingles(text)
    for label, source in sources.items():
        if source and len(mine & _shingles(source)) >= share * len(mine):
            raise Rejected("echo", f"copies {label}")


def kept_facts(reference: str, rewrite: str) -> None:
    """R must keep the reference's numbers and code blocks; raises `Rejected("lost_facts")` naming what went."""
    numbers = set(NUMBER.findall(rewrite))
    lost = [n for n in dict.fromkeys(NUMBER.findall(reference)) if n not in numbers]
    squashed = " ".join(rewrite.split())
    lost += ["a code block" for block in CODE_BLOCK.findall(reference) if " ".join(block.split()) not in squashed]
    if lost:
        raise Rejected("lost_facts", "missing: " + ", ".join(lost[:8]))
