"""The conversation state machine (synth/rollout.py), stepped against a scripted backend.

Real records: characters from the built-in personas with the few-shot example profiles, prompts from
the self-instruct seed tasks (single turn, with a reference) and MT-Bench (two given turns). Each request
is answered by its seed, which rollout derives from the turn, the kind of request and the attempt.
"""

import json
from collections import Counter

import pytest

from personas.profiles import EXAMPLES, character, render_user_persona
from personas.records import ProfileFields, derive_seed, name_key, stable_id
from personas.seeds import load_seeds
from synth.cache import RequestCache
from synth.llm import complete
from synth.prompts import load_prompts
from synth.records import Task
from synth.roleplay import SHOTS, TEXT, text_schema
from synth.rollout import Conversation, Sampling, rollout
from tests.helpers import SHARED
from tests.scripted_backend import Rule, ScriptedBackend, anything, seed_in

SEED = 11
INSTRUCTIONS = SHARED / "instructions"
PROMPTS = {
    p.source_id: p
    for p in load_prompts(
        [str(INSTRUCTIONS / "self_instruct_seed_tasks.jsonl"), str(INSTRUCTIONS / "mt_bench_questions.jsonl")]
    )
}
BREAKFAST = PROMPTS["seed_task_0"]  # one turn, a reference full of numbers
HAWAII = PROMPTS["81"]  # MT-Bench writing: two given turns, no references
STARTUP = PROMPTS["112"]  # MT-Bench math: two given turns, references '12000' and '2000'

_en, _zh = ([p for p in load_seeds("builtin") if p.language == lang] for lang in ("en", "zh"))
EAMON = character(_en[0], ProfileFields.model_validate(EXAMPLES[0][2]), "en", "scripted", 0, 1)
GUIFEN = character(_zh[0], ProfileFields.model_validate(EXAMPLES[1][2]), "zh", "scripted", 0, 1)
SIOBHAN = character(
    _en[1], ProfileFields.model_validate({**EXAMPLES[0][2], "name": "Siobhan Walsh"}), "en", "scripted", 0, 1
)

REPLY = "Porridge with nuts and a mug of milk, lad, and a slice of ham: that kept a keeper going till noon."
REPLY_2 = "A storm met me in Hilo. A fisherman told me of wrecks, and I wrote it all in my ninth notebook."
ASKED = "Did the keepers on the other rocks eat any better than you did?"
TRANSLATION = "有没有不含鸡蛋、但含蛋白质、大约700到1000卡路里的早餐？"
REPLY_ZH = "要得，早上来一碗豆浆、两个肉包子，再加一碗牛肉面，蛋白质够了，肚子也饱。"


def says(text: str) -> str:
    """What the grammar-constrained backend returns: the turn inside the one-field JSON object."""
    return json.dumps({"text": text}, ensure_ascii=False)


def conversation(prompt, speaker=EAMON, *, mode="G", user_turns=0, user=None, cues=False, names=None, **sampling):
    task = Task(
        id=stable_id("d", prompt.id, speaker.id, mode),
        prompt_id=prompt.id,
        character_id=speaker.id,
        mode=mode,
        user_turns=user_turns or len(prompt.turns),
        user_character_id=user.id if user else "",
        action_cues=cues,
        split="train",
    )
    return Conversation(
        task=task,
        prompt=prompt,
        character=speaker,
        user=user,
        other_names=names or {},
        recipe_seed=SEED,
        model="scripted",
        sampling=Sampling(**sampling),
    )


def seed(c: Conversation, turns: int, kind: str, attempt: int = 0) -> int:
    """The seed of the request made with `turns` turns written, as rollout derives it."""
    return derive_seed(SEED, c.task.id, f"{turns}:{kind}:{attempt}")


def answer(c: Conversation, turns: int, kind: str, text: str, attempt: int = 0, **result) -> Rule:
    return Rule(seed_in(seed(c, turns, kind, attempt)), text=says(text), **result)


