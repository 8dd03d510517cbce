"""What an evaluation asks: `Item`s (a question put to a character) of the heldout and personagym benchmarks.

heldout: the run's characters of the chosen splits × (instruction prompts that no training or validation row
used — translated by the generator when the character speaks another language — plus probing questions in
PersonaGym's five task families, written per character by the generator after a real PersonaGym example).
personagym: PersonaGym's personas and questions; each persona is expanded into a profile by synth's own profile
stage (recorded in OUT/personagym/profiles, rejects included) or, by choice or when expansion fails, used as one line.
"""

import json
from collections import Counter
from pathlib import Path

from pydantic import BaseModel

from eval.personagym import TASKS, Question, load_personagym
from eval.records import Item
from personas.errors import DramatisError, Rejected
from personas.language import detect_language
from personas.profiles import LANGUAGE_NAMES, fill
from personas.records import Character, Persona, derive_seed, stable_id
from synth.backend import ChatRequest
from synth.dedup import words
from synth.llm import generate_validated, json_object
from synth.pipeline import instruction_mapping, run_recipe
from synth.prompts import load_prompts
from synth.quality import check_turn, echo
from synth.records import Dialogue, Prompt
from synth.roleplay import text_schema, translate_messages
from synth.runner import Stage, load_records

INSTRUCTION = "Instruction"  # the task name of an instruction prompt
# a probe question's fewest words; the 270M generator was seen writing list debris such as
# "(b) : (c) , (d) (e)" in place of a question
MIN_WORDS = 5
LINE = {  # the system prompt of a one-line persona: the profile template's header, with the persona as its body
    "en": "You are the person described below. Stay in character: speak as they would, never as an AI assistant."
    "\n\n{persona}",
    "zh": "你是下面描述的这个人。请始终保持角色：像这个人那样说话，绝不要以AI助手的身份回答。\n\n{persona}",
    "de": "Du bist die unten beschriebene Person. Bleib in der Rolle: sprich wie sie, niemals wie ein KI-Assistent."
    "\n\n{persona}",
    "ru": "Ты — человек, описанный ниже. Оставайся в роли: говори как он, никогда как ИИ-ассистент.\n\n{persona}",
}
PROBE_SYSTEM = (
    "You write evaluation questions for role-play models in the PersonaGym style: each question puts the "
    "persona in a concrete situation where the evaluation task shows. Answer with the JSON object only."
)


class Job(BaseModel):
    """One generator request of the questions stage: translate an instruction prompt, or write a task's probes."""

    id: str
    character_id: str
    kind: str  # "translate" | "probe"
    task: str
    question_id: str  # translate: the prompt's id (shared by every character); probe: ''
    text: str  # translate: the prompt's text


class Written(BaseModel):
    """What one accepted job yields."""

    id: str
    questions: list[Question]


def task_descriptions(rubrics: dict[str, str]) -> dict[str, str]:
    """Each task's 'Evaluation Task Description' paragraph from its PersonaGym rubric: what the probes must test."""
    found = {}
    for task, text in rubrics.items():
        _, _, rest = text.partition("Evaluation Task Description:")
        found[task] = rest.partition("Evaluation Criteria:")[0].strip() or task
    return found


def unused_prompts(run: Path, count: int, seed: int, max_chars: int) -> list[Prompt]:
    """`count` single-turn prompts of the run's instruction sources that no training or validation row used (the
    run itself samples only a few), a deterministic sample; ones that need an input ("...:") are left out."""
    used = {d.prompt_id for d in load_records(run / "curate", Dialogue) if d.split in ("train", "validation")}
    recipe = run_recipe(run)
    usable = [
        p
        for p in load_prompts(recipe.instructions.sources, instruction_mapping(recipe), recipe.instructions.split)
        if p.id not in used
        and len(p.turns) == 1
        and not p.turns[0].rstrip().endswith(":")
        and len(p.turns[0]) <= max_chars
    ]
    return sorted(usable, key=lambda p: (derive_seed(seed, p.id, "eval"), p.id))[:count]


