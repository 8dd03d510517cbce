"""MinHash LSH and MiniLM near-duplicates on the real Persona Hub seeds: planted copies and paraphrases found,
distinct personas kept."""

import json

import pytest
from datasketch import MinHash

from synth.dedup import _grams, near_duplicates, semantic_duplicates, shingles, signatures
from tests.helpers import SEEDS_5K


@pytest.fixture(scope="module")
def seeds() -> list[str]:
    return [json.loads(line)["persona"] for line in SEEDS_5K.read_text(encoding="utf-8").splitlines()]


def test_planted_near_copies_are_found_and_name_the_first_occurrence(seeds):
    ids = [f"s{i}" for i in range(len(seeds))]
    original = max(seeds[:100], key=lambda t: len(t.split()))  # a long persona: one changed word is a small change
    index = seeds.index(original)
    words = original.split()
    one_word_changed = " ".join(words[:3] + ["very"] + words[4:])
    planted = {"copy": original, "recased": original.upper(), "one_word": one_word_changed}
    found = near_duplicates(ids + list(planted), seeds + list(planted.values()))
    assert {k: found[k] for k in planted} == {k: f"s{index}" for k in planted}
    # None of the 5,000 real personas is a near-copy of another at Persona Hub's 0.9.
    assert set(found) == set(planted)


def test_a_lower_threshold_groups_paraphrases_that_0_9_keeps_apart():
    a = "A retired lighthouse keeper who collects shipwreck stories from the west coast of Ireland"
    b = "A retired lighthouse keeper who collects old shipwreck stories along the west coast of Ireland"
    assert near_duplicates(["a", "b"], [a, b]) == {}
    assert near_duplicates(["a", "b"], [a, b], threshold=0.6) == {"b": "a"}


def test_chinese_is_shingled_by_character():
    assert shingles("成都茶馆") == [c.encode() for c in sorted("成都茶馆")]
    a, b = "一位在成都开了三十年茶馆的退休老板娘", "一位在成都开了三十年茶馆的退休老板娘。"
    assert near_duplicates(["a", "b", "c"], [a, b, "一位研究深海鱼类的年轻海洋生物学家"]) == {"b": "a"}


def test_result_does_not_depend_on_the_run_and_ids_must_be_unique(seeds):
    ids = [f"s{i}" for i in range(500)] + ["dup"]
    texts = seeds[:500] + [seeds[7]]
    assert near_duplicates(ids, texts) == near_duplicates(ids, texts) == {"dup": "s7"}
    with pytest.raises(ValueError, match="given twice"):
        near_duplicates(["a", "a"], ["one text", "another text"])


def test_signatures_equal_datasketch_minhash_bulk(seeds):
    texts = seeds[:300] + ["一位在成都开了三十年茶馆的退休老板娘", "", "!!!"]
    for num_perm, seed in [(128, 1), (64, 7)]:
        expected = MinHash.bulk([shingles(t) for t in texts], num_perm=num_perm, seed=seed)
        got = signatures([_grams(t, 1) for t in texts], num_perm, seed)
        assert got.shape == (len(texts), num_perm)
        assert all((m.hashvalues == row).all() for m, row in zip(expected, got, strict=False))


def test_a_later_copy_of_a_duplicate_names_the_kept_original(seeds):
    # Repeated shingle sets are decided once, by their first occurrence; the answer must still be the kept text.
    original = max(seeds[:100], key=lambda t: len(t.split()))
    words = original.split()
    changed = " ".join(words[:3] + ["very"] + words[4:])
    ids = ["orig", "changed", "other", "changed_again", "orig_again", "other_again"]
    texts = [original, changed, seeds[0], changed.upper(), original + "!", seeds[0]]
    assert near_duplicates(ids, texts) == {
        "changed": "orig",
        "changed_again": "orig",
        "orig_again": "orig",
        "other_again": "other",
    }
    with pytest.raises(ValueError, match="one id per text"):
        near_duplicates(["a"], ["one text", "another text"])


# A real seed (index 1) reworded: word Jaccard 0.68, so MinHash at 0.9 keeps it; MiniLM cosine 0.96.
PARAPHRASE = (
    "A sports reporter who interviewed Michael Jordan several times and knows insider stories about his career"
)


def test_semantic_dedup_finds_a_planted_paraphrase_among_1000_real_seeds_and_nothing_else(seeds):
    assert seeds[1].startswith("A sports journalist who has interviewed Michael Jordan")
    ids = [f"s{i}" for i in range(1000)] + ["paraphrase"]
    texts = seeds[:1000] + [PARAPHRASE]
    assert near_duplicates(ids, texts) == {}
    # Seen: the closest two of these 1,000 real seeds have cosine 0.75 (Hong Kong film fans, in Chinese;
    # power-plant engineers), so at Persona Hub's 0.9 the only pair is the planted one.
    assert semantic_duplicates(ids, texts) == {"paraphrase": "s1"}


def test_semantic_dedup_keeps_distinct_personas_apart_and_is_deterministic(seeds):
    # Seeds 325 and 418: two power-plant engineers, the second-closest real pair seen (cosine 0.74).
    ids, texts = ["a", "b", "c", "d"], [seeds[325], seeds[418], PARAPHRASE, seeds[1]]
    assert semantic_duplicates(ids, texts) == semantic_duplicates(ids, texts) == {"d": "c"}
    assert semantic_duplicates(ids, texts, threshold=0.7) == {"b": "a", "d": "c"}
    # The greedy pass names the earliest kept text, across and within blocks alike.
    assert semantic_duplicates(ids, texts, block=1) == semantic_duplicates(ids, texts, block=3) == {"d": "c"}
    assert semantic_duplicates([], []) == {}
    with pytest.raises(ValueError, match="given twice"):
        semantic_duplicates(["a", "a"], ["one text", "another text"])
