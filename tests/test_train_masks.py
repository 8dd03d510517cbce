"""Which tokens a training example supervises (train/masks.py), on the real tokenizers: the tiny model's ChatML
(its own template, with generation markers) and Gemma 3 270M (our train/chat_templates/gemma3.jinja)."""

import json

import pytest
from transformers import AutoTokenizer

from personas.errors import DramatisError
from tests.helpers import SHARED
from train.masks import IGNORE, TEMPLATES, supervise, training_template

# A real multi-turn conversation: the system message is a Persona Hub seed, the user turns real self-instruct
# tasks, the character turns their reference answers; the second character turn is flagged weight 0.
TASKS = [
    json.loads(line)
    for line in (SHARED / "instructions" / "self_instruct_seed_tasks.jsonl").read_text().splitlines()[:3]
]
PERSONA = json.loads((SHARED / "seeds" / "personahub_tool_5k.jsonl").read_text().splitlines()[3])["persona"]
CONVERSATION = [{"role": "system", "content": f"You are a character. {PERSONA}"}]
for i, task in enumerate(TASKS):
    CONVERSATION += [
        {"role": "user", "content": (task["instruction"] + "\n" + task["instances"][0]["input"]).strip()},
        {"role": "assistant", "content": task["instances"][0]["output"].strip(), "weight": 0 if i == 1 else 1},
    ]
REPLIES = [m["content"] for m in CONVERSATION if m["role"] == "assistant"]
EXPECTED_TURNS = {"all_turns": [0, 1, 2], "last_turn": [2], "flags": [0, 2]}


# Gemma is in the engine tier, as every test using the gemma_model fixture (tests/conftest.py) is.
@pytest.fixture(scope="module", params=["tiny", pytest.param("gemma", marks=pytest.mark.engine)])
def model(request):
    """(tokenizer, training template, its name, end-of-turn token) of each model."""
    path = request.getfixturevalue("tiny_model" if request.param == "tiny" else "gemma_model")
    tok = AutoTokenizer.from_pretrained(path)
    name, template = training_template(tok, "auto")
    return tok, template, name, "<|im_end|>" if request.param == "tiny" else "<end_of_turn>"


def supervised_runs(example: dict) -> list[list[int]]:
    """The labelled token ids, one list per contiguous run."""
    runs, current = [], None
    for token, label in zip(example["input_ids"], example["labels"], strict=False):
        if label == IGNORE:
            current = None
            continue
        assert label == token, "a supervised label must be the token itself"
        if current is None:
            current = []
            runs.append(current)
        current.append(token)
    return runs


def test_each_model_gets_the_expected_training_template(model):
    tok, template, name, eot = model
    assert name == ("the model's own" if eot == "<|im_end|>" else "gemma3.jinja")
    if eot == "<end_of_turn>":
        assert template == (TEMPLATES / "gemma3.jinja").read_text(encoding="utf-8")


@pytest.mark.parametrize("policy", EXPECTED_TURNS)
def test_supervised_tokens_are_exactly_the_kept_character_turns_and_their_end_token(model, policy):
    tok, template, _, eot = model
    example = supervise(CONVERSATION, tok, template, policy, max_length=4096)
    assert len(example["input_ids"]) == len(example["labels"]) < 4096
    runs = supervised_runs(example)
    # Exactly the reply's text + the end-of-turn token, per kept turn, in order: no header, no newline, nothing else.
    assert [tok.decode(run) for run in runs] == [REPLIES[i] + eot for i in EXPECTED_TURNS[policy]]
    assert [run[-1] for run in runs] == [tok.convert_tokens_to_ids(eot)] * len(runs)
    # Token for token what the tokenizer makes of that text (the turn boundaries fall on token boundaries).
    assert runs == [tok(REPLIES[i] + eot, add_special_tokens=False)["input_ids"] for i in EXPECTED_TURNS[policy]]
    # Nothing from the system or user turns is supervised.
    supervised_text = tok.decode(
        [t for t, label in zip(example["input_ids"], example["labels"], strict=False) if label != IGNORE]
    )
    for message in CONVERSATION:
        if message["role"] != "assistant":
            assert message["content"][:40] not in supervised_text


def test_a_message_without_a_weight_is_trained_under_flags(model):
    tok, template, _, eot = model
    unflagged = [{k: v for k, v in m.items() if k != "weight"} for m in CONVERSATION]
    none_weight = [
        {**m, "weight": None} if m["role"] == "assistant" else m for m in CONVERSATION
    ]  # Arrow's missing value
    for messages in (unflagged, none_weight):
        runs = supervised_runs(supervise(messages, tok, template, "flags", 4096))
        assert [tok.decode(r) for r in runs] == [reply + eot for reply in REPLIES]


