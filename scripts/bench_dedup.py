"""Benchmark 5 of `make bench`: MinHash LSH dedup over 200,000 rows made from real seeds, against the truth.

.venv/bin/python scripts/bench.py only=dedup [dedup_rows=200000]
"""

import json
import math
import random
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

# Edits planted into copies of real seeds, with weights. The first four change no word (the shingles
# casefold and drop punctuation); one changed or dropped word lands near Persona Hub's 0.9 (over it with
# ≥ 19 or ≥ 10 distinct words); a rewrite of a third of the words makes a different persona.
DEDUP_EDITS = {
    "copy": 15,
    "case": 15,
    "punctuation": 15,
    "whitespace": 10,
    "one_word": 15,
    "drop_word": 10,
    "rewrite": 20,
}


def planted_personas(rows: int, seeds: list[str]) -> tuple[list[str], list[int]]:
    """`rows` texts, each a random real seed with a random edit, and the seed index each came from."""
    rng = random.Random(0)
    vocab = sorted({w for s in seeds for w in re.findall(r"[A-Za-z]+", s)})
    texts, sources = [], []
    for _ in range(rows):
        source = rng.randrange(len(seeds))
        text, words = seeds[source], seeds[source].split()
        edit = rng.choices(list(DEDUP_EDITS), list(DEDUP_EDITS.values()))[0]
        if edit == "case":
            text = rng.choice([str.upper, str.lower, str.title])(text)
        elif edit == "punctuation":
            text = rng.choice([text + "!", text.rstrip("."), text.replace(" ", ", ", 1), text.replace(",", "")])
        elif edit == "whitespace":
            text = "  " + text.replace(" ", "  ") + " \n"
        elif edit == "one_word":
            words[rng.randrange(len(words))] = rng.choice(vocab)
            text = " ".join(words)
        elif edit == "drop_word" and len(words) > 1:
            del words[rng.randrange(len(words))]
            text = " ".join(words)
        elif edit == "rewrite":
            for _ in range(max(2, len(words) // 3)):
                words[rng.randrange(len(words))] = rng.choice(vocab)
            text = " ".join(words)
        texts.append(text)
        sources.append(source)
    return texts, sources


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b)


def bench_dedup(rows: int = 200_000, threshold: float = 0.9) -> dict:
    from synth.dedup import near_duplicates, shingles

    seeds_file = Path("../shared/data/seeds/personahub_tool_5k.jsonl")
    seeds = [json.loads(line)["persona"] for line in seeds_file.read_text(encoding="utf-8").splitlines()]
    texts, sources = planted_personas(rows, seeds)
    ids = [f"r{i}" for i in range(rows)]
    began = time.perf_counter()
    found = near_duplicates(ids, texts, threshold=threshold)
    seconds = time.perf_counter() - began

    sets = [frozenset(shingles(t)) for t in texts]
    truth = exact_near_duplicates(sets, threshold)
    index = {rid: i for i, rid in enumerate(ids)}
    dropped, planted = {index[rid] for rid in found}, set(truth)
    copies = {i for i, j in truth.items() if sets[i] == sets[j]}
    # A false positive: a dropped row whose named original is in truth below the threshold (MinHash misjudged it).
    named = [jaccard(sets[i], sets[index[found[ids[i]]]]) for i in dropped]
    false = [j for j in named if j < threshold]
    return {
        "rows": rows,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "distinct_shingle_sets": len(set(sets)),
        "threshold": threshold,
        "planted": len(planted),
        "dropped": len(dropped),
        "recall": len(dropped & planted) / len(planted),
        "recall_exact_copies": len(dropped & copies) / len(copies),
        "false_positives": len(false),
        "false_positive_jaccard": [min(false, default=1.0), max(false, default=1.0)],
        "precision": 1 - len(false) / max(len(dropped), 1),
    }


def exact_near_duplicates(sets: list[frozenset], threshold: float) -> dict[int, int]:
    """The truth for bench_dedup: near_duplicates' greedy pass (earliest kept set wins) on the true Jaccard.
    Candidates come from prefix filtering (AllPairs, Bayardo et al. 2007): with the words ordered rarest first,
    two sets with Jaccard ≥ t share a word among their first |set| - ceil(t·|set|) + 1, so none is missed."""
    frequency = Counter(w for s in sets for w in s)
    postings: dict[bytes, list[int]] = defaultdict(list)  # word → kept sets with it in their prefix
    decided: dict[frozenset, int] = {}  # one shingle set, one verdict: that of its first occurrence
    truth: dict[int, int] = {}
    for i, words in enumerate(sets):
        if words not in decided:
            # The 1e-9: 0.9 * 10 is 9.000000000000002 in floats, and a prefix one word short would miss pairs.
            overlap = math.ceil(threshold * len(words) - 1e-9)
            prefix = sorted(words, key=lambda w: (frequency[w], w))[: len(words) - overlap + 1]
            candidates = sorted({j for w in prefix for j in postings[w]})
            decided[words] = next((j for j in candidates if jaccard(words, sets[j]) >= threshold), i)
            if decided[words] == i:
                for w in prefix:
                    postings[w].append(i)
        if decided[words] != i:
            truth[i] = decided[words]
    return truth