def heldout_characters(run: Path, splits: list[str], limit: int) -> list[Character]:
    if not (run / "split" / "manifest.json").exists():
        raise DramatisError(f"heldout.run={run}: no finished synth run there (no split stage); run `make synth` first")
    found = [c for c in load_records(run / "split", Character) if c.split in splits]
    if not found:
        raise DramatisError(f"heldout.run={run}: no characters in split(s) {', '.join(splits)}")
    return found[:limit] if limit else found


def probe_schema(n: int, max_chars: int) -> dict:
    item = {"type": "string", "minLength": 10, "maxLength": max_chars}
    return {
        "type": "object",
        "properties": {"questions": {"type": "array", "items": item, "minItems": n, "maxItems": n}},
        "required": ["questions"],
        "additionalProperties": False,
    }


def _probe_ask(task: str, description: str, persona: str, n: int, language: str) -> str:
    return (
        f"Evaluation task: {task}\nWhat it tests: {description}\n\nPersona: {persona}\n\n"
        f"Write {n} questions in {LANGUAGE_NAMES.get(language, language)} for this persona."
    )


def probe_messages(
    character: Character, task: str, description: str, n: int, example: tuple[str, list[str]]
) -> list[dict]:
    """Few-shot: a real PersonaGym persona with its first questions of the task, then the character to write for."""
    persona, questions = example
    return [
        {"role": "system", "content": PROBE_SYSTEM},
        {"role": "user", "content": _probe_ask(task, description, persona, n, "en")},
        {"role": "assistant", "content": json.dumps({"questions": questions[:n]}, ensure_ascii=False)},
        {
            "role": "user",
            "content": _probe_ask(task, description, f"{character.name}: {character.persona}", n, character.language),
        },
    ]


def parse_probes(result, language: str, example: list[str]) -> list[str]:
    """The probing questions if every one has words, is in `language`, copies no example and repeats no other."""
    questions = json_object(result).get("questions")
    if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
        raise Rejected("schema_violation", "no 'questions' list of strings")
    questions = [q.strip() for q in questions]
    for q in questions:
        if len(words(q)) < MIN_WORDS:
            raise Rejected("too_short", f"a question of fewer than {MIN_WORDS} words: {q[:80]!r}")
        if detect_language(q) != language:
            raise Rejected(
                "wrong_language", f"question written in {detect_language(q)}, asked for {language}: {q[:80]!r}"
            )
        echo(q, {"the example": "\n".join(example)})
    if len({q.casefold() for q in questions}) < len(questions):
        raise Rejected("duplicate", "two questions are the same")
    return questions


