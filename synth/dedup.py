"""Near-duplicate detection, Persona Hub's recipe (arXiv 2406.20094): MinHash LSH (datasketch) with word 1-grams, 128
permutations and Jaccard threshold 0.9, then MiniLM embeddings at cosine 0.9 for what rewording hides from
MinHash. The first occurrence of a group wins; every later member is reported with the id it duplicates, so a
drop can name what it repeats.
"""

import re
from collections import Counter
from itertools import chain

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH
from datasketch.hashfunc import sha1_hash32

from personas.embed import embed
from synth.recipe import DedupConfig

WORD = re.compile(r"\w+", re.UNICODE)
HAN = re.compile(r"[\u4e00-\u9fff]")


def words(text: str) -> list[str]:
    """The casefolded text's words; Chinese has no spaces, so each Han character is a word."""
    tokens = WORD.findall(text.casefold())
    if not HAN.search(text):
        return tokens
    return [w for token in tokens for w in (list(token) if HAN.search(token) else [token])]


def _grams(text: str, ngram: int) -> frozenset[str]:
    tokens = words(text)
    if ngram == 1 and tokens:
        return frozenset(tokens)
    return frozenset(" ".join(tokens[i : i + ngram]) for i in range(max(len(tokens) - ngram + 1, 1)))


def shingles(text: str, ngram: int = 1) -> list[bytes]:
    """Word n-grams of the casefolded text; Chinese has no spaces, so each Han character is a word."""
    return [g.encode("utf-8") for g in sorted(_grams(text, ngram))]


def _fmix32(h: np.ndarray) -> np.ndarray:
    # MurmurHash3's 32-bit finalizer, which datasketch 2.x ("affine32" scheme) applies to each input hash
    # before permuting it (datasketch.minhash._fmix); tests check the signatures against MinHash.bulk.
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def signatures(sets: list[frozenset[str]], num_perm: int = 128, seed: int = 1) -> np.ndarray:
    """MinHash hash values, one uint32 row per non-empty shingle set, equal to datasketch's
    `MinHash.bulk(..., num_perm=num_perm, seed=seed)` over the UTF-8 shingles. Vectorized because the per-set
    MinHash objects cost ~70 µs each even with cached hashes; each distinct shingle is hashed
    once (SHA-1, stable across processes) and each permutation is applied to all sets in one numpy pass."""
    if not sets:
        return np.zeros((0, num_perm), dtype=np.uint32)
    vocab = {g: i for i, g in enumerate(dict.fromkeys(chain.from_iterable(sets)))}
    hashes = np.fromiter((sha1_hash32(g.encode("utf-8")) for g in vocab), dtype=np.uint32, count=len(vocab))
    lengths = np.fromiter(map(len, sets), dtype=np.intp, count=len(sets))
    positions = np.fromiter(map(vocab.__getitem__, chain.from_iterable(sets)), dtype=np.intp, count=int(lengths.sum()))
    flat = _fmix32(hashes)[positions]
    starts = np.cumsum(lengths) - lengths
    a, b = MinHash(num_perm=num_perm, seed=seed).permutations
    values = np.empty((num_perm, len(sets)), dtype=np.uint32)
    permuted = np.empty_like(flat)
    for k in range(num_perm):  # a * h + b mod 2^32, then the minimum within each set
        np.multiply(flat, a[k], out=permuted)
        permuted += b[k]
        np.minimum.reduceat(permuted, starts, out=values[k])
    return values.T


def _check_ids(ids: list[str], texts: list[str], caller: str) -> None:
    if len(ids) != len(texts):
        raise ValueError(f"{caller}: {len(ids)} ids for {len(texts)} texts; give one id per text")
    if len(set(ids)) != len(ids):
        repeated = next(rid for rid, count in Counter(ids).items() if count > 1)
        raise ValueError(f"{caller}: id {repeated!r} given twice")