def roll(conversations: list[Conversation], rules: list[Rule]) -> tuple[ScriptedBackend, Counter]:
    backend, counters = ScriptedBackend(rules), Counter()
    rollout(conversations, backend.generate, counters)
    return backend, counters


def contents(c: Conversation) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in c.dialogue().messages[1:]]


# ------------------------------------------------------------------------------------------- the turns


def test_a_single_turn_dialogue_takes_the_prompt_as_is_and_one_reply_request():
    c = conversation(BREAKFAST)
    backend, counters = roll([c], [answer(c, 1, "reply", "  " + REPLY + "\n", prompt_tokens=900, output_tokens=40)])
    assert backend.seeds == [seed(c, 1, "reply")]
    (req,) = backend.requests
    assert req.messages[0]["content"] == TEXT["en"]["G"] + " " + TEXT["en"]["json"]
    assert req.messages[-1]["content"].endswith("Write Eamon Gallagher's next reply in English.")
    assert BREAKFAST.turns[0] in req.messages[-1]["content"]
    assert (req.json_schema, req.max_tokens, req.repetition_penalty) == (text_schema(900), 512, 1.1)
    assert contents(c) == [("user", BREAKFAST.turns[0]), ("assistant", REPLY)]  # the turn is stripped
    d = c.dialogue()
    assert (d.messages[0].content, d.system_template) == (EAMON.system_prompt, "profile@1")
    assert (d.seed, d.requests, d.prompt_tokens, d.output_tokens, d.turns) == (req.seed, 1, 900, 40, 1)
    assert c.reject is None and c.done()
    assert counters == Counter()  # nothing failed


def test_mt_bench_second_turn_is_the_given_one_and_the_reply_sees_the_first_exchange():
    c = conversation(HAWAII)
    backend, _ = roll([c], [answer(c, 1, "reply", REPLY), answer(c, 3, "reply", REPLY_2)])
    assert backend.batch_sizes == [1, 1]
    assert backend.seeds == [seed(c, 1, "reply"), seed(c, 3, "reply")]  # no user-simulator request
    assert contents(c) == [
        ("user", HAWAII.turns[0]),
        ("assistant", REPLY),
        ("user", HAWAII.turns[1]),
        ("assistant", REPLY_2),
    ]
    assert "Eamon Gallagher: " + REPLY in backend.calls[1][0].messages[-1]["content"]


def test_turns_past_the_prompts_own_are_asked_of_the_user_simulator():
    c = conversation(BREAKFAST, user_turns=2)
    rules = [answer(c, 1, "reply", REPLY), answer(c, 2, "user", ASKED), answer(c, 3, "reply", REPLY_2)]
    backend, _ = roll([c], rules)
    assert backend.seeds == [seed(c, 1, "reply"), seed(c, 2, "user"), seed(c, 3, "reply")]
    user_request = backend.calls[1][0]
    assert user_request.messages[0]["content"] == TEXT["en"]["simulate"] + " " + TEXT["en"]["json"]
    assert user_request.messages[-1]["content"].endswith("Write the user's next message in English.")
    assert user_request.json_schema == text_schema(300)
    assert contents(c)[2:] == [("user", ASKED), ("assistant", REPLY_2)]
    assert c.dialogue().turns == 2


def test_a_prompt_in_another_language_is_translated_before_each_reply():
    c = conversation(STARTUP, GUIFEN)
    second = "如果第三年继续投入前一年的一半，会投入多少？"
    rules = [
        answer(c, 0, "translate", TRANSLATION),
        answer(c, 1, "reply", REPLY_ZH),
        answer(c, 2, "translate", second),
        answer(c, 3, "reply", "还是那句话，莫着急，先喝口茶，一年比一年少一半，心里有数就好。"),
    ]
    backend, _ = roll([c], rules)
    assert backend.seeds == [
        seed(c, 0, "translate"),
        seed(c, 1, "reply"),
        seed(c, 2, "translate"),
        seed(c, 3, "reply"),
    ]
    translate = backend.calls[0][0]
    assert translate.messages[-1]["content"] == "消息:\n" + STARTUP.turns[0] + "\n\n翻译成中文。"
    assert translate.json_schema == text_schema(4 * 300)
    assert [content for role, content in contents(c) if role == "user"] == [TRANSLATION, second]
    assert TRANSLATION in backend.calls[1][0].messages[-1]["content"]  # the reply answers the translation


