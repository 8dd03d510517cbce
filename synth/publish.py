"""Publishing a run to the Hugging Face Hub: the splits as Parquet for the Hub's viewer (or our Arrow
shards as they are) and a generated dataset card, in one folder that is uploaded as it is.

    dramatis publish RUN --repo user/name [--private] [--dry-run] [--format parquet|arrow]
    make publish RUN=runs/demo REPO=user/name

Layout of `RUN/hub/` (exactly what is uploaded; `--dry-run` stops after writing it):
    README.md                                   the card: YAML header (configs, license, ...) and body
    dialogues/{split}-NNNNN-of-NNNNN.parquet    config `dialogues` (the default): the training rows
    profiles/{split}-NNNNN-of-NNNNN.parquet     config `profiles`: the characters, by the same split
    report/*.png                                the run's plots (RUN/report/*.png), when the report made them

Token and upload: synth/hub.py. Resuming: the folder is deterministic (same run → byte-identical files), so
rerunning after a failed upload sends only what did not arrive.
"""

import json
import shutil
from collections import Counter
from importlib import metadata
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from huggingface_hub import DatasetCard, DatasetCardData

from personas.errors import DramatisError
from personas.records import Character, ProfileFields
from personas.split import SPLITS
from synth.hub import check_repo, hub_token, upload
from synth.pipeline import run_recipe
from synth.recipe import as_dict
from synth.records import Dialogue
from synth.report import leakage, outcomes, read_stages
from synth.shards import arrow_schema, read_shard, staged_folder, write_atomic

FORMATS = ("parquet", "arrow")
# The writer options `datasets` itself uses for Hub uploads (datasets/io/parquet.py): content-defined chunking
# lets Xet deduplicate unchanged pages across uploads; the page index speeds up the viewer's random access.
CDC = {"min_chunk_size": 256 * 1024, "max_chunk_size": 1024 * 1024, "norm_level": 0}
ROW_GROUP = 1000
PERSONA_HUB = "cc-by-nc-sa-4.0"
SIZES = [
    (10**3, "n<1K"),
    (10**4, "1K<n<10K"),
    (10**5, "10K<n<100K"),
    (10**6, "100K<n<1M"),
    (10**7, "1M<n<10M"),
    (10**8, "10M<n<100M"),
    (10**9, "100M<n<1B"),
    (10**10, "1B<n<10B"),
    (10**11, "10B<n<100B"),
    (10**12, "100B<n<1T"),
]


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise DramatisError(f"--format {fmt}: use one of {', '.join(FORMATS)}")


def size_category(rows: int) -> str:
    """The Hub's size bucket (DatasetCardData.size_categories) for a row count."""
    return next((name for limit, name in SIZES if rows < limit), "n>1T")


def project_license() -> str:
    """The license the dramatis package declares (pyproject.toml `license`), '' when it declares none."""
    try:
        meta = metadata.metadata("dramatis")
    except metadata.PackageNotFoundError:
        return ""
    return (meta.get("License-Expression") or meta.get("License") or "").strip().lower()


def seed_license(source: str) -> tuple[str, str]:
    """(license id, sentence for the card) inherited from the seed source of the recipe."""
    # hf:proj-persona/PersonaHub[:config], or a file taken from tencent-ailab/persona-hub
    # (../shared/data/seeds/personahub_*)
    if any(key in source.lower() for key in ("personahub", "persona-hub", "persona_hub")):
        return PERSONA_HUB, (
            "The characters are built from Persona Hub personas (Tencent AI Lab), released under "
            "CC BY-NC-SA 4.0, so this dataset is too: non-commercial use, attribution, share-alike."
        )
    if source == "builtin":
        declared = project_license()
        if declared:
            return (
                declared,
                f"The seed personas are Dramatis' own built-in set, under the project's license ({declared}).",
            )
        return "other", (
            "The seed personas are Dramatis' built-in set, and the project declares no license in "
            "pyproject.toml: set `publish.license` in the recipe before sharing this dataset."
        )
    return "other", (
        f"The license of the seed source `{source}` is not known to Dramatis: set `publish.license` in the "
        "recipe (and edit this line) to the license its terms allow."
    )


