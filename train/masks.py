"""Which tokens a training example supervises: the chat template and the loss policy.

The mask comes from `{% generation %}` blocks in the chat template (transformers' `assistant_masks`): one
contiguous run of tokens per character turn — its text plus its end-of-turn token. The policy then keeps
every run (`all_turns`), the last one (`last_turn`) or those not flagged `weight: 0` (`flags`). System and
user turns are never supervised. We build `labels` ourselves instead of TRL's `assistant_only_loss`, so
the last-turn and per-turn policies work and an example with nothing to learn is refused, not skipped.
"""

from pathlib import Path

from trl.chat_template_utils import gemma3_chat_template, get_training_chat_template, has_generation_markers

from personas.errors import DramatisError

TEMPLATES = Path(__file__).parent / "chat_templates"
IGNORE = -100


def training_template(tokenizer, choice: str = "auto") -> tuple[str, str]:
    """(name, template) to train with. Each renders the same text as the inference template, so a model
    trained with it sees at inference exactly what it saw in training."""
    if choice != "auto":
        path = Path(choice)
        if not path.is_file():
            raise DramatisError(f"model.chat_template={choice}: no such file")
        template = path.read_text(encoding="utf-8")
        if not has_generation_markers(template):
            raise DramatisError(
                f"model.chat_template={choice}: no {{% generation %}} markers, so no turn could be supervised"
            )
        return path.name, template
    own = tokenizer.chat_template or ""
    if has_generation_markers(own):
        return "the model's own", own
    if own == gemma3_chat_template:
        # TRL's training variant also supervises the newline after <end_of_turn>; ours stops at the token.
        return "gemma3.jinja", (TEMPLATES / "gemma3.jinja").read_text(encoding="utf-8")
    try:
        return "TRL's training variant", get_training_chat_template(tokenizer)
    except ValueError:
        raise DramatisError(
            "the model's chat template has no {% generation %} markers and TRL knows no training variant "
            "of it: give model.chat_template=<file.jinja> with the markers around the assistant turns"
        ) from None


def turn_runs(mask: list[int]) -> list[tuple[int, int]]:
    """[start, end) of each run of 1s: one per supervised-able character turn."""
    runs, start = [], None
    for i, bit in enumerate([*mask, 0]):
        if bit and start is None:
            start = i
        elif not bit and start is not None:
            runs.append((start, i))
            start = None
    return runs


def supervise(messages: list[dict], tokenizer, template: str, policy: str, max_length: int) -> dict:
    """input_ids and labels (IGNORE outside the supervised turns) of one conversation, cut to max_length."""
    rendered = tokenizer.apply_chat_template(
        [{"role": m["role"], "content": m["content"]} for m in messages],
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
        chat_template=template,
    )
    ids, runs = list(rendered["input_ids"]), turn_runs(list(rendered["assistant_masks"]))
    turns = [m for m in messages if m["role"] == "assistant"]
    if len(runs) != len(turns):
        raise DramatisError(f"chat template marks {len(runs)} generation blocks for {len(turns)} character turns")
    if policy == "all_turns":
        keep = [True] * len(turns)
    elif policy == "last_turn":
        keep = [i == len(turns) - 1 for i in range(len(turns))]
    elif policy == "flags":
        keep = [m.get("weight") != 0 for m in turns]  # a message without the key (None) is trained
    else:
        raise DramatisError(f"train.loss={policy}: use all_turns, last_turn or flags")
    labels = [IGNORE] * len(ids)
    for (start, end), trained in zip(runs, keep, strict=False):
        if trained:
            labels[start:end] = ids[start:end]
    return {"input_ids": ids[:max_length], "labels": labels[:max_length]}
