"""Languages outside the supported set (en, zh, de, ru): detected as what they are, never taken for English; a
seed in one is a reject of the profiles stage before any request, unless profiles.language names a supported
language to write its character in; a recipe asking for another language is refused when it loads."""

import json

import pytest

from personas.errors import DramatisError
from personas.language import SUPPORTED, detect_language
from personas.profiles import EXAMPLES
from personas.records import Character, Persona, stable_id
from synth.cache import RequestCache
from synth.pipeline import profiles_stage
from synth.recipe import load_recipe
from synth.runner import load_records, run_stage
from synth.shards import read_shard
from tests.scripted_backend import Rule, ScriptedBackend, with_schema

ARABIC = "طبيبة متقاعدة من القاهرة تحب زراعة النعناع وتحكي قصص المستشفى القديمة"
JAPANESE = "京都で小さな茶屋を営む七十歳の女性。毎朝、店の前を掃除する。"
TEXTS = {
    "ar": ARABIC,
    "he": "מורה לשעבר מחיפה שאוהב לשחק שחמט בפארק",
    "el": "Ένας ψαράς από την Κρήτη που λατρεύει τις παλιές ιστορίες",
    "hi": "दिल्ली की एक सेवानिवृत्त शिक्षिका जो बागवानी करती हैं",
    "th": "ชาวประมงจากภูเก็ตที่ชอบเล่าเรื่องทะเล",
    "ja": JAPANESE,
}


@pytest.mark.parametrize("language", sorted(TEXTS))
def test_a_text_in_an_unsupported_script_is_not_taken_for_english(language):
    assert detect_language(TEXTS[language]) == language


@pytest.mark.parametrize("value", ["xx", "ja", "fr", "EN"])
def test_profiles_language_outside_the_supported_set_is_refused_naming_the_set(value):
    with pytest.raises(DramatisError) as exc:
        load_recipe("synth/recipes/demo.yaml", [f"profiles.language={value}"])
    assert str(exc.value).startswith(f"profiles.language={value}: use 'auto', 'en', 'zh', 'de' or 'ru'")


def persona(text: str, line: int) -> Persona:
    return Persona(
        id=stable_id("p", text), text=text, language=detect_language(text), source="seeds.jsonl", source_line=line
    )


def run_profiles(tmp_path, personas, language: str):
    recipe = load_recipe("synth/recipes/demo.yaml", [f"profiles.language={language}", "profiles.max_attempts=1"])
    backend = ScriptedBackend([Rule(with_schema, text=json.dumps(EXAMPLES[0][2]))])
    cache = RequestCache(tmp_path / "cache.sqlite")
    stage = profiles_stage(recipe.profiles, lambda: backend, cache, seed=0, chunk_size=8, model="m", kind="vllm")
    manifest = run_stage(stage, personas, tmp_path / "profiles", {})
    cache.close()
    rejects = [r for f in sorted((tmp_path / "profiles").glob("rejects-*.arrow")) for r in read_shard(f).to_pylist()]
    return manifest["counters"], load_records(tmp_path / "profiles", Character), rejects, backend


def test_an_arabic_seed_is_a_reject_before_any_request_and_an_english_one_beside_it_is_made(tmp_path):
    english = persona("A retired lighthouse keeper from Galway who loves the sea", 1)
    arabic = persona(ARABIC, 2)
    counters, characters, rejects, backend = run_profiles(tmp_path, [english, arabic], "auto")
    assert [c.persona_id for c in characters] == [english.id] and characters[0].language == "en"
    assert counters["dropped_unsupported_language"] == 1
    [reject] = rejects
    assert reject["id"] == arabic.id and reject["reason"] == "unsupported_language"
    assert reject["detail"].startswith("seeds.jsonl:2 is in 'ar'") and "profiles.language" in reject["detail"]
    assert json.loads(reject["record"])["text"] == ARABIC  # nothing dropped is lost
    assert all(ARABIC not in r.messages[-1]["content"] for r in backend.requests)  # no model time spent on it


def test_only_unsupported_seeds_in_a_chunk_never_open_the_backend(tmp_path):
    opened = []
    recipe = load_recipe("synth/recipes/demo.yaml")
    cache = RequestCache(tmp_path / "cache.sqlite")
    stage = profiles_stage(
        recipe.profiles, lambda: opened.append(1), cache, seed=0, chunk_size=8, model="m", kind="vllm"
    )
    manifest = run_stage(stage, [persona(ARABIC, 1), persona(JAPANESE, 2)], tmp_path / "profiles", {})
    cache.close()
    assert opened == [] and manifest["counters"]["dropped_unsupported_language"] == 2


def test_profiles_language_writes_an_unsupported_seed_as_a_character_of_that_language(tmp_path):
    counters, characters, rejects, backend = run_profiles(tmp_path, [persona(ARABIC, 1)], "en")
    assert rejects == [] and [c.language for c in characters] == ["en"] and len(backend.requests) == 1
    assert "en" in SUPPORTED and counters["kept"] == 1