def card_license(recipe: dict) -> tuple[str, str]:
    """The card's license: the recipe's `publish.license` when set, else the seed source's."""
    inherited, note = seed_license(recipe.get("seeds", {}).get("source", ""))
    chosen = str((recipe.get("publish") or {}).get("license") or "auto").strip()
    if chosen in ("", "auto"):
        return inherited, note
    return (
        chosen.lower(),
        f"License set by the recipe (`publish.license: {chosen}`); the seed source alone gives `{inherited}`: {note}",
    )


def write_table(table: pa.Table, path: Path, fmt: str) -> None:
    """One shard, atomically; the same table always gives the same bytes (no timestamps in either format)."""
    sink = pa.BufferOutputStream()
    if fmt == "parquet":
        with pq.ParquetWriter(sink, table.schema, use_content_defined_chunking=CDC, write_page_index=True) as writer:
            writer.write_table(table, row_group_size=ROW_GROUP)
            writer.add_key_value_metadata({"content_defined_chunking": json.dumps(CDC)})
    else:
        with pa.ipc.new_stream(sink, table.schema) as writer:  # the stream format `datasets` reads (synth/shards.py)
            writer.write_table(table)
    write_atomic(path, sink.getvalue().to_pybytes())


def write_dialogues(dataset: Path, info: dict, out: Path, fmt: str) -> None:
    """Shard by shard from the dataset folder, so memory stays at one shard; names keep -NNNNN-of-NNNNN."""
    for entry in info["splits"].values():
        for name in entry["files"]:
            target = out / "dialogues" / (Path(name).stem + "." + fmt)
            if fmt == "arrow":
                shutil.copyfile(dataset / name, target)
            else:
                write_table(read_shard(dataset / name), target, fmt)


def write_profiles(split_stage: Path, out: Path, fmt: str) -> dict[str, int]:
    """The split stage's characters, one file per (input shard, split); shards are memory-mapped, never all held."""
    manifest = json.loads((split_stage / "manifest.json").read_text())
    present = {s: [] for s in SPLITS}
    for chunk in manifest["chunks"]:
        path = split_stage / chunk["file"]
        for split in set(read_shard(path)["split"].to_pylist()) if chunk["rows"] else ():
            present.setdefault(split, []).append(path)
    counts = Counter()
    for split, paths in present.items():
        for i, path in enumerate(paths):
            table = read_shard(path)
            table = table.filter(pc.equal(table["split"], split))
            write_table(table, out / "profiles" / f"{split}-{i:05d}-of-{len(paths):05d}.{fmt}", fmt)
            counts[split] += table.num_rows
    return dict(counts)