def test_the_training_template_renders_what_the_model_sees_at_inference(model):
    tok, template, _, _ = model
    plain = [{"role": m["role"], "content": m["content"]} for m in CONVERSATION]
    trained = tok.apply_chat_template(plain, tokenize=False, chat_template=template)
    assert tok.apply_chat_template(plain, tokenize=False) == trained  # the folder's own (inference) template
    prompt = plain[:-1]
    assert tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True) == tok.apply_chat_template(
        prompt, tokenize=False, add_generation_prompt=True, chat_template=template
    )
    # And the ids supervise() trains on are the ones the inference template tokenizes to.
    ids = supervise(CONVERSATION, tok, template, "all_turns", 4096)["input_ids"]
    assert ids == tok.apply_chat_template(plain, tokenize=True, return_dict=True)["input_ids"]


def test_gemma_template_trims_the_reply_and_leaves_the_newline_after_end_of_turn_unsupervised(gemma_model):
    tok = AutoTokenizer.from_pretrained(gemma_model)
    _, template = training_template(tok, "auto")
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "  Well then.  \n"}]
    example = supervise(messages, tok, template, "all_turns", 512)
    runs = supervised_runs(example)
    assert [tok.decode(r) for r in runs] == ["Well then.<end_of_turn>"]
    end = max(i for i, label in enumerate(example["labels"]) if label != IGNORE)
    assert tok.decode(example["input_ids"][end + 1 :]) == "\n" and example["labels"][end + 1 :] == [IGNORE]


def test_max_length_cuts_ids_and_labels_together(model):
    tok, template, _, eot = model
    full = supervise(CONVERSATION, tok, template, "all_turns", 4096)
    first_start = next(i for i, label in enumerate(full["labels"]) if label != IGNORE)
    cut_at = first_start + 3  # three tokens into the first reply
    cut = supervise(CONVERSATION, tok, template, "all_turns", cut_at)
    assert cut["input_ids"] == full["input_ids"][:cut_at] and cut["labels"] == full["labels"][:cut_at]
    assert sum(label != IGNORE for label in cut["labels"]) == 3
    # Cut before the first reply: nothing left to learn (sft.tokenize refuses such a row, see test_train.py).
    early = supervise(CONVERSATION, tok, template, "all_turns", first_start)
    assert all(label == IGNORE for label in early["labels"]) and len(early["input_ids"]) == first_start


def test_an_unknown_policy_is_refused(model):
    tok, template, _, _ = model
    with pytest.raises(DramatisError, match="train.loss=every_other"):
        supervise(CONVERSATION, tok, template, "every_other", 512)


def test_a_template_file_without_generation_markers_is_refused(tmp_path, gemma_model):
    tok = AutoTokenizer.from_pretrained(gemma_model)
    plain = tmp_path / "plain.jinja"
    plain.write_text(tok.chat_template, encoding="utf-8")  # the inference template: renders fine, marks nothing
    with pytest.raises(DramatisError, match="no {% generation %} markers"):
        training_template(tok, str(plain))
    with pytest.raises(DramatisError, match="no such file"):
        training_template(tok, str(tmp_path / "missing.jinja"))


def test_a_template_file_with_markers_is_used_as_given(tmp_path, tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    path = tmp_path / "chatml.jinja"
    path.write_text(tok.chat_template, encoding="utf-8")
    assert training_template(tok, str(path)) == ("chatml.jinja", tok.chat_template)


def test_an_unknown_template_without_markers_is_refused_under_auto(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    tok.chat_template = tok.chat_template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    with pytest.raises(DramatisError, match="no {% generation %} markers and TRL knows no training variant"):
        training_template(tok, "auto")


def test_a_template_whose_blocks_disagree_with_the_turns_is_refused(tiny_model):
    tok = AutoTokenizer.from_pretrained(tiny_model)
    # Marks only the last character turn: one block for three turns, so per-turn policies would mis-assign.
    last_only = tok.chat_template.replace(
        "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}",
        "{% if loop.last %}{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}"
        "{% else %}{{- message['content'] + '<|im_end|>' }}{% endif %}",
    )
    assert last_only != tok.chat_template
    with pytest.raises(DramatisError, match="marks 1 generation blocks for 3 character turns"):
        supervise(CONVERSATION, tok, last_only, "last_turn", 4096)
    # One block spanning every turn: also refused, not silently trained on the user turns in between.
    whole = (
        "{% generation %}"
        + tok.chat_template.replace("{% generation %}", "").replace("{% endgeneration %}", "")
        + "{% endgeneration %}"
    )
    with pytest.raises(DramatisError, match="marks 1 generation blocks for 3 character turns"):
        supervise(CONVERSATION, tok, whole, "all_turns", 4096)