def test_a_translation_in_the_wrong_language_is_asked_again_and_the_attempts_start_over_for_the_reply():
    c = conversation(BREAKFAST, GUIFEN, max_attempts=2)
    rules = [
        answer(c, 0, "translate", "Is there a breakfast without eggs?"),
        answer(c, 0, "translate", TRANSLATION, attempt=1),
        answer(c, 1, "reply", REPLY_ZH),
    ]
    backend, counters = roll([c], rules)
    assert backend.seeds == [seed(c, 0, "translate"), seed(c, 0, "translate", 1), seed(c, 1, "reply")]
    assert counters == Counter(attempt_failed_wrong_language=1)
    assert contents(c) == [("user", TRANSLATION), ("assistant", REPLY_ZH)]


# ------------------------------------------------------------------------------------ failures and retries

TOO_LONG = "prompt 3700 tokens + max_tokens 512 > max_model_len 4096"


def test_a_conversation_that_outgrows_the_context_ends_at_its_last_full_exchange():
    c = conversation(BREAKFAST, user_turns=3)
    too_long = Rule(seed_in(seed(c, 3, "reply")), finish_reason="too_long", error=TOO_LONG)
    backend, counters = roll([c], [answer(c, 1, "reply", REPLY), answer(c, 2, "user", ASKED), too_long])
    assert backend.seeds == [seed(c, 1, "reply"), seed(c, 2, "user"), seed(c, 3, "reply")]  # not asked again
    assert contents(c) == [("user", BREAKFAST.turns[0]), ("assistant", REPLY)]  # the unanswerable turn dropped
    assert c.reject is None and c.done() and c.dialogue().turns == 1
    assert counters == Counter(ended_at_context=1)


def test_a_first_turn_over_the_context_is_rejected_as_too_long_without_a_retry():
    c = conversation(BREAKFAST)  # max_attempts=3
    backend, counters = roll([c], [Rule(seed_in(seed(c, 1, "reply")), finish_reason="too_long", error=TOO_LONG)])
    assert backend.seeds == [seed(c, 1, "reply")]
    r = c.reject
    assert (r.reason, r.attempts, r.detail) == ("too_long", 1, "turn 2: " + TOO_LONG)
    assert counters == Counter(attempt_failed_too_long=1)


def test_a_failed_turn_is_retried_with_a_new_seed_then_the_dialogue_rejected():
    c = conversation(BREAKFAST)  # max_attempts=3
    outputs = [f"As an AI language model, I cannot eat breakfast (try {n})." for n in range(3)]
    backend, counters = roll([c], [answer(c, 1, "reply", text, attempt=n) for n, text in enumerate(outputs)])
    assert backend.seeds == [seed(c, 1, "reply", n) for n in range(3)]
    assert len(set(backend.seeds)) == 3
    r = c.reject
    assert (r.id, r.stage, r.reason, r.attempts, r.output) == (
        c.task.id,
        "dialogues",
        "assistant_speak",
        3,
        says(outputs[2]),
    )
    assert r.detail == "turn 2: 'As an AI'"
    assert r.record == c.task.model_dump_json()
    assert counters == Counter(attempt_failed_assistant_speak=3)
    assert c.done() and c.turns == [{"role": "user", "content": BREAKFAST.turns[0]}]


