"""Publishing: the dry-run folder loads with `datasets`, its card parses with huggingface_hub, the token is
never written, builds are byte-identical, and nothing here contacts the Hub (HF_HUB_OFFLINE=1; uploads are faked)."""

import hashlib
import json
import shutil
from pathlib import Path

import datasets
import pytest
import yaml
from huggingface_hub import DatasetCard, HfApi, constants

from personas.errors import DramatisError
from personas.records import Character
from synth import publish as pub
from synth.records import Dialogue, Message
from synth.runner import load_records
from synth.shards import arrow_schema, write_shard
from tests.helpers import SEEDS_5K, SHARED

SECRET = "hf_PLANTEDsecretTOKEN0123456789abcdefXYZ"
SPLIT_OF = ["train", "train", "validation", "train", "heldout", "train"]


def hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def fake_run(root: Path, source: str = str(SEEDS_5K), publish: dict | None = None) -> Path:
    """A finished run as the pipeline leaves it, from real Persona Hub seeds, without an engine: split stage in two
    shards, dialogues in two train shards, a curate stage, a plot."""
    texts = [json.loads(line)["persona"] for line in SEEDS_5K.read_text().splitlines()[:6]]
    chars = [
        Character(
            name=f"Person {i}",
            age=30 + i,
            gender="female",
            race="Ainu" if i % 2 else "Breton",
            born_place="Lyon",
            appearance="tall",
            experience=text[:600],
            personality="calm",
            speech_style="terse",
            catchphrases=["well then"],
            relationships=["a sister"],
            likes=["tea"],
            dislikes=["noise"],
            id=f"c-{i:016d}",
            persona_id=f"p-{i:016d}",
            persona=text,
            language="en",
            system_prompt=f"You are Person {i}. {text}",
            system_template="profile@1",
            model="gemma3-270m",
            seed=i,
            attempts=1,
            split=SPLIT_OF[i],
        )
        for i, text in enumerate(texts)
    ]
    recipe = {
        "name": "fake",
        "seed": 7,
        "seeds": {"source": source, "sample": 6},
        "instructions": {"sources": [str(SHARED / "instructions" / "mt_bench_questions.jsonl")]},
        "dialogues": {"modes": ["R", "G"]},
        "backend": {"kind": "vllm", "model": "gemma3-270m"},
        "publish": publish or {"license": "auto"},
    }
    split = root / "split"
    split.mkdir(parents=True)
    chunks = []
    for index, part in enumerate((chars[:3], chars[3:])):
        write_shard(split / f"data-{index:05d}.arrow", part, arrow_schema(Character))
        chunks.append({"index": index, "file": f"data-{index:05d}.arrow", "rows": len(part)})
    stages = {
        "seeds": {"kept": 6, "not_sampled": 4994},
        "split": {"kept": 6},
        "dialogues": {"kept": 12, "dropped_echo": 2},
        "curate": {"kept": 11, "dropped_refusal": 1},
    }
    for stage, counters in stages.items():
        (root / stage).mkdir(exist_ok=True)
        manifest = {
            "stage": stage,
            "inputs": sum(counters.values()),
            "recipe": recipe,
            "complete": True,
            "counters": counters,
            "chunks": chunks if stage == "split" else [],
            "versions": {"dramatis": "0.1.0"},
        }
        (root / stage / "manifest.json").write_text(json.dumps(manifest))
    rows = {}
    for c in chars:
        for mode in ("R", "G"):
            turns = 2 if mode == "G" else 1
            messages = [Message(role="system", content=c.system_prompt)]
            for t in range(turns):
                messages += [
                    Message(role="user", content=f"Question {t} for {c.name}?"),
                    Message(role="assistant", content=f"Answer {t}, {mode}."),
                ]
            rows.setdefault(c.split, []).append(
                Dialogue(
                    id=f"d-{c.id}-{mode}",
                    messages=messages,
                    character_id=c.id,
                    character_name=c.name,
                    mode=mode,
                    split=c.split,
                    prompt_id="q-1",
                    prompt_source="mt_bench_questions.jsonl",
                    prompt_source_id="81",
                    turns=turns,
                    language="en",
                    system_template="profile@1",
                    model="gemma3-270m",
                    seed=1,
                    requests=turns,
                    prompt_tokens=10,
                    output_tokens=5,
                )
            )
    (root / "dataset" / "data").mkdir(parents=True)
    info = {
        "recipe": "fake",
        "model": "gemma3-270m",
        "splits": {},
        "messages_column": "messages",
        "leakage": {
            "training_characters": 5,
            "heldout_characters": 1,
            "eval_personas": 100,
            "overlap": 0,
            "near_duplicates": 0,
            "threshold": 0.9,
        },
    }
    for split in ("train", "validation", "heldout"):
        n = 2 if split == "train" else 1
        size = -(-len(rows[split]) // n)
        files = [f"data/{split}-{i:05d}-of-{n:05d}.arrow" for i in range(n)]
        for i, name in enumerate(files):
            write_shard(root / "dataset" / name, rows[split][i * size : (i + 1) * size], arrow_schema(Dialogue))
        info["splits"][split] = {
            "rows": len(rows[split]),
            "files": files,
            "characters": len({d.character_id for d in rows[split]}),
            "modes": {"G": len(rows[split]) // 2, "R": len(rows[split]) // 2},
            "turns": {"1": len(rows[split]) // 2, "2": len(rows[split]) // 2},
            "languages": {"en": len(rows[split])},
        }
    (root / "dataset" / "dataset_info.json").write_text(json.dumps(info))
    (root / "report").mkdir()
    (root / "report" / "lengths.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(64)))
    return root


@pytest.fixture
def no_hub(monkeypatch):
    """Any attempt to create a repo or upload fails the test."""
    monkeypatch.setattr(HfApi, "create_repo", lambda self, *a, **k: pytest.fail("create_repo called"))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, *a, **k: pytest.fail("upload_folder called"))


@pytest.fixture
def logged_out(monkeypatch, tmp_path):
    """No token anywhere: no environment variable, and an empty HF_HOME so no stored `hf auth login`."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))  # read at import time


def load(folder: Path, tmp_path: Path, config: str | None = None) -> datasets.DatasetDict:
    return datasets.load_dataset(str(folder), config, cache_dir=str(tmp_path / "ds-cache"))


def front_matter(readme: Path) -> dict:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.mark.parametrize(
    "repo", ["dramatis-demo", "a/b/c", "user/bad name", "user/x--y", "user/", "", "user/name.git"]
)
def test_bad_repo_id_is_refused_before_anything_is_written(tmp_path, repo, no_hub):
    run = fake_run(tmp_path / "run")
    before = hashes(run)
    with pytest.raises(DramatisError, match="user/name"):
        pub.publish(run, repo, dry_run=True)
    assert hashes(run) == before and not (run / "hub").exists()


def test_upload_without_a_token_names_hf_token_and_sends_nothing(tmp_path, logged_out, no_hub):
    run = fake_run(tmp_path / "run")
    with pytest.raises(DramatisError, match="HF_TOKEN") as e:
        pub.publish(run, "someone/dramatis-demo")
    assert "hf auth login" in str(e.value)
    assert not (run / "hub").exists()


def test_upload_in_offline_mode_says_so_and_sends_nothing(tmp_path, monkeypatch, no_hub):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DramatisError, match="HF_HUB_OFFLINE") as e:
        pub.publish(fake_run(tmp_path / "run"), "someone/dramatis-demo")
    assert SECRET not in str(e.value)


def test_upload_sends_the_built_folder_as_a_dataset_and_a_hub_error_names_the_repo_not_the_token(
    tmp_path, monkeypatch
):
    run = fake_run(tmp_path / "run")
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    calls = []
    monkeypatch.setattr(
        HfApi, "create_repo", lambda self, repo_id, **k: calls.append(("create", repo_id, k, self.token))
    )
    monkeypatch.setattr(
        HfApi, "upload_folder", lambda self, **k: calls.append(("upload", k["repo_id"], k, self.token))
    )
    folder = pub.publish(run, "someone/dramatis-demo", private=True)
    assert folder == run / "hub" and (folder / "README.md").exists()
    (create, repo, kwargs, token), (upload, repo2, kwargs2, token2) = calls
    assert (create, repo, kwargs["repo_type"], kwargs["private"], kwargs["exist_ok"]) == (
        "create",
        "someone/dramatis-demo",
        "dataset",
        True,
        True,
    )
    assert (upload, repo2, kwargs2["repo_type"], Path(kwargs2["folder_path"])) == (
        "upload",
        "someone/dramatis-demo",
        "dataset",
        folder,
    )
    assert token == token2 == SECRET  # the token reaches the Hub client in memory only
    built = hashes(folder)

    def fail(self, **kwargs):  # a failed upload: rerunning rebuilds the same bytes, so finished files are skipped
        raise ConnectionError(f"connection reset while sending with Authorization: Bearer {SECRET}")

    monkeypatch.setattr(HfApi, "upload_folder", fail)
    with pytest.raises(DramatisError, match="someone/dramatis-demo") as e:
        pub.publish(run, "someone/dramatis-demo")
    assert SECRET not in str(e.value) and "rerun" in str(e.value)
    assert hashes(folder) == built
    assert not [p for p in run.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


def test_license_is_inherited_from_the_seed_source_and_the_recipe_override_wins(monkeypatch):
    for source in (
        "hf:proj-persona/PersonaHub:persona",
        "hf:proj-persona/persona-hub",
        str(SEEDS_5K),
        "/data/persona-hub/data/tool.jsonl",
        "seeds/PersonaHub_elite.csv",
    ):
        license_id, note = pub.seed_license(source)
        assert license_id == "cc-by-nc-sa-4.0" and "CC BY-NC-SA 4.0" in note, source
    for source in ("hf:someone/other-personas", "my_personas.jsonl", ""):
        license_id, note = pub.seed_license(source)
        assert license_id == "other" and "publish.license" in note, source
    monkeypatch.setattr(pub, "project_license", lambda: "")  # what pyproject.toml declares today: nothing
    assert pub.seed_license("builtin")[0] == "other" and "pyproject.toml" in pub.seed_license("builtin")[1]
    monkeypatch.setattr(pub, "project_license", lambda: "apache-2.0")
    assert pub.seed_license("builtin")[0] == "apache-2.0"
    hub = {"seeds": {"source": "hf:proj-persona/PersonaHub:persona"}}
    assert pub.card_license(hub)[0] == "cc-by-nc-sa-4.0"
    assert pub.card_license({**hub, "publish": {"license": "auto"}})[0] == "cc-by-nc-sa-4.0"
    assert pub.card_license({**hub, "publish": {"license": "CC-BY-4.0"}})[0] == "cc-by-4.0"
    assert pub.card_license({})[0] == "other"


def test_size_category_boundaries():
    assert [pub.size_category(n) for n in (0, 999, 1000, 9999, 10_000, 99_999, 100_000, 999_999, 1_000_000)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "1K<n<10K",
        "10K<n<100K",
        "10K<n<100K",
        "100K<n<1M",
        "100K<n<1M",
        "1M<n<10M",
    ]
    assert pub.size_category(10**12 - 1) == "100B<n<1T" and pub.size_category(10**12) == "n>1T"


def test_folder_of_a_persona_hub_run_loads_its_configs_and_card_with_plots_and_curate_stats(tmp_path, no_hub):
    run = fake_run(tmp_path / "run")
    folder = pub.publish(run, "someone/dramatis-demo", dry_run=True)
    assert sorted(hashes(folder)) == [
        "README.md",
        "dialogues/heldout-00000-of-00001.parquet",
        "dialogues/train-00000-of-00002.parquet",
        "dialogues/train-00001-of-00002.parquet",
        "dialogues/validation-00000-of-00001.parquet",
        "profiles/heldout-00000-of-00001.parquet",
        "profiles/train-00000-of-00002.parquet",
        "profiles/train-00001-of-00002.parquet",
        "profiles/validation-00000-of-00001.parquet",
        "report/lengths.png",
    ]
    dialogues, profiles = load(folder, tmp_path), load(folder, tmp_path, "profiles")
    assert {s: len(d) for s, d in dialogues.items()} == {"train": 8, "validation": 2, "heldout": 2}
    assert {s: len(d) for s, d in profiles.items()} == {"train": 4, "validation": 1, "heldout": 1}
    assert profiles["heldout"][0]["persona"] == json.loads(SEEDS_5K.read_text().splitlines()[4])["persona"]
    card = DatasetCard.load(folder / "README.md")
    assert card.data.license == "cc-by-nc-sa-4.0" and "CC BY-NC-SA 4.0" in card.text
    assert "![lengths](report/lengths.png)" in card.text and "Gemma Terms of Use" in card.text
    assert "| curate | 12 | 11 | 1 (refusal 1) | 0 |" in card.text and "**PASS**" in card.text
    assert "assistant_only_loss=True" in card.text and 'load_dataset("someone/dramatis-demo")' in card.text


def test_a_failed_build_leaves_the_previous_folder_whole(tmp_path, monkeypatch):
    run = fake_run(tmp_path / "run")
    folder = pub.build_folder(run, run / "hub")
    before = hashes(folder)

    def broken(*args):
        raise OSError("disk full")

    monkeypatch.setattr(pub, "write_profiles", broken)
    with pytest.raises(OSError):
        pub.build_folder(run, run / "hub")
    assert hashes(folder) == before


# The real run (tiny model through vLLM, minutes; shared with the other stages' tests).


@pytest.fixture(scope="module")
def run_copy(tiny_run, tmp_path_factory) -> Path:
    """A copy, so the folders written here never change the session's shared run."""
    return Path(shutil.copytree(tiny_run, tmp_path_factory.mktemp("publish") / "run"))


def test_dry_run_folder_loads_with_datasets_and_its_card_parses(run_copy, tmp_path, monkeypatch, no_hub):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    folder = pub.publish(run_copy, "someone/dramatis-demo", dry_run=True)
    info = json.loads((run_copy / "dataset" / "dataset_info.json").read_text())
    dialogues = load(folder, tmp_path)
    assert {s: len(d) for s, d in dialogues.items()} == {s: e["rows"] for s, e in info["splits"].items()}
    for row in dialogues["train"]:
        assert row["messages"][0]["role"] == "system" and {m["role"] for m in row["messages"][1:]} == {
            "user",
            "assistant",
        }
        assert all(set(m) == {"role", "content", "weight"} and isinstance(m["content"], str) for m in row["messages"])
    expected = {}
    for c in load_records(run_copy / "split", Character):
        expected.setdefault(c.split, []).append(c.id)
    profiles = load(folder, tmp_path, "profiles")
    assert {s: sorted(r["id"] for r in d) for s, d in profiles.items()} == {
        s: sorted(ids) for s, ids in expected.items()
    }

    card = DatasetCard.load(folder / "README.md")
    header = front_matter(folder / "README.md")
    assert header == card.data.to_dict()
    configs = {c["config_name"]: c for c in header["configs"]}
    assert configs["dialogues"]["default"] is True and set(configs) == {"dialogues", "profiles"}
    assert [f["split"] for f in configs["dialogues"]["data_files"]] == list(info["splits"])
    recipe = json.loads((run_copy / "seeds" / "manifest.json").read_text())["recipe"]
    assert recipe["seeds"]["source"] == "builtin"  # the demo recipe: our own seeds, so not Persona Hub's license
    assert card.data.license != "cc-by-nc-sa-4.0" and card.data.license == pub.seed_license("builtin")[0]
    assert card.data.language == sorted({lang for e in info["splits"].values() for lang in e["languages"]})
    assert card.data.size_categories == [pub.size_category(sum(e["rows"] for e in info["splits"].values()))]
    assert card.data.task_categories == ["text-generation"] and {"role-play", "synthetic", "persona"} <= set(
        card.data.tags
    )
    assert ("**PASS**" in card.text) == (info["leakage"]["overlap"] == 0 and info["leakage"]["near_duplicates"] == 0)
    leaked = [p for p in run_copy.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert not leaked


def test_rebuilding_gives_identical_files_and_the_arrow_format_loads_too(run_copy, tmp_path, no_hub):
    first = hashes(pub.build_folder(run_copy, tmp_path / "a", repo="someone/dramatis-demo"))
    assert hashes(pub.build_folder(run_copy, tmp_path / "a", repo="someone/dramatis-demo")) == first
    assert first == hashes(pub.publish(run_copy, "someone/dramatis-demo", dry_run=True))
    arrow = pub.publish(run_copy, "someone/dramatis-demo", dry_run=True, fmt="arrow")
    assert all(name.endswith((".arrow", ".md", ".png")) for name in hashes(arrow))
    info = json.loads((run_copy / "dataset" / "dataset_info.json").read_text())
    assert {s: len(d) for s, d in load(arrow, tmp_path).items()} == {s: e["rows"] for s, e in info["splits"].items()}
    assert "arrow" in str(front_matter(arrow / "README.md")["configs"][1]["data_files"][0]["path"])
    assert len(load(arrow, tmp_path, "profiles")["train"]) > 0
