"""Curation of the dialogues: filters with reasons, then dedup of the responses.

    .venv/bin/dramatis curate runs/demo [curate.max_chars=2000 dedup.semantic=true ...]

`make synth` runs it as the stage after dialogues; `dramatis curate RUN` runs it again on a finished run's
shards with other settings, without regenerating anything. Every dropped dialogue is a `Reject` with its
reason, the turn that failed, and for a duplicate the id of the dialogue it repeats. The rows kept are
the generated ones, repaired only where the recipe asks: mojibake (ftfy) and Chinese script (OpenCC).
"""

import functools
import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import asdict

import ftfy

from personas.errors import Rejected
from personas.records import Character
from synth.dedup import find_similar, words
from synth.dialogues import names_of
from synth.quality import CODE_BLOCK, WORDLIKE, check_turn, debris
from synth.recipe import CurateConfig, DedupConfig, Recipe
from synth.records import Dialogue
from synth.runner import Reject, Stage

# Only encoding repairs: ftfy's defaults also straighten quotes and fold full-width forms, which would
# rewrite correct text (Chinese full-width punctuation, typographic quotes a character may use).
FIXER = ftfy.TextFixerConfig(
    uncurl_quotes=False, fix_character_width=False, fix_latin_ligatures=False, normalization="NFC", explain=False
)
MARKUP = re.compile(r"</?[A-Za-z][^<>\n]{0,40}>")
# An assistant's refusal, not a character's ("I can't tell you where the gold is" is role-play).
REFUSAL = re.compile(
    "|".join(
        [
            r"\b(?:i'?m|i am) sorry,? (?:but )?i (?:can(?:'|no)?t|am unable to|won'?t be able to)\b",
            r"\bi (?:can(?:'|no)?t|am unable to|'m unable to) (?:help|assist|comply|fulfill?)(?: you)? "
            r"with (?:that|this|your request)",
            r"\bi (?:must|have to) (?:decline|refuse) (?:this|that|your) request",
            r"(?:抱歉|对不起|很遗憾)[，,]?\s*我(?:无法|不能)(?:帮助|帮你|帮您|提供|回答|满足|完成|协助)",
            r"我(?:无法|不能)(?:协助|提供帮助|满足你的要求|满足您的要求)",
            r"\bes tut mir leid,? (?:aber )?ich kann (?:dir |ihnen )?(?:dabei |hierbei )?(?:nicht|keine)",
            r"\bich kann (?:dir |ihnen )?(?:dabei |hierbei |damit )?nicht helfen",
            r"(?:извините|простите|к сожалению),? (?:но )?я не могу (?:помочь|выполнить|ответить|предоставить)",
        ]
    ),
    re.IGNORECASE,
)
CHINESE = {"simplified": "t2s", "traditional": "s2t"}  # the choices of curate.chinese, besides keep


@functools.cache
def _opencc(target: str):
    import opencc

    return opencc.OpenCC(CHINESE[target])


def fix_unicode(text: str) -> str:
    """Mojibake repaired (ftfy); raises `Rejected("mojibake")` if the text is still broken after repair."""
    fixed = ftfy.fix_text(text, FIXER)
    if "\ufffd" in fixed or ftfy.badness.is_bad(fixed):
        raise Rejected("mojibake", f"broken text after repair: {fixed[:60]!r}")
    return fixed


def garbled_share(text: str) -> float:
    """Share of the text that is control/unassigned/private-use characters, U+FFFD or markup tags outside
    code blocks: what a small model leaves when it drifts into web-page residue ("</p><p>")."""
    prose = CODE_BLOCK.sub("", text)
    bad = sum(len(tag) for tag in MARKUP.findall(prose))
    bad += sum(
        1
        for ch in MARKUP.sub("", prose)
        if ch == "\ufffd" or (unicodedata.category(ch)[0] == "C" and ch not in "\n\r\t")
    )
    return bad / max(len(text), 1)


def repeated_share(text: str, n: int = 3) -> float:
    """Share of the word n-grams that repeat an earlier one: ~0 for prose, high for a model stuck in a loop.
    Texts under 12 words score 0: too short to call a loop."""
    tokens = words(text)
    if len(tokens) < 12:
        return 0.0
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1 - len(set(grams)) / len(grams)


