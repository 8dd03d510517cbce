"""Seed loading (personas/seeds.py) and the seeds stage run through the stage runner: no LLM involved."""

import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from personas.errors import DramatisError
from personas.records import Persona
from personas.seeds import load_seeds, normalize
from synth.pipeline import seeds_stage
from synth.recipe import as_dict, load_recipe
from synth.runner import Reject, load_records, run_stage, shard_paths
from synth.shards import read_shard
from tests.helpers import SEEDS_5K

HAN = re.compile(r"[\u4e00-\u9fff]")
CLEAN = [
    "A retired sailor who restores wooden boats in Maine.",
    "Eine Lehrerin, die in Leipzig Mathematik an einer Gesamtschule unterrichtet.",
    "一位在成都开了二十年火锅店的老板，喜欢川剧。",
    "Une boulangère qui se lève à trois heures pour le pain du village.",
]


def jsonl(rows: list) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def summary(personas: list[Persona]) -> list[tuple]:
    """What a persona is, regardless of where in the file it sat."""
    return [(p.id, p.text, p.language) for p in personas]


def assert_error(exc: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(exc.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# --- the real Persona Hub sample --------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub_personas() -> list[Persona]:
    return load_seeds(str(SEEDS_5K))


def test_real_seed_file_loads_all_5000_personas_with_stable_ids_and_source_lines(hub_personas):
    lines = SEEDS_5K.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5000 and len(hub_personas) == 5000
    assert [p.source_line for p in hub_personas] == list(range(1, 5001))
    for p in hub_personas:
        assert re.fullmatch(r"p-[0-9a-f]{16}", p.id)
        assert p.source == str(SEEDS_5K)
        assert p.text == normalize(json.loads(lines[p.source_line - 1])["persona"])
    assert len({p.id for p in hub_personas}) == 5000
    # Ids are content-derived: loading again gives the same ones.
    assert [p.id for p in load_seeds(str(SEEDS_5K))] == [p.id for p in hub_personas]


def test_real_seed_file_detects_its_92_chinese_rows_as_zh(hub_personas):
    chinese = [p for p in hub_personas if HAN.search(p.text)]
    zh = [p for p in hub_personas if p.language == "zh"]
    assert len(chinese) == 92
    assert zh == chinese
    assert Counter(p.language for p in hub_personas)["en"] > 4500


def test_real_seed_file_texts_are_normalized(hub_personas):
    for p in hub_personas:
        assert p.text and p.text == p.text.strip()
        assert "  " not in p.text and "\n" not in p.text and "\t" not in p.text and "\r" not in p.text


def test_normalize_collapses_whitespace_composes_unicode_and_keeps_fullwidth_punctuation():
    assert normalize("  A\tsailor \n who  sails.\r\n") == "A sailor who sails."
    assert normalize("Cafe\u0301 owner") == "Caf\u00e9 owner"
    assert normalize("一位老师，喜欢（诗歌）。") == "一位老师，喜欢（诗歌）。"


# --- the built-in set -------------------------------------------------------------------------------


def test_builtin_set_has_at_least_100_unique_personas_in_at_least_4_languages():
    personas = load_seeds("builtin")
    assert len(personas) >= 100
    assert len({p.language for p in personas}) >= 4
    assert len({p.id for p in personas}) == len(personas)
    assert len({p.text for p in personas}) == len(personas)
    assert all(p.source == "builtin" and p.text for p in personas)


# --- formats ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["bom", "crlf", "blank_lines", "all_three"])
def test_bom_crlf_and_blank_lines_give_the_same_personas_as_the_clean_file(tmp_path, variant):
    clean = load_seeds(str(write(tmp_path / "clean.jsonl", jsonl([{"persona": t} for t in CLEAN]))))
    lines = [json.dumps({"persona": t}, ensure_ascii=False) for t in CLEAN]
    physical = [1, 2, 3, 4]
    if variant in ("blank_lines", "all_three"):
        lines = ["", lines[0], "   ", lines[1], lines[2], "", "", lines[3], ""]
        physical = [2, 4, 5, 8]
    newline = "\r\n" if variant in ("crlf", "all_three") else "\n"
    data = newline.join(lines).encode("utf-8")
    if variant in ("bom", "all_three"):
        data = b"\xef\xbb\xbf" + data
    loaded = load_seeds(str(write(tmp_path / "messy.jsonl", data)))
    assert summary(loaded) == summary(clean)
    assert [p.source_line for p in loaded] == physical
    assert all("\ufeff" not in p.text and "\r" not in p.text for p in loaded)


def test_csv_with_a_persona_column_loads_quoted_fields_and_reports_file_lines(tmp_path):
    content = (
        "\ufeffid,persona,age\r\n"
        '1,"A chef, who bakes bread at dawn",40\r\n'
        "\r\n"
        '2,"Eine Ärztin, die in Wien arbeitet",35\r\n'
    )
    personas = load_seeds(str(write(tmp_path / "seeds.csv", content)))
    assert [p.text for p in personas] == ["A chef, who bakes bread at dawn", "Eine Ärztin, die in Wien arbeitet"]
    assert [p.source_line for p in personas] == [2, 4]
    assert [p.language for p in personas] == ["en", "de"]


def test_txt_file_is_one_persona_per_line(tmp_path):
    content = "\n".join([CLEAN[0], "", "  " + CLEAN[2] + "  ", CLEAN[3]]) + "\n"
    personas = load_seeds(str(write(tmp_path / "seeds.txt", content)))
    assert [p.text for p in personas] == [CLEAN[0], CLEAN[2], CLEAN[3]]
    assert [p.source_line for p in personas] == [1, 3, 4]
    assert [p.language for p in personas] == ["en", "zh", "fr"]


def test_seeds_field_reads_another_jsonl_key(tmp_path):
    path = write(tmp_path / "seeds.jsonl", jsonl([{"id": i, "description": t} for i, t in enumerate(CLEAN)]))
    recipe = load_recipe(None, [f"seeds.source={path}", "seeds.field=description"])
    personas = load_seeds(recipe.seeds.source, recipe.seeds.field)
    assert [p.text for p in personas] == CLEAN
    with pytest.raises(DramatisError) as exc:
        load_seeds(str(path))
    assert_error(exc, f"{path}:1", "no 'persona' field", "id, description", "seeds.field=")


# --- bad input: DramatisError naming the file and line ----------------------------------------------


def test_non_utf8_byte_is_reported_with_file_and_line(tmp_path):
    good = jsonl([{"persona": CLEAN[0]}, {"persona": CLEAN[1]}]).encode("utf-8")
    path = write(tmp_path / "seeds.jsonl", good + b'{"persona": "A caf\xff owner"}\n')
    with pytest.raises(DramatisError) as exc:
        load_seeds(str(path))
    assert_error(exc, f"{path}:3", "UTF-8", "0xff")


def test_line_that_is_not_json_is_reported_with_file_and_physical_line(tmp_path):
    path = write(tmp_path / "seeds.jsonl", jsonl([{"persona": CLEAN[0]}]) + "\n" + '{"persona": "unterminated\n')
    with pytest.raises(DramatisError) as exc:
        load_seeds(str(path))
    assert_error(exc, f"{path}:3", "not valid JSON")


def test_line_without_the_field_lists_the_keys_found_and_suggests_seeds_field(tmp_path):
    path = write(tmp_path / "seeds.jsonl", jsonl([{"persona": CLEAN[0]}, {"text": CLEAN[1], "lang": "de"}]))
    with pytest.raises(DramatisError) as exc:
        load_seeds(str(path))
    assert_error(exc, f"{path}:2", "'persona'", "text, lang", "seeds.field=")


@pytest.mark.parametrize(
    "value, type_name", [(42, "int"), (["a", "b"], "list"), (None, "NoneType"), ({"x": 1}, "dict")]
)
def test_persona_value_that_is_not_a_string_is_reported(tmp_path, value, type_name):
    path = write(tmp_path / "seeds.jsonl", jsonl([{"persona": CLEAN[0]}, {"persona": value}]))
    with pytest.raises(DramatisError) as exc:
        load_seeds(str(path))
    assert_error(exc, f"{path}:2", "'persona'", type_name, "not text")


def test_missing_seed_file_is_reported(tmp_path):
    path = tmp_path / "nowhere.jsonl"
    with pytest.raises(DramatisError) as exc:
        load_seeds(str(path))
    assert_error(exc, str(path), "not found")


@pytest.mark.parametrize(
    "content", [b"", b"\n\n   \n", b"\xef\xbb\xbf\r\n\r\n"], ids=["empty", "blank_lines", "bom_and_crlf_only"]
)
@pytest.mark.parametrize("suffix", [".jsonl", ".txt", ".csv"])
def test_empty_or_blank_seed_file_is_reported(tmp_path, content, suffix):
    path = write(tmp_path / f"seeds{suffix}", content)
    with pytest.raises(DramatisError) as exc:
        load_seeds(str(path))
    assert_error(exc, str(path), "no personas found")


@pytest.mark.parametrize("name", ["seeds.parquet", "seeds.tsv", "seeds"])
def test_unknown_seed_extension_is_reported(tmp_path, name):
    path = write(tmp_path / name, jsonl([{"persona": CLEAN[0]}]))
    with pytest.raises(DramatisError) as exc:
        load_seeds(str(path))
    assert_error(exc, str(path), "unknown seed format", ".jsonl", ".csv", ".txt")


def test_csv_without_the_column_names_the_header_line_and_the_columns_found(tmp_path):
    path = write(tmp_path / "seeds.csv", "\nname,description\nBob,A chef who bakes bread\n")
    with pytest.raises(DramatisError) as exc:
        load_seeds(str(path))
    assert_error(exc, f"{path}:2", "'persona'", "name, description", "seeds.field=")


# --- the seeds stage through the runner -------------------------------------------------------------


def run_seeds(folder: Path, personas: list[Persona], *overrides: str) -> tuple[dict, list[Persona], list[Reject]]:
    recipe = load_recipe(None, list(overrides))
    manifest = run_stage(seeds_stage(recipe, personas), personas, folder, as_dict(recipe))
    kept = load_records(folder, Persona)
    rejects = [
        Reject.model_validate(row)
        for path in shard_paths(folder, rejects=True)
        for row in read_shard(path).to_pylist()
    ]
    return manifest, kept, rejects


def assert_counters_add_up(manifest: dict) -> None:
    for counters, inputs in [(manifest["counters"], manifest["inputs"])] + [
        (c["counters"], c["inputs"]) for c in manifest["chunks"]
    ]:
        accounted = counters.get("kept", 0) + counters.get("not_sampled", 0)
        accounted += sum(v for k, v in counters.items() if k.startswith("dropped_"))
        assert accounted == inputs, counters
    assert manifest["complete"]


def test_seeds_stage_rejects_exact_duplicates_after_normalization_naming_both_lines(tmp_path):
    texts = [CLEAN[0], CLEAN[1], "  " + CLEAN[0].replace(" ", "   ") + "\t", CLEAN[2], CLEAN[1]]
    path = write(tmp_path / "seeds.jsonl", jsonl([{"persona": t} for t in texts]))
    personas = load_seeds(str(path))
    manifest, kept, rejects = run_seeds(tmp_path / "seeds", personas, "chunk_size=2")
    assert [(p.text, p.source_line) for p in kept] == [(CLEAN[0], 1), (CLEAN[1], 2), (CLEAN[2], 4)]
    assert [r.reason for r in rejects] == ["duplicate", "duplicate"]
    first = {p.source_line: p for p in personas}
    for reject, (line, original) in zip(rejects, [(3, 1), (5, 2)], strict=False):
        assert reject.stage == "seeds"
        assert reject.id == reject.duplicate_of == first[original].id
        assert f"{path}:{line}" in reject.detail and f"line {original}" in reject.detail
        assert Persona.model_validate_json(reject.record).source_line == line
    assert manifest["counters"] == {"kept": 3, "dropped_duplicate": 2}
    assert_counters_add_up(manifest)


def test_seeds_stage_rejects_empty_personas_with_reason_empty(tmp_path):
    path = write(
        tmp_path / "seeds.jsonl",
        jsonl([{"persona": CLEAN[0]}, {"persona": ""}, {"persona": " \t "}, {"persona": CLEAN[3]}]),
    )
    manifest, kept, rejects = run_seeds(tmp_path / "seeds", load_seeds(str(path)))
    assert [p.source_line for p in kept] == [1, 4]
    assert [r.reason for r in rejects] == ["empty", "empty"]
    assert [r.detail for r in rejects] == [f"{path}:2", f"{path}:3"]
    assert manifest["counters"] == {"kept": 2, "dropped_empty": 2}
    assert_counters_add_up(manifest)


def test_seeds_sample_keeps_exactly_n_the_same_n_for_the_same_seed_and_others_for_another_seed(tmp_path):
    personas = load_seeds("builtin")
    runs = {}
    for name, seed, chunk in [("a", 7, 2048), ("b", 7, 13), ("c", 8, 2048)]:
        manifest, kept, rejects = run_seeds(
            tmp_path / name, personas, "seeds.sample=10", f"seed={seed}", f"chunk_size={chunk}"
        )
        assert len(kept) == 10 and not rejects
        assert manifest["counters"] == {"kept": 10, "not_sampled": len(personas) - 10}
        assert_counters_add_up(manifest)
        assert [p.source_line for p in kept] == sorted(p.source_line for p in kept)  # file order, not sample order
        runs[name] = [p.id for p in kept]
    assert runs["a"] == runs["b"]  # the sample depends on the recipe seed, not on chunking
    assert set(runs["a"]) != set(runs["c"])


@pytest.mark.parametrize("seed", range(6))
def test_seeds_sample_never_spends_a_slot_on_an_empty_or_duplicate_persona(tmp_path, seed):
    unique = [p.text for p in load_seeds("builtin")[:12]]
    rows = unique[:4] + [""] + unique[4:] + [unique[2], "  ", unique[9]]
    path = write(tmp_path / "seeds.jsonl", jsonl([{"persona": t} for t in rows]))
    manifest, kept, rejects = run_seeds(
        tmp_path / "seeds", load_seeds(str(path)), f"seeds.sample={len(unique)}", f"seed={seed}", "chunk_size=5"
    )
    assert [p.text for p in kept] == unique
    assert Counter(r.reason for r in rejects) == {"empty": 2, "duplicate": 2}
    assert_counters_add_up(manifest)


def test_seeds_stage_counters_add_up_with_duplicates_empties_and_sampling_across_chunks(tmp_path):
    texts = [t for _, t in zip(range(30), (p.text for p in load_seeds("builtin")), strict=False)]
    rows = texts + ["", texts[0], texts[29], "   ", texts[15]]
    path = write(tmp_path / "seeds.jsonl", jsonl([{"persona": t} for t in rows]))
    manifest, kept, rejects = run_seeds(tmp_path / "seeds", load_seeds(str(path)), "seeds.sample=12", "chunk_size=4")
    assert len(manifest["chunks"]) == 9 and manifest["inputs"] == len(rows)
    assert manifest["counters"] == {"kept": 12, "not_sampled": 18, "dropped_empty": 2, "dropped_duplicate": 3}
    assert len(kept) == 12 and len(rejects) == 5
    assert_counters_add_up(manifest)


def test_real_1000_row_sample_in_chunks_of_300_reads_unchanged_with_datasets(tmp_path, hub_personas):
    import datasets

    sample = random.Random(0).sample(hub_personas, 1000)
    folder = tmp_path / "seeds"
    manifest, kept, rejects = run_seeds(folder, sample, "chunk_size=300")
    assert [c["rows"] for c in manifest["chunks"]] == [300, 300, 300, 100]
    files = sorted(folder.glob("*.arrow"))
    assert [f.name for f in files] == [f"data-0000{i}.arrow" for i in range(4)]
    assert not rejects and manifest["counters"] == {"kept": 1000}
    expected = [p.model_dump() for p in kept]
    assert expected == [p.model_dump() for p in sample]

    from_file = [row for f in files for row in datasets.Dataset.from_file(str(f)).to_list()]
    assert from_file == expected
    loaded = datasets.load_dataset(
        "arrow", data_files=[str(f) for f in files], split="train", cache_dir=str(tmp_path / "hf")
    )
    assert loaded.column_names == list(Persona.model_fields)
    assert loaded.to_list() == expected
