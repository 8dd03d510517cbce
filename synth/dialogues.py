"""Prompts × characters → tasks (the balanced assignment), and the dialogues stage that rolls them out.

OpenCharacter (arXiv 2501.15427) gave each instruction 3 random characters; here the draw is
deterministic in (seed, prompt id) and balanced (characters are dealt from reshuffled decks, so no
character gets more than one prompt above another). Held-out characters only get the held-out
prompts; train and validation characters share the rest.
"""

from collections import Counter
from dataclasses import asdict

from personas.records import Character, derive_seed, stable_id
from synth.llm import complete
from synth.quality import name_index
from synth.recipe import Recipe, parse_turns
from synth.records import Dialogue, Prompt, Task
from synth.rollout import Conversation, Sampling, rollout
from synth.runner import Stage, fingerprint

UNIT = 2**31  # derive_seed's range: derive_seed(...) / UNIT is a uniform draw in [0, 1)


def draw_turns(ranges: list[tuple[int, int, float]], seed: int, key: str) -> int:
    total, u = sum(w for _, _, w in ranges), derive_seed(seed, key, "turns") / UNIT
    for lo, hi, w in ranges:
        if u < w / total:
            return lo + derive_seed(seed, key, "turns-in-range") % (hi - lo + 1)
        u -= w / total
    return ranges[-1][1]


def deal(prompts: list[Prompt], characters: list[Character], k: int, seed: int):
    """(prompt, [k characters]) per prompt: deterministic and balanced."""
    if not characters:
        return
    k = min(k, len(characters))
    deferred: list[Character] = []

    def decks():
        round_ = 0
        while True:
            yield from sorted(characters, key=lambda c: (derive_seed(seed, c.id, f"deck-{round_}"), c.id))
            round_ += 1

    deck = decks()
    for prompt in sorted(prompts, key=lambda p: (derive_seed(seed, p.id, "deal"), p.id)):
        picked: list[Character] = []
        while len(picked) < k:
            # A character already given this prompt waits for the next prompt, so the counts stay level.
            c = next((d for d in deferred if d not in picked), None)
            if c is not None:
                deferred.remove(c)
            else:
                c = next(deck)
                if c in picked:
                    deferred.append(c)
                    continue
            picked.append(c)
        yield prompt, picked


def plan_tasks(
    recipe: Recipe, prompts: list[Prompt], characters: list[Character], counters: Counter | None = None
) -> list[Task]:
    """Every dialogue the run will build, ordered so each character's tasks are adjacent (prefix cache)."""
    cfg, seed, counters = recipe.dialogues, recipe.seed, counters if counters is not None else Counter()
    ranges = parse_turns(cfg.user_turns)  # a bad spec was refused when the recipe loaded (DialoguesConfig.check)
    heldout = [c for c in characters if c.split == "heldout"]
    trained = [c for c in characters if c.split in ("train", "validation")]
    by_pool = sorted(prompts, key=lambda p: (derive_seed(seed, p.id, "pool"), p.id))
    n_held = round(len(prompts) * recipe.split.heldout_prompts) if heldout else 0
    if heldout and recipe.split.heldout_prompts > 0 and len(prompts) >= 2:
        n_held = max(n_held, 1)
    # The user's character comes from the speaker's own split (a validation character must not appear in
    # training rows, not even as the user) and language (the dialogue has one language).
    same_split = {
        (c.split, c.language): [m for m in characters if (m.split, m.language) == (c.split, c.language)]
        for c in characters
    }
    tasks = []
    for pool_prompts, pool in ((by_pool[n_held:], trained), (by_pool[:n_held], heldout)):
        for mode in cfg.modes:
            # Each mode is dealt on its own, so R (only prompts with a reference) is balanced too.
            usable = [p for p in pool_prompts if mode == "G" or any(p.references)]
            counters["tasks_no_reference"] += (len(pool_prompts) - len(usable)) * min(
                cfg.characters_per_prompt, len(pool)
            )
            for prompt, picked in deal(usable, pool, cfg.characters_per_prompt, seed):
                for character in picked:
                    tid = stable_id("d", prompt.id, character.id, mode)
                    turns = len(prompt.turns)
                    if mode == "G" and derive_seed(seed, tid, "multi") / UNIT < cfg.multi_turn_share:
                        turns = max(turns, draw_turns(ranges, seed, tid))
                    user, mates = "", same_split[character.split, character.language]
                    if len(mates) > 1 and derive_seed(seed, tid, "user") / UNIT < cfg.user_persona_share:
                        i = derive_seed(seed, tid, "user-pick") % len(mates)
                        user = mates[(i + 1) % len(mates) if mates[i] is character else i].id
                    tasks.append(
                        Task(
                            id=tid,
                            prompt_id=prompt.id,
                            character_id=character.id,
                            mode=mode,
                            user_turns=turns,
                            user_character_id=user,
                            split=character.split,
                            action_cues=derive_seed(seed, tid, "cues") / UNIT < cfg.action_cues_share,
                        )
                    )
    rank = {c.id: i for i, c in enumerate(characters)}
    if cfg.order == "shuffled":
        return sorted(tasks, key=lambda t: (derive_seed(seed, t.id, "shuffle"), t.id))
    return sorted(tasks, key=lambda t: (rank[t.character_id], t.mode, t.id))


def names_of(characters: list[Character]) -> dict[str, str]:
    """name_key → full name, for full names and (Latin-script) first names: the wrong-character check's index."""
    return name_index(c.name for c in characters)


def dialogues_stage(recipe: Recipe, backend, cache, prompts: list[Prompt], characters: list[Character]) -> Stage:
    cfg = recipe.dialogues
    by_prompt, by_character = {p.id: p for p in prompts}, {c.id: c for c in characters}
    names = names_of(characters)
    sampling = Sampling(
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        repetition_penalty=cfg.repetition_penalty,
        max_tokens=cfg.max_tokens,
        max_reply_chars=cfg.max_reply_chars,
        max_user_chars=cfg.max_user_chars,
        max_attempts=cfg.max_attempts,
    )

    def process(chunk: list[Task], counters: Counter):
        conversations = [
            Conversation(
                task=t,
                prompt=by_prompt[t.prompt_id],
                character=by_character[t.character_id],
                user=by_character.get(t.user_character_id),
                other_names=names,
                recipe_seed=recipe.seed,
                model=recipe.backend.model,
                sampling=sampling,
            )
            for t in chunk
        ]
        rollout(conversations, lambda requests: complete(backend(), cache, requests, counters), counters)
        for c in conversations:
            if c.reject is None:
                # Token yield: output tokens that end in kept rows, against all output tokens (the report shows it).
                counters["kept_output_tokens"] += c.counts["accepted_tokens"]
            yield c.reject if c.reject is not None else c.dialogue()

    # Tasks carry only ids: the prompts' and characters' contents go into the fingerprint here.
    settings = {
        "dialogues": asdict(cfg),
        "model": recipe.backend.model,
        "kind": recipe.backend.kind,
        "seed": recipe.seed,
        "contents": fingerprint([*prompts, *characters], {}),
    }
    return Stage("dialogues", Dialogue, process, recipe.chunk_size, settings)