def near_duplicates(
    ids: list[str], texts: list[str], *, threshold: float = 0.9, num_perm: int = 128, ngram: int = 1, seed: int = 1
) -> dict[str, str]:
    """id → the id of the earlier text it nearly repeats (estimated Jaccard ≥ threshold), for every later
    member of a near-duplicate group; ids absent from the result are kept."""
    _check_ids(ids, texts, "near_duplicates")
    # Texts with one shingle set share one signature, so the first of them decides for all: a later one
    # repeats it if it was kept, or repeats what it repeats. Only distinct sets are hashed and queried.
    first: dict[frozenset[str], int] = {}
    first_of = [first.setdefault(_grams(t, ngram), i) for i, t in enumerate(texts)]
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept: dict[str, tuple[int, LeanMinHash]] = {}
    duplicate_of: dict[str, str] = {}
    for index, values in zip(first.values(), signatures(list(first), num_perm, seed), strict=False):
        minhash = LeanMinHash(seed=seed, hashvalues=values, scheme="affine32")
        # LSH finds candidates; the MinHash estimate confirms, so a band collision alone drops nothing.
        # Candidates in input order: the earliest match is named, whatever order the index returns.
        for earlier in sorted(lsh.query(minhash), key=lambda k: kept[k][0]):
            if minhash.jaccard(kept[earlier][1]) >= threshold:
                duplicate_of[ids[index]] = earlier
                break
        else:
            lsh.insert(ids[index], minhash, check_duplication=False)
            kept[ids[index]] = (index, minhash)
    result: dict[str, str] = {}
    for rid, f in zip(ids, first_of, strict=False):
        if rid in duplicate_of:
            result[rid] = duplicate_of[rid]
        elif rid != ids[f]:
            result[rid] = duplicate_of.get(ids[f], ids[f])
    return result


def semantic_duplicates(
    ids: list[str], texts: list[str], *, threshold: float = 0.9, block: int = 1024
) -> dict[str, str]:
    """id → the id of the earliest kept text whose MiniLM embedding has cosine ≥ threshold with it (Persona
    Hub's second pass, after MinHash); ids absent from the result are kept. Greedy in input order: `block`
    rows at a time are compared with every earlier kept row in one matrix product, then with each other."""
    _check_ids(ids, texts, "semantic_duplicates")
    vectors = embed(list(texts))
    kept = np.empty_like(vectors)  # kept rows in input order, so the first hit is the earliest
    kept_ids: list[str] = []
    duplicate_of: dict[str, str] = {}
    for lo in range(0, len(texts), block):
        rows = vectors[lo : lo + block]
        earlier = rows @ kept[: len(kept_ids)].T >= threshold
        among = rows @ rows.T >= threshold
        new: list[int] = []  # rows of this block kept so far
        for j in range(len(rows)):
            hit = np.flatnonzero(earlier[j])
            if hit.size:
                duplicate_of[ids[lo + j]] = kept_ids[hit[0]]
            elif new and (hit := np.flatnonzero(among[j, new])).size:
                duplicate_of[ids[lo + j]] = ids[lo + new[hit[0]]]
            else:
                new.append(j)
        kept[len(kept_ids) : len(kept_ids) + len(new)] = rows[new]
        kept_ids += [ids[lo + j] for j in new]
    return duplicate_of


def find_similar(
    ids: list[str], texts: list[str], languages: list[str], cfg: DedupConfig, what: str = ""
) -> dict[str, tuple[str, str]]:
    """id → (reason, id of the earlier text it repeats), for texts already free of exact copies: MinHash
    near-duplicates, then (optional, English only: MiniLM is unreliable on other languages) embeddings."""
    near = near_duplicates(ids, texts, threshold=cfg.threshold, num_perm=cfg.num_perm, ngram=cfg.ngram)
    found = {i: (f"near_duplicate{what}", j) for i, j in near.items()}
    if cfg.semantic:
        english = [k for k, i in enumerate(ids) if i not in near and languages[k] == "en"]
        similar = semantic_duplicates(
            [ids[k] for k in english], [texts[k] for k in english], threshold=cfg.semantic_threshold
        )
        found.update({i: (f"semantic_duplicate{what}", j) for i, j in similar.items()})
    return found
