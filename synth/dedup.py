"""Near-duplicate detection with MinHash LSH (datasketch), Persona Hub's recipe: word 1-grams, 128
permutations, Jaccard threshold 0.9 (issue 4). The first occurrence of a group wins; every later member
is reported with the id it duplicates, so a drop can name what it repeats.
"""

import re

from datasketch import MinHash, MinHashLSH

WORD = re.compile(r"\w+", re.UNICODE)
HAN = re.compile(r"[\u4e00-\u9fff]")


def shingles(text: str, ngram: int = 1) -> list[bytes]:
    """Word n-grams of the casefolded text; Chinese has no spaces, so each Han character is a word."""
    words = []
    for token in WORD.findall(text.casefold()):
        words += list(token) if HAN.search(token) else [token]
    grams = {" ".join(words[i:i + ngram]) for i in range(max(len(words) - ngram + 1, 1))}
    return [g.encode("utf-8") for g in sorted(grams)]


def near_duplicates(ids: list[str], texts: list[str], *, threshold: float = 0.9, num_perm: int = 128,
                    ngram: int = 1, seed: int = 1) -> dict[str, str]:
    """id → the id of the earlier text it nearly repeats (estimated Jaccard ≥ threshold), for every later
    member of a near-duplicate group; ids absent from the result are kept."""
    hashes = MinHash.bulk((shingles(t, ngram) for t in texts), num_perm=num_perm, seed=seed)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    duplicate_of: dict[str, str] = {}
    kept: dict[str, tuple[int, MinHash]] = {}
    for index, (rid, minhash) in enumerate(zip(ids, hashes)):
        # LSH finds candidates; the MinHash estimate confirms, so a band collision alone drops nothing.
        # Candidates in input order: the earliest match is named, whatever order the index returns.
        for earlier in sorted(lsh.query(minhash), key=lambda k: kept[k][0]):
            if minhash.jaccard(kept[earlier][1]) >= threshold:
                duplicate_of[rid] = earlier
                break
        else:
            if rid in kept:
                raise ValueError(f"near_duplicates: id {rid!r} given twice")
            lsh.insert(rid, minhash)
            kept[rid] = (index, minhash)
    return duplicate_of
