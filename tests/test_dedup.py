"""MinHash LSH near-duplicates on the real Persona Hub seeds: planted copies found, distinct personas kept."""

import json

import pytest

from synth.dedup import near_duplicates, shingles
from tests.conftest import SEEDS_5K


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