def _fmt_counts(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "–"


def _source(source: str) -> str:
    """An instruction source as the card names it: a file by its name (local paths mean nothing on the Hub)."""
    return f"`{source if source.startswith('hf:') else Path(source).name}`"


def _schema_rows(model) -> list[str]:
    return [
        f"| `{f.name}` | `{f.type}` | "
        f"{model.model_fields[f.name].description or DESCRIBE.get(f.name, _profile(f.name))} |"
        for f in arrow_schema(model)
    ]


def _profile(name: str) -> str:
    return (
        f"profile field ({name.replace('_', ' ')}), written by the model under a JSON schema"
        if name in ProfileFields.model_fields
        else ""
    )


DESCRIBE = {
    "id": "stable id derived from the content",
    "character_id": "the character speaking as the assistant",
    "character_name": "the character's name",
    "user_character_id": "the character the user plays ('' for a plain user)",
    "mode": "R (reference answer rewritten in character) or G (generated in character)",
    "prompt_id": "the instruction's id",
    "prompt_source": "file or dataset the instruction came from",
    "prompt_source_id": "the instruction's own id in its source",
    "language": "ISO 639-1 code",
    "model": "model that wrote the row",
    "requests": "LLM requests the row took",
    "prompt_tokens": "prompt tokens spent",
    "output_tokens": "output tokens spent",
    "persona_id": "id of the seed persona",
    "persona": "the seed persona text",
}


def leakage_line(info: dict) -> str:
    check = leakage(info)
    if check["status"] == "NOT CHECKED":
        return (
            "**NOT RECORDED**: this run's dataset_info.json holds no leakage check; "
            "rebuild the dataset before publishing."
        )
    return (
        f"**{check['status']}**: {check.get('training_characters', '?')} training characters against "
        f"{check.get('heldout_characters', '?')} held-out characters and {check.get('eval_personas', '?')} evaluation "
        f"personas: {check.get('overlap', '?')} shared, {check.get('near_duplicates', '?')} near-duplicates "
        f"(MiniLM cosine ≥ {check.get('threshold', '?')}, or the same name)."
    )


def render_card(run: Path, info: dict, profiles: dict[str, int], plots: list[str], fmt: str, repo: str) -> str:
    """README.md: the YAML header from DatasetCardData, the body from the run's manifests and dataset_info.json."""
    recipe, splits, stages = as_dict(run_recipe(run)), info["splits"], read_stages(run)
    license_id, license_note = card_license(recipe)
    model = info.get("model") or recipe.get("backend", {}).get("model", "?")
    languages = sorted({lang for s in splits.values() for lang in s["languages"]})
    rows = sum(s["rows"] for s in splits.values())
    multi_turn = any(int(t) > 1 for s in splits.values() for t in s["turns"])
    name = recipe.get("name") or info.get("recipe") or run.name
    data = DatasetCardData(
        pretty_name=f"Dramatis role-play dialogues ({name})",
        license=license_id,
        language=languages,
        multilinguality="multilingual" if len(languages) > 1 else "monolingual",
        size_categories=[size_category(rows)],
        task_categories=["text-generation"],
        annotations_creators=["machine-generated"],
        language_creators=["machine-generated"],
        tags=["role-play", "synthetic", "persona", "character", *(["multi-turn"] if multi_turn else []), "dramatis"],
        configs=[
            {
                "config_name": config,
                **({"default": True} if config == "dialogues" else {}),
                "data_files": [{"split": s, "path": f"{config}/{s}-*.{fmt}"} for s in SPLITS if s in present],
            }
            for config, present in (("dialogues", splits), ("profiles", profiles))
        ],
    )
    seeds, instructions = recipe.get("seeds", {}), recipe.get("instructions", {})
    versions = stages.get("dialogues", {}).get("versions", {})
    terms = (
        f"\n\nThe dialogues and profiles were written by {model}: Gemma outputs are subject to the "
        "[Gemma Terms of Use](https://ai.google.dev/gemma/terms) and its Prohibited Use Policy."
        if "gemma" in model.lower()
        else ""
    )
    lines = [
        f"# {data.pretty_name}",
        "",
        "Synthetic role-play conversations for teaching a language model to stay in character, made with Dramatis in "
        "the style of OpenCharacter (arXiv 2501.15427): one-line persona seeds became structured character profiles, "
        "and each character answered instructions in its own voice, either rewriting a reference answer (mode R) or "
        "generating one (mode G), in single- and multi-turn dialogues. The system message carries the profile. "
        "Characters are split before any dialogue is written, so the `validation` and `heldout` characters never "
        "appear in `train`; `heldout` is for evaluating generalization to unseen characters, not for training.",
        "",
        "## License",
        "",
        f"`{license_id}`. {license_note}{terms}",
        "",
        "## Recipe",
        "",
        "| | |",
        "| --- | --- |",
        f"| recipe | `{name}` (seed {recipe.get('seed', '?')}) |",
        f"| model | `{model}` ({recipe.get('backend', {}).get('kind', '?')} backend) |",
        f"| seed personas | `{seeds.get('source', '?')}` (sample {seeds.get('sample') or 'all'}) |",
        f"| instructions | {', '.join(_source(s) for s in instructions.get('sources', [])) or '?'} |",
        f"| modes | {', '.join(recipe.get('dialogues', {}).get('modes', [])) or '?'} |",
        f"| versions | {', '.join(f'{k} {v}' for k, v in versions.items()) or '?'} |",
        "",
        "## Splits",
        "",
        "| split | dialogues | characters | profiles | modes | assistant turns | languages |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(
            f"| {s} | {e['rows']} | {e['characters']} | {profiles.get(s, 0)} | {_fmt_counts(e['modes'])} | "
            f"{_fmt_counts(e['turns'])} | {_fmt_counts(e['languages'])} |"
            for s, e in splits.items()
        ),
        "",
        "## Curation",
        "",
        "Counts from the run's stage manifests; every dropped row stays in the run's rejects shards with its reason.",
        "",
        "| stage | in | kept | dropped, by reason | not sampled |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {stage} | {r['inputs']} | {r['kept']} | {sum(r['dropped'].values())} ({_fmt_counts(r['dropped'])}) | "
            f"{r['not_sampled']} |"
            for stage, r in ((k, outcomes(m)) for k, m in stages.items() if k != "dataset")
        ),
        "",
        "## Leakage check",
        "",
        leakage_line(info),
        "",
        "## Plots",
        "",
        *([f"![{Path(p).stem}]({p})" for p in plots] or ["No plots in this run (`report/` is empty)."]),
        "",
        "## Schema",
        "",
        "Config `dialogues`:",
        "",
        "| column | type | description |",
        "| --- | --- | --- |",
        *_schema_rows(Dialogue),
        "",
        "Config `profiles`:",
        "",
        "| column | type | description |",
        "| --- | --- | --- |",
        *_schema_rows(Character),
        "",
        "## Train with TRL",
        "",
        "```python",
        "from datasets import load_dataset",
        "from trl import SFTConfig, SFTTrainer",
        "",
        f'data = load_dataset("{repo}")  # config "dialogues"; load_dataset("{repo}", "profiles") for the characters',
        "trainer = SFTTrainer(",
        '    model="Qwen/Qwen3-0.6B",  # any chat model whose template TRL can mask',
        '    train_dataset=data["train"].select_columns(["messages"]),',
        '    eval_dataset=data["validation"].select_columns(["messages"]),',
        '    args=SFTConfig(output_dir="roleplay-sft", assistant_only_loss=True),'
        "  # loss on the character's turns only",
        ")",
        "trainer.train()",
        "```",
        "",
    ]
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)))


