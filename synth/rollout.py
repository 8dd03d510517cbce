"""The conversation state machine: one `Conversation` per task, one `rollout` loop that steps them all.

Each step asks every live conversation for its next request (translate a fixed user turn, simulate the
user, or the character's reply), sends them to the backend as one batch, and hands each result back.
A turn that fails a check is asked again with a new seed; after `max_attempts` the conversation becomes
a `Reject` with the reason. Every step appends a turn or spends an attempt, so the loop always ends.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from personas.errors import Rejected
from personas.profiles import render_user_persona
from personas.records import Character, derive_seed
from synth.backend import ChatRequest, ChatResult
from synth.llm import json_object
from synth.quality import check_turn, echo, kept_facts
from synth.records import Dialogue, Message, Prompt, Task
from synth.roleplay import EXAMPLE_TEXTS, reply_messages, text_schema, translate_messages, user_messages
from synth.runner import Reject


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 0
    repetition_penalty: float = 1.1
    max_tokens: int = 512
    max_reply_chars: int = 900
    max_user_chars: int = 300
    max_attempts: int = 3


@dataclass
class Conversation:
    task: Task
    prompt: Prompt
    character: Character
    user: Character | None
    other_names: dict[str, str]  # name_key → name of every other character in the run (the 串戏 check)
    recipe_seed: int
    model: str
    sampling: Sampling
    turns: list[dict] = field(default_factory=list)
    script: list[str] = field(default_factory=list)  # fixed user turns; replaced by their translation when needed
    translated: set[int] = field(default_factory=set)
    attempt: int = 0
    reject: Reject | None = None
    ended: bool = False  # ended before its planned turns: the next turn would not fit the context
    counts: dict = field(
        default_factory=lambda: {
            "requests": 0,
            "prompt_tokens": 0,
            "output_tokens": 0,
            "accepted_tokens": 0,
            "first_seed": -1,
        }
    )

    def __post_init__(self):
        self.script = list(self.prompt.turns)

    @property
    def language(self) -> str:
        return self.character.language

    def done(self) -> bool:
        return self.reject is not None or self.ended or len(self.turns) == 2 * self.task.user_turns

    def end_early(self) -> bool:
        """The conversation outgrew the context: it ends at its last full exchange (a shorter dialogue, not a
        lost one), or, with none yet, is rejected as `too_long`. True when it ended."""
        exchanges = len(self.turns) // 2
        if not exchanges:
            return False
        del self.turns[2 * exchanges :]  # a user turn the character can no longer answer
        self.ended = True
        return True

    def _scripted(self) -> int | None:
        """Index of the fixed user turn due now, if the prompt has one for this point."""
        i = len(self.turns) // 2
        return i if len(self.turns) % 2 == 0 and i < len(self.script) else None

    def advance(self) -> None:
        """Take a fixed user turn that needs no model call (the prompt's own turn, in the dialogue's language)."""
        i = self._scripted()
        if i is not None and (i in self.translated or self.prompt.language == self.language):
            self.turns.append({"role": "user", "content": self.script[i]})

    def request(self) -> ChatRequest:
        s, t, i = self.sampling, self.task, self._scripted()
        if i is not None:
            kind, messages, cap = "translate", translate_messages(self.script[i], self.language), s.max_user_chars * 4
        elif len(self.turns) % 2 == 0:
            kind, cap = "user", s.max_user_chars
            messages = user_messages(self.character, self.turns, user=self.user, cues=t.action_cues)
        else:
            kind, cap = "reply", s.max_reply_chars
            messages = reply_messages(
                self.character,
                self.turns,
                mode=self.mode(),
                reference=self.reference(),
                user=self.user,
                cues=t.action_cues,
            )
        seed = derive_seed(self.recipe_seed, t.id, f"{len(self.turns)}:{kind}:{self.attempt}")
        if self.counts["first_seed"] < 0:
            self.counts["first_seed"] = seed
        return ChatRequest(
            messages=messages,
            seed=seed,
            max_tokens=s.max_tokens,
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k,
            repetition_penalty=s.repetition_penalty,
            json_schema=text_schema(cap),
        )

    def mode(self) -> str:
        return "R" if self.task.mode == "R" and self.reference() else "G"

    def reference(self) -> str:
        i = len(self.turns) // 2
        return self.prompt.references[i] if i < len(self.prompt.references) else ""

    def accept(self, result: ChatResult, counters) -> None:
        self.counts["requests"] += 1
        self.counts["prompt_tokens"] += result.prompt_tokens
        self.counts["output_tokens"] += result.output_tokens
        scripted, speaker = self._scripted(), "user" if len(self.turns) % 2 == 0 else "assistant"
        try:
            if result.finish_reason == "error":
                raise Rejected("backend_error", result.error)
            if result.finish_reason == "too_long":
                if self.end_early():
                    counters["ended_at_context"] += 1
                    return
                raise Rejected("too_long", result.error)  # no retry: another seed cannot shorten the prompt
            text = _parse(result)
            if speaker == "assistant":
                names = self.other_names
                text = check_turn(
                    text, result.finish_reason, self.language, own_name=self.character.name, other_names=names
                )
                if self.mode() == "R":
                    kept_facts(self.reference(), text)
            else:
                text = check_turn(text, result.finish_reason, self.language, own_name="", other_names={})
            earlier = (
                {}
                if scripted is not None
                else {
                    "the user's message": self.turns[-1]["content"] if speaker == "assistant" else "",
                    "an earlier turn": "\n".join(m["content"] for m in self.turns),
                }
            )
            echo(text, {**earlier, "a few-shot example": EXAMPLE_TEXTS})
        except Rejected as e:
            counters[f"attempt_failed_{e.reason}"] += 1
            self.attempt += 1
            if self.attempt >= self.sampling.max_attempts or e.reason == "too_long":
                self.reject = Reject(
                    id=self.task.id,
                    stage="dialogues",
                    reason=e.reason,
                    detail=f"turn {len(self.turns) + 1}: {e.detail}",
                    record=self.task.model_dump_json(),
                    output=result.text,
                    attempts=self.attempt,
                )
            return
        self.attempt = 0
        self.counts["accepted_tokens"] += result.output_tokens
        if scripted is not None:
            self.script[scripted] = text
            self.translated.add(scripted)
        else:
            self.turns.append({"role": speaker, "content": text})

    def system_message(self) -> tuple[str, str]:
        """The training row's system message and its template name: the profile, plus the user's role if any."""
        if self.user is None:
            return self.character.system_prompt, self.character.system_template
        return (
            self.character.system_prompt + "\n\n" + render_user_persona(self.character, self.user),
            self.character.system_template + "+user@1",
        )

    def dialogue(self) -> Dialogue:
        system, template = self.system_message()
        c, t, p = self.character, self.task, self.prompt
        return Dialogue(
            id=t.id,
            messages=[Message(role="system", content=system)] + [Message(**m) for m in self.turns],
            character_id=c.id,
            character_name=c.name,
            user_character_id=t.user_character_id,
            mode=t.mode,
            split=t.split,
            prompt_id=p.id,
            prompt_source=p.source,
            prompt_source_id=p.source_id,
            turns=len(self.turns) // 2,  # the planned user turns, or fewer when it ended at the context
            language=self.language,
            system_template=template,
            model=self.model,
            seed=self.counts["first_seed"],
            requests=self.counts["requests"],
            prompt_tokens=self.counts["prompt_tokens"],
            output_tokens=self.counts["output_tokens"],
        )


def _parse(result: ChatResult) -> str:
    data = json_object(result)
    if not isinstance(data.get("text"), str):
        raise Rejected("schema_violation", "no 'text' string in the output")
    return data["text"]


def rollout(
    conversations: list[Conversation], send: Callable[[list[ChatRequest]], list[ChatResult]], counters
) -> None:
    """Step every conversation to its end, one backend batch per step across all of them."""
    live = list(conversations)
    while live:
        for c in live:
            c.advance()
        live = [c for c in live if not c.done()]
        if not live:
            break
        results = send([c.request() for c in live])
        for c, result in zip(live, results, strict=False):
            c.accept(result, counters)
        live = [c for c in live if not c.done()]