def questions_stage(
    seed: int,
    chunk_size: int,
    backend,
    cache,
    characters: list[Character],
    rubrics: dict[str, str],
    examples: dict[str, tuple[str, list[str]]],
    *,
    n: int,
    max_chars: int,
    temperature: float,
    max_attempts: int,
    model: str,
) -> Stage:
    """Jobs → the generated `Question`s (translated prompts, probes); a job that fails every attempt is a reject."""
    by_id, descriptions = {c.id: c for c in characters}, task_descriptions(rubrics)

    def request(job: Job, attempt: int) -> ChatRequest:
        c = by_id[job.character_id]
        if job.kind == "translate":
            messages, schema = translate_messages(job.text, c.language), text_schema(max(max_chars, 2 * len(job.text)))
        else:
            messages, schema = (
                probe_messages(c, job.task, descriptions[job.task], n, examples[job.task]),
                probe_schema(n, max_chars),
            )
        return ChatRequest(
            messages=messages,
            seed=derive_seed(seed, job.id, attempt),
            max_tokens=max(256, n * max_chars // 2),
            temperature=temperature,
            top_p=1.0,
            top_k=64,
            json_schema=schema,
        )

    def parse(job: Job, result, req, attempt: int) -> Written:
        c = by_id[job.character_id]
        if job.kind == "translate":
            text = json_object(result).get("text")
            if not isinstance(text, str):
                raise Rejected("schema_violation", "no 'text' string in the output")
            text = check_turn(text, result.finish_reason, c.language, own_name="", other_names={})
            return Written(
                id=job.id,
                questions=[
                    Question(
                        id=job.question_id, benchmark="heldout", persona_id=c.id, task=INSTRUCTION, index=0, text=text
                    )
                ],
            )
        texts = parse_probes(result, c.language, examples[job.task][1])
        return Written(
            id=job.id,
            questions=[
                Question(
                    id=stable_id("q", c.id, job.task, str(i)),
                    benchmark="heldout",
                    persona_id=c.id,
                    task=job.task,
                    index=i,
                    text=q,
                )
                for i, q in enumerate(texts)
            ],
        )

    def process(chunk: list[Job], counters: Counter):
        for out in generate_validated(
            backend(),
            cache,
            chunk,
            stage="questions",
            request=request,
            parse=parse,
            max_attempts=max_attempts,
            counters=counters,
        ):
            yield from (out.questions if isinstance(out, Written) else [out])

    settings = {
        "n": n,
        "max_chars": max_chars,
        "temperature": temperature,
        "max_attempts": max_attempts,
        "model": model,
        "seed": seed,
        "examples": examples,
    }
    return Stage("questions", Question, process, chunk_size, settings, rebuild=True)


def question_jobs(
    characters: list[Character], prompts: list[Prompt], probes: int
) -> tuple[list[Job], dict[str, list[Question]]]:
    """The generator's jobs, and the questions that need none (prompts already in the character's language)."""
    jobs, ready = [], {c.id: [] for c in characters}
    for c in characters:
        for p in prompts:
            if p.language == c.language:
                ready[c.id].append(
                    Question(id=p.id, benchmark="heldout", persona_id=c.id, task=INSTRUCTION, index=0, text=p.turns[0])
                )
            else:
                jobs.append(
                    Job(
                        id=stable_id("t", c.id, p.id),
                        character_id=c.id,
                        kind="translate",
                        task=INSTRUCTION,
                        question_id=p.id,
                        text=p.turns[0],
                    )
                )
        if probes:
            jobs += [
                Job(id=stable_id("g", c.id, task), character_id=c.id, kind="probe", task=task, question_id="", text="")
                for task in TASKS
            ]
    return jobs, ready


def example_questions(path: Path) -> dict[str, tuple[str, list[str]]]:
    """task → (persona, its questions) of the benchmark file's first persona: the probe prompts' few-shot example."""
    persona, questions = next(iter(load_personagym(path, limit=1)))
    return {t: (persona.text, [q.text for q in questions if q.task == t]) for t in TASKS}


def item(
    benchmark: str,
    q: Question,
    *,
    character_id: str,
    name: str,
    language: str,
    system: str,
    persona: str,
    profile: str,
) -> Item:
    return Item(
        id=stable_id("i", benchmark, character_id, q.id),
        benchmark=benchmark,
        task=q.task,
        question_id=q.id,
        question=q.text,
        character_id=character_id,
        character=name,
        language=language,
        system=system,
        persona=persona,
        profile=profile,
    )


def heldout_items(characters: list[Character], questions: list[Question]) -> list[Item]:
    """Each character's questions in a fixed order: instruction prompts first, then the probes task by task."""
    order = {t: i for i, t in enumerate((INSTRUCTION, *TASKS))}
    by_character = {c.id: c for c in characters}
    return [
        item(
            "heldout",
            q,
            character_id=c.id,
            name=c.name,
            language=c.language,
            system=c.system_prompt,
            persona=c.persona,
            profile="profile",
        )
        for q in sorted(
            questions, key=lambda q: (list(by_character).index(q.persona_id), order[q.task], q.index, q.id)
        )
        for c in [by_character[q.persona_id]]
    ]


def line_prompt(persona: Persona) -> str:
    return fill(LINE.get(persona.language, LINE["en"]), persona=persona.text)


def personagym_items(asked: list[tuple[Persona, list[Question]]], profiles: dict[str, Character]) -> list[Item]:
    """Items of the personagym benchmark; a persona with a profile in `profiles` (by persona id) speaks from it."""
    items = []
    for persona, questions in asked:
        c = profiles.get(persona.id)
        who = (
            dict(character_id=c.id, name=c.name, language=c.language, system=c.system_prompt, profile="profile")
            if c
            else dict(
                character_id=persona.id,
                name=persona.text,
                language=persona.language,
                system=line_prompt(persona),
                profile="line",
            )
        )
        items += [item("personagym", q, persona=persona.text, **who) for q in questions]
    return items