def build_folder(run: Path, folder: Path, fmt: str = "parquet", *, repo: str = "user/name") -> Path:
    """Write exactly the folder to upload; built beside the old one and renamed in, so a failure leaves it whole."""
    run, folder = Path(run), Path(folder)
    check_format(fmt)
    info_path = run / "dataset" / "dataset_info.json"
    if not info_path.exists():
        raise DramatisError(f"{run}: no dataset here ({info_path} is missing); run `dramatis synth` to the end first")
    if not (run / "split" / "manifest.json").exists():
        raise DramatisError(
            f"{run}: no split stage here (the profiles config comes from it); run `dramatis synth` first"
        )
    info = json.loads(info_path.read_text())
    if not info.get("splits"):  # a card whose config lists no files: `load_dataset` of the repo would fail
        raise DramatisError(
            f"{run}: the dataset has no rows (curation kept none; see {run / 'report' / 'report.md'}): "
            "nothing to publish"
        )
    with staged_folder(folder) as staging:
        for sub in ("dialogues", "profiles"):
            (staging / sub).mkdir()
        write_dialogues(run / "dataset", info, staging, fmt)
        profiles = write_profiles(run / "split", staging, fmt)
        plots = []
        for png in sorted((run / "report").glob("*.png")):
            (staging / "report").mkdir(exist_ok=True)
            shutil.copyfile(png, staging / "report" / png.name)
            plots.append(f"report/{png.name}")
        write_atomic(staging / "README.md", render_card(run, info, profiles, plots, fmt, repo).encode("utf-8"))
    return folder


def publish(run: Path, repo: str, *, private: bool = False, dry_run: bool = False, fmt: str = "parquet") -> Path:
    """Build RUN/hub and upload it to the dataset repo `repo` (created if missing); returns the folder."""
    check_repo(repo)
    check_format(fmt)
    token = None if dry_run else hub_token()  # before the build, so a missing token costs no conversion
    folder = build_folder(Path(run), Path(run) / "hub", fmt, repo=repo)
    if not dry_run:
        upload(
            folder,
            repo,
            token,
            repo_type="dataset",
            private=private,
            delete_patterns=["dialogues/*", "profiles/*", "report/*"],
        )
    return folder
