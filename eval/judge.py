"""The LLM judge: absolute rubric scores and pairwise GSB, through any backend, at temperature 0.

Every judgement is forced to a JSON schema (justification first, so the score follows from it; then the score
as an enum of the scale), so a parse can only fail on a cut-off output or a transport error — those become
rejects with the reason. Rubrics: PersonaGym's 1–5 rubric of the question's task (the judge reads the one-line
persona, as PersonaGym's judges do) and our 0–4 role-play rubric (the judge reads the whole profile the model saw).
GSB asks which of two replies plays the character better, once in each order: an outcome counts only when
both orders name the same model; a flip (or one order undecided) is Same, so position bias cannot win.
"""

from collections import Counter
from dataclasses import asdict

from eval.personagym import TASKS
from eval.recipe import JudgeConfig
from eval.records import Judgement, Reply, Verdict
from personas.errors import Rejected
from personas.profiles import fill
from personas.records import stable_id
from synth.backend import ChatRequest
from synth.llm import complete, json_object
from synth.runner import Reject, Stage

TEMPLATE = "judge@1"  # the judge prompts' version, recorded as part of the judge's identity
ROLEPLAY = """You will be given a character profile, a question put to the character, and the character's reply. Rate how well the reply plays the character, on a scale of 0 to 4.

Score = 0: not role-play at all: an AI assistant's answer, a refusal, another character, garbled or empty text, or the profile or question copied back.
Score = 1: about the character rather than by them: a narrator or an assistant describing the role; a generic voice; facts that contradict the profile.
Score = 2: speaks as the character in places, but the voice is generic or the reply does not answer the question.
Score = 3: in character throughout and answers the question with the character's knowledge and manner; minor lapses.
Score = 4: unmistakably this character: their voice, speech style, history and views, answering the question naturally, nothing out of character.

Be an accurate, critical and fair judge.

Character profile:
{profile}

Question:
{question}

Reply:
{response}"""
GSB = """You will be given a character profile, a question put to the character, and two replies. Decide which reply plays the character better: it speaks as the character (not as an AI assistant or a narrator), fits the profile's voice, history and manner, and answers the question. If both are equally good or equally bad, answer same.

Character profile:
{profile}

Question:
{question}

Reply 1:
{first}

Reply 2:
{second}"""
ASK_SCORE = '\n\nAnswer with a JSON object only: "justification" (one or two sentences), then "score" (an integer from {low} to {high}).'
ASK_WINNER = (
    '\n\nAnswer with a JSON object only: "justification" (one or two sentences), then "winner": "1", "2" or "same".'
)
NO_EXAMPLES = "(No score examples are given: use the criteria above.)"
SCALES = {"persona": (1, 5), "roleplay": (0, 4)}


def score_schema(low: int, high: int, max_chars: int) -> dict:
    return {
        "type": "object",
        "properties": {
            "justification": {"type": "string", "minLength": 1, "maxLength": max_chars},
            "score": {"type": "integer", "enum": list(range(low, high + 1))},
        },
        "required": ["justification", "score"],
        "additionalProperties": False,
    }


def winner_schema(max_chars: int) -> dict:
    return {
        "type": "object",
        "properties": {
            "justification": {"type": "string", "minLength": 1, "maxLength": max_chars},
            "winner": {"type": "string", "enum": ["1", "2", "same"]},
        },
        "required": ["justification", "winner"],
        "additionalProperties": False,
    }


def rubrics_for(reply: Reply, rubrics: list[str]) -> list[str]:
    """The rubrics a reply is scored on: role-play always (when asked for), PersonaGym's only for its own tasks."""
    return [r for r in rubrics if r == "roleplay" or (r == "persona" and reply.task in TASKS)]


def score_prompt(reply: Reply, rubric: str, persona_rubrics: dict[str, str]) -> str:
    low, high = SCALES[rubric]
    if rubric == "persona":
        text = fill(
            persona_rubrics[reply.task],
            score_example=NO_EXAMPLES,
            persona=reply.persona,
            question=reply.question,
            response=reply.text,
        )
    else:
        text = fill(ROLEPLAY, profile=reply.system, question=reply.question, response=reply.text)
    return text + fill(ASK_SCORE, low=str(low), high=str(high))


def gsb_prompt(a: Reply, first: str, second: str) -> str:
    return fill(GSB, profile=a.system, question=a.question, first=first, second=second) + ASK_WINNER


def judge_request(prompt: str, schema: dict, cfg: JudgeConfig) -> ChatRequest:
    # Temperature 0 and one fixed seed: a judge gives the same answer to the same question, so a retry would too.
    return ChatRequest(
        messages=[{"role": "user", "content": prompt}],
        seed=0,
        max_tokens=cfg.max_tokens,
        temperature=0.0,
        top_p=1.0,
        top_k=0,
        json_schema=schema,
    )