def check_structure(d: Dialogue, cfg: CurateConfig) -> None:
    """System first, then user/assistant turns alternating, ending on the character; every turn has words."""
    roles = [m.role for m in d.messages]
    expected = ["system"] + ["user", "assistant"] * ((len(roles) - 1) // 2)
    if len(roles) < 3 or roles != expected:
        raise Rejected("missing_turns", f"roles {'/'.join(roles[:8])}")
    for n, m in enumerate(d.messages[1:], 1):
        if not WORDLIKE.search(m.content):
            raise Rejected("empty_turn", f"message {n} ({m.role}) has no words")
    turns = roles.count("assistant")
    if turns < cfg.min_turns:
        raise Rejected("too_few_turns", f"{turns} character turns < {cfg.min_turns}")
    if turns > cfg.max_turns:
        raise Rejected("too_many_turns", f"{turns} character turns > {cfg.max_turns}")


def check_reply(text: str, d: Dialogue, cfg: CurateConfig, other_names: dict[str, str]) -> None:
    """One character turn against the filters, cheapest first; raises `Rejected` with the first failure."""
    if len(text) < cfg.min_chars:
        raise Rejected("too_short", f"{len(text)} characters < {cfg.min_chars}")
    if len(text) > cfg.max_chars:
        raise Rejected("too_long", f"{len(text)} characters > {cfg.max_chars}")
    # Before the garbled share: a chat-template token is markup too, and "debris" says what it is.
    if cfg.debris and (found := debris(text)):
        raise Rejected("debris", found)
    garbled = garbled_share(text)
    if garbled > cfg.max_garbled:
        raise Rejected("garbled", f"{garbled:.0%} garbled characters > {cfg.max_garbled:.0%}")
    repeated = repeated_share(text)
    if repeated > cfg.max_repeated:
        raise Rejected("repetitive", f"{repeated:.0%} repeated word 3-grams > {cfg.max_repeated:.0%}")
    if cfg.refusals and (found := REFUSAL.search(text)):
        raise Rejected("refusal", repr(found.group(0)))
    if cfg.checks:
        check_turn(text, "stop", d.language, own_name=d.character_name, other_names=other_names)


def curate_dialogue(d: Dialogue, cfg: CurateConfig, other_names: dict[str, str]) -> Dialogue:
    """The dialogue as it goes into the dataset (repaired where the recipe asks), or `Rejected`."""
    check_structure(d, cfg)
    messages = []
    for n, m in enumerate(d.messages):
        text = fix_unicode(m.content) if cfg.fix_unicode else m.content
        if cfg.chinese != "keep" and d.language == "zh":
            text = _opencc(cfg.chinese).convert(text)
        if m.role == "assistant":
            try:
                check_reply(text, d, cfg, other_names)
            except Rejected as e:
                raise Rejected(e.reason, f"turn {n}: {e.detail}") from None
        messages.append(m.model_copy(update={"content": text}))
    if [m.content for m in messages] == [m.content for m in d.messages]:
        return d
    return d.model_copy(update={"messages": messages})


def response_text(d: Dialogue) -> str:
    return "\n".join(m.content for m in d.messages if m.role == "assistant")


def duplicate_responses(dialogues: list[Dialogue], cfg: DedupConfig) -> dict[str, tuple[str, str]]:
    """dialogue id → (reason, id of the earlier dialogue whose character turns it repeats)."""
    found, first = {}, {}
    for d in dialogues:
        key = hashlib.sha256(" ".join(response_text(d).casefold().split()).encode()).hexdigest()
        if key in first:
            found[d.id] = ("duplicate_response", first[key])
        else:
            first[key] = d.id
    rest = [d for d in dialogues if d.id not in found]
    found.update(
        find_similar(
            [d.id for d in rest], [response_text(d) for d in rest], [d.language for d in rest], cfg, "_response"
        )
    )
    return found


def curate_stage(recipe: Recipe, dialogues: list[Dialogue], characters: list[Character]) -> Stage:
    """Filters first, then dedup among the rows that pass (a row is never dropped as a copy of a dropped one)."""
    cfg, names = recipe.curate, names_of(characters)
    kept, verdicts = {}, {}
    for d in dialogues:
        try:
            kept[d.id] = curate_dialogue(d, cfg, names)
        except Rejected as e:
            verdicts[d.id] = Reject(
                id=d.id, stage="curate", reason=e.reason, detail=e.detail, record=d.model_dump_json()
            )
    by_id = {d.id: d for d in dialogues}
    if recipe.dedup.responses:
        for rid, (reason, original) in duplicate_responses(list(kept.values()), recipe.dedup).items():
            who = by_id[original].character_name
            same = "the same character" if who == by_id[rid].character_name else f"{who}"
            verdicts[rid] = Reject(
                id=rid,
                stage="curate",
                reason=reason,
                duplicate_of=original,
                record=by_id[rid].model_dump_json(),
                detail=f"character turns repeat {original} ({same})",
            )

    def process(chunk: list[Dialogue], counters: Counter):
        for d in chunk:
            if d.id in verdicts:
                yield verdicts[d.id]
            else:
                if kept[d.id] is not d:  # counted apart from "kept": the row differs from what was generated
                    counters[
                        "converted_chinese" if d.language == "zh" and cfg.chinese != "keep" else "repaired_unicode"
                    ] += 1
                yield kept[d.id]

    settings = {"curate": asdict(cfg), "dedup": asdict(recipe.dedup)}
    return Stage("curate", Dialogue, process, recipe.chunk_size, settings, rebuild=True)
