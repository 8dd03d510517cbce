"""The character split (train / validation / heldout, by character, before any dialogue exists) and the
leakage check that keeps held-out and evaluation characters out of the training splits.

Generalization to unseen characters is the product's claim (as in OpenCharacter, arXiv 2501.15427): it only holds if
no training character is a held-out one under another id — same name with a similar profile, or a
profile (or seed persona) whose MiniLM embedding is within cosine 0.9 of one.
"""

from dataclasses import dataclass

import numpy as np

from personas.errors import DramatisError
from personas.records import Character, Persona, derive_seed, name_key

SPLITS = ("train", "validation", "heldout")
LEAK_REASONS = ("heldout_same_name", "heldout_near_duplicate", "eval_near_duplicate")


def assign_splits(characters: list[Character], seed: int, fractions: dict[str, float]) -> dict[str, str]:
    """character id → split. Deterministic in (seed, id); every split with a positive share gets at least one
    character once there are enough to go round, so a small demo still has validation and held-out rows."""
    unknown = set(fractions) - set(SPLITS)
    if unknown:
        raise DramatisError(f"split: unknown split name(s) {sorted(unknown)}; use {', '.join(SPLITS)}")
    total = sum(fractions.values())
    if total <= 0 or any(v < 0 for v in fractions.values()):
        raise DramatisError(f"split fractions must be ≥ 0 and not all 0, got {fractions}")
    order = sorted((c.id for c in characters), key=lambda cid: (derive_seed(seed, cid, "split"), cid))
    n, counts = len(order), {}
    for name in ("heldout", "validation"):
        share = fractions.get(name, 0) / total
        counts[name] = max(round(n * share), 1 if share > 0 and n >= len(SPLITS) else 0)
    assigned, start = {}, 0
    for name in ("heldout", "validation"):
        for cid in order[start : start + counts[name]]:
            assigned[cid] = name
        start += counts[name]
    for cid in order[start:]:
        assigned[cid] = "train"
    return assigned


def profile_text(c: Character) -> str:
    # No name: it dominates MiniLM's embedding, so a copied profile under a new name scored ~0.75. Names
    # have their own rule (same name + similar profile).
    return f"{c.age}, {c.gender}, {c.born_place}. {c.experience} {c.personality}"


@dataclass
class Leak:
    character_id: str
    reason: str  # heldout_same_name | heldout_near_duplicate | eval_near_duplicate
    duplicate_of: str
    detail: str


def find_leaks(
    train: list[Character],
    heldout: list[Character],
    eval_personas: list[Persona],
    *,
    threshold: float = 0.9,
    same_name_threshold: float = 0.5,
) -> list[Leak]:
    """Training characters that are held-out or evaluation characters in disguise, one `Leak` each."""
    from personas.embed import embed

    if not train or not (heldout or eval_personas):
        return []
    t_persona, t_profile = embed([c.persona for c in train]), embed([profile_text(c) for c in train])
    # MiniLM is an English model: unrelated Chinese seeds scored 0.91 and any two Thai ones 1.0. Its
    # similarity only decides for English texts; other languages rely on the same-name rule.
    t_en = np.array([c.language == "en" for c in train])
    leaks: dict[str, Leak] = {}
    if heldout:
        h_persona, h_profile = embed([c.persona for c in heldout]), embed([profile_text(c) for c in heldout])
        persona_sim, profile_sim = t_persona @ h_persona.T, t_profile @ h_profile.T
        h_en = np.array([c.language == "en" for c in heldout])
        names = {}
        for j, h in enumerate(heldout):
            names.setdefault(name_key(h.name), []).append(j)
        for i, c in enumerate(train):
            for j in names.get(name_key(c.name), []):
                if profile_sim[i, j] >= same_name_threshold:
                    leaks[c.id] = Leak(
                        c.id,
                        "heldout_same_name",
                        heldout[j].id,
                        f"same name '{c.name}', profile similarity {profile_sim[i, j]:.2f}",
                    )
            best = np.where(h_en & t_en[i], np.maximum(persona_sim[i], profile_sim[i]), -1.0)
            j = int(best.argmax())
            if c.id not in leaks and best[j] >= threshold:
                leaks[c.id] = Leak(
                    c.id, "heldout_near_duplicate", heldout[j].id, f"similarity {best[j]:.3f} to '{heldout[j].name}'"
                )
    if eval_personas:
        e = embed([p.text for p in eval_personas])
        e_en = np.array([p.language == "en" for p in eval_personas])
        best_sim = np.where(t_en[:, None] & e_en[None, :], np.maximum(t_persona @ e.T, t_profile @ e.T), -1.0)
        for i, c in enumerate(train):
            j = int(best_sim[i].argmax())
            if c.id not in leaks and best_sim[i, j] >= threshold:
                p = eval_personas[j]
                leaks[c.id] = Leak(
                    c.id,
                    "eval_near_duplicate",
                    f"{p.source}:{p.source_line}",
                    f"similarity {best_sim[i, j]:.3f} to eval persona '{p.text[:80]}'",
                )
    return [leaks[c.id] for c in train if c.id in leaks]