def test_the_attempt_budget_is_per_turn():
    c = conversation(HAWAII, max_attempts=2)
    rules = [
        answer(c, 1, "reply", "", finish_reason="length"),
        answer(c, 1, "reply", REPLY, attempt=1),
        Rule(seed_in(seed(c, 3, "reply")), text="{"),
        answer(c, 3, "reply", REPLY_2, attempt=1),
    ]
    backend, counters = roll([c], rules)
    assert c.reject is None and len(c.turns) == 4
    assert len(backend.calls) == 4
    assert counters == Counter(attempt_failed_truncated=1, attempt_failed_invalid_json=1)


OTHERS = {name_key("Siobhan Walsh"): "Siobhan Walsh", name_key("Siobhan"): "Siobhan Walsh"}


@pytest.mark.parametrize(
    "output, finish_reason, reason, detail",
    [
        (
            says("I am Siobhan Walsh, and I never eat before noon."),
            "stop",
            "wrong_character",
            "speaks as Siobhan Walsh",
        ),
        (says(BREAKFAST.turns[0]), "stop", "echo", "copies the user's message"),
        (says(SHOTS["en"]["G"]), "stop", "echo", "copies a few-shot example"),
        (says(REPLY_ZH), "stop", "wrong_language", "turn written in zh, the dialogue is in en"),
        (says(" ... "), "stop", "empty", "no words in the turn"),
        (json.dumps({"reply": REPLY}), "stop", "schema_violation", "no 'text' string in the output"),
        (says(REPLY)[:30], "length", "truncated", "the output hit max_tokens"),
        ("", "error", "backend_error", "HTTP 500"),
    ],
)
def test_a_reply_that_fails_a_check_is_rejected_with_its_reason(output, finish_reason, reason, detail):
    c = conversation(BREAKFAST, names=OTHERS, max_attempts=1)
    error = detail if finish_reason == "error" else ""
    roll([c], [Rule(anything, text=output, finish_reason=finish_reason, error=error)])
    assert (c.reject.reason, c.reject.output) == (reason, output)
    assert c.reject.detail.startswith(f"turn 2: {detail}")


def test_a_character_may_name_itself():
    c = conversation(BREAKFAST, names={**OTHERS, name_key("Eamon Gallagher"): "Eamon Gallagher"})
    roll([c], [answer(c, 1, "reply", "I am Eamon Gallagher, and porridge with ham is what I eat.")])
    assert c.reject is None


def test_a_rewrite_must_keep_the_numbers_of_the_reference():
    c = conversation(STARTUP, mode="R", max_attempts=1)
    rules = [
        answer(c, 1, "reply", "Eight thousand, then half again: 12000 in all, lad, as the ledger says."),
        answer(c, 3, "reply", "Half of the last year again, lad, and the sea keeps its own ledger."),
    ]
    backend, _ = roll([c], rules)
    first = backend.calls[0][0]
    assert first.messages[0]["content"] == TEXT["en"]["R"] + " " + TEXT["en"]["json"]
    assert "Reference answer (keep every fact, number and code block):\n12000" in first.messages[-1]["content"]
    assert (c.reject.reason, c.reject.detail) == ("lost_facts", "turn 4: missing: 2000")


def test_an_r_task_writes_a_turn_without_a_reference_as_g():
    prompt = STARTUP.model_copy(update={"references": ["12000", ""]})
    c = conversation(prompt, mode="R")
    rules = [answer(c, 1, "reply", "It comes to 12000 in all, lad."), answer(c, 3, "reply", REPLY_2)]
    backend, _ = roll([c], rules)
    assert [batch[0].messages[0]["content"].split(".")[0] for batch in backend.calls] == [
        TEXT["en"]["R"].split(".")[0],
        TEXT["en"]["G"].split(".")[0],
    ]
    assert c.reject is None  # the second reply keeps no reference fact, and needs none


# ----------------------------------------------------------------------------- the user's role, action cues