def parse_judgement(result, key: str, allowed) -> tuple:
    """(value of `key`, justification) of a judge's output, or `Rejected` with why it is unusable."""
    if result.finish_reason == "error":
        raise Rejected("backend_error", result.error)
    data = json_object(result)
    value = data.get(key)
    if value not in allowed or isinstance(value, bool):
        raise Rejected("judge_invalid", f"'{key}' is {value!r}, not one of {list(allowed)}")
    return value, str(data.get("justification", "")).strip()


def gsb_outcome(a_first: str, b_first: str) -> str:
    """G / S / B for model b from the two orders' winners (a | b | same): only an agreement counts."""
    if a_first == b_first:
        return {"b": "G", "a": "B", "same": "S"}[a_first]
    return "S"


def judgements_stage(
    label: str, judge_id: str, backend, cache, cfg: JudgeConfig, persona_rubrics: dict[str, str], chunk_size: int
) -> Stage:
    """Replies → one `Judgement` per applicable rubric; an unusable judgement is a reject with its reason."""

    def process(chunk: list[Reply], counters: Counter):
        asks = [(reply, rubric) for reply in chunk for rubric in rubrics_for(reply, cfg.rubrics)]
        requests = [
            judge_request(
                score_prompt(r, rubric, persona_rubrics), score_schema(*SCALES[rubric], cfg.max_justification), cfg
            )
            for r, rubric in asks
        ]
        for (reply, rubric), result in zip(asks, complete(backend(), cache, requests, counters), strict=False):
            jid = stable_id("j", reply.id, label, rubric)
            low, high = SCALES[rubric]
            try:
                score, why = parse_judgement(result, "score", range(low, high + 1))
            except Rejected as e:
                yield Reject(
                    id=jid,
                    stage="judge",
                    reason=e.reason,
                    detail=e.detail,
                    record=reply.model_dump_json(),
                    output=result.text,
                )
                continue
            yield Judgement(
                id=jid,
                reply_id=reply.id,
                item_id=reply.item_id,
                model=reply.model,
                benchmark=reply.benchmark,
                task=reply.task,
                character_id=reply.character_id,
                seed=reply.seed,
                judge=label,
                judge_model=judge_id,
                rubric=rubric,
                low=low,
                high=high,
                score=score,
                justification=why,
                prompt_tokens=result.prompt_tokens,
                output_tokens=result.output_tokens,
            )

    settings = {
        "judge": label,
        "judge_model": judge_id,
        "template": TEMPLATE,
        "cfg": asdict(cfg),
        "rubrics": persona_rubrics,
    }
    return Stage("judge", Judgement, process, chunk_size, settings, rebuild=True)


def verdicts_stage(
    label: str,
    judge_id: str,
    backend,
    cache,
    cfg: JudgeConfig,
    reference: dict[tuple[str, int], Reply],
    chunk_size: int,
) -> Stage:
    """Replies of a compared model b → a `Verdict` against the reference model a's reply to the same item and seed."""
    schema = winner_schema(cfg.max_justification)

    def process(chunk: list[Reply], counters: Counter):
        pairs = []
        for b in chunk:
            a = reference.get((b.item_id, b.seed))
            if a is None:  # the reference's reply was rejected (transport error): nothing to compare with
                yield Reject(
                    id=stable_id("v", b.id, label),
                    stage="gsb",
                    reason="no_reference_reply",
                    record=b.model_dump_json(),
                )
            else:
                pairs.append((a, b))
        requests = [
            judge_request(gsb_prompt(a, x.text, y.text), schema, cfg) for a, b in pairs for x, y in ((a, b), (b, a))
        ]
        results = complete(backend(), cache, requests, counters)
        for n, (a, b) in enumerate(pairs):
            vid = stable_id("v", a.item_id, str(a.seed), label, a.model, b.model)
            first, second = results[2 * n], results[2 * n + 1]
            try:
                (w1, why1), (w2, why2) = (parse_judgement(r, "winner", ("1", "2", "same")) for r in (first, second))
            except Rejected as e:
                yield Reject(
                    id=vid,
                    stage="gsb",
                    reason=e.reason,
                    detail=e.detail,
                    record=b.model_dump_json(),
                    output=first.text + "\n" + second.text,
                )
                continue
            # Map "Reply 1/2" back to models: a was shown first in the first request, b in the second.
            a_first, b_first = {"1": "a", "2": "b", "same": "same"}[w1], {"1": "b", "2": "a", "same": "same"}[w2]
            yield Verdict(
                id=vid,
                item_id=a.item_id,
                benchmark=a.benchmark,
                task=a.task,
                character_id=a.character_id,
                seed=a.seed,
                judge=label,
                judge_model=judge_id,
                model_a=a.model,
                model_b=b.model,
                a_first=a_first,
                b_first=b_first,
                outcome=gsb_outcome(a_first, b_first),
                justification_a_first=why1,
                justification_b_first=why2,
                prompt_tokens=first.prompt_tokens + second.prompt_tokens,
                output_tokens=first.output_tokens + second.output_tokens,
            )

    settings = {"judge": label, "judge_model": judge_id, "template": TEMPLATE, "cfg": asdict(cfg)}
    return Stage("gsb", Verdict, process, chunk_size, settings, rebuild=True)