def test_the_character_the_user_plays_is_in_every_request_and_in_the_system_message():
    c = conversation(BREAKFAST, user=SIOBHAN, user_turns=2)
    rules = [answer(c, 1, "reply", REPLY), answer(c, 2, "user", ASKED), answer(c, 3, "reply", REPLY_2)]
    backend, _ = roll([c], rules)
    brief = "The user plays: Siobhan Walsh — " + SIOBHAN.persona
    assert all(brief in r.messages[-1]["content"] for r in backend.requests)
    d = c.dialogue()
    assert d.messages[0].content == EAMON.system_prompt + "\n\n" + render_user_persona(EAMON, SIOBHAN)
    assert (d.system_template, d.user_character_id) == ("profile@1+user@1", SIOBHAN.id)


@pytest.mark.parametrize("cues", [True, False])
def test_action_cues_are_asked_for_only_when_the_task_has_them(cues):
    c = conversation(BREAKFAST, cues=cues)
    backend, _ = roll([c], [answer(c, 1, "reply", REPLY)])
    assert backend.requests[0].messages[-1]["content"].endswith(" " + TEXT["en"]["cues"]) is cues


# ----------------------------------------------------------------------------- batching, counts, the cache


def test_one_batch_per_step_across_conversations_and_ended_ones_drop_out():
    one, two, failing = conversation(BREAKFAST), conversation(HAWAII), conversation(PROMPTS["82"], max_attempts=1)
    rules = [
        answer(one, 1, "reply", REPLY),
        answer(two, 1, "reply", REPLY),
        answer(two, 3, "reply", REPLY_2),
        Rule(seed_in(seed(failing, 1, "reply")), text="not json"),
    ]
    backend, _ = roll([one, two, failing], rules)
    assert backend.batch_sizes == [3, 1]
    assert [r.seed for r in backend.calls[0]] == [seed(c, 1, "reply") for c in (one, two, failing)]
    assert (one.reject, two.reject, failing.reject.reason) == (None, None, "invalid_json")


def test_rollout_ends_when_every_conversation_is_rejected():
    conversations = [conversation(BREAKFAST, max_attempts=2), conversation(HAWAII, max_attempts=2)]
    backend, counters = roll(conversations, [Rule(anything, text="", finish_reason="error", error="timeout")])
    assert backend.batch_sizes == [2, 2]
    assert [c.reject.attempts for c in conversations] == [2, 2]
    assert counters == Counter(attempt_failed_backend_error=4)
    assert roll([], [])[0].calls == []


def test_the_dialogue_counts_every_request_but_only_kept_turns_count_as_accepted():
    c = conversation(BREAKFAST)
    rules = [
        Rule(seed_in(seed(c, 1, "reply")), text="{", prompt_tokens=100, output_tokens=7),
        answer(c, 1, "reply", REPLY, attempt=1, prompt_tokens=100, output_tokens=11),
    ]
    roll([c], rules)
    d = c.dialogue()
    assert (d.requests, d.prompt_tokens, d.output_tokens, c.counts["accepted_tokens"]) == (2, 200, 18, 11)
    assert d.seed == seed(c, 1, "reply")  # the first request's seed: later ones derive from it


def test_a_rerun_through_the_request_cache_sends_nothing_and_builds_the_same_dialogue(tmp_path):
    cache = RequestCache(tmp_path / "requests.sqlite")
    first, counters = conversation(BREAKFAST, user_turns=2), Counter()
    backend = ScriptedBackend(
        [answer(first, 1, "reply", REPLY), answer(first, 2, "user", ASKED), answer(first, 3, "reply", REPLY_2)]
    )
    rollout([first], lambda requests: complete(backend, cache, requests, counters), counters)
    again, rerun, counters_again = conversation(BREAKFAST, user_turns=2), ScriptedBackend([]), Counter()
    rollout([again], lambda requests: complete(rerun, cache, requests, counters_again), counters_again)
    cache.close()
    assert rerun.calls == []
    assert again.dialogue() == first.dialogue()
    assert (counters["requests_generated"], counters_again["requests_cached"]) == (3, 3)
