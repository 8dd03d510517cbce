"""The run's dataset folder: the dialogues split by character into train / validation / heldout Arrow
shards that `datasets.load_dataset(folder)` reads unchanged (TRL's SFTTrainer takes the `messages` column).

Layout: `data/{split}-{i:05d}-of-{n:05d}.arrow` (the file pattern `datasets` maps to splits by name) and
`dataset_info.json` (splits, row counts, features, the leakage check). The folder is built beside the
old one and renamed into place, so a failed build leaves the previous dataset whole.
"""

import json
from collections import Counter, defaultdict
from pathlib import Path

from personas.errors import DramatisError
from personas.records import Character, Persona
from personas.split import SPLITS, find_leaks
from synth.records import Dialogue
from synth.shards import arrow_schema, staged_folder, write_atomic, write_shard


def check_leakage(
    rows: dict[str, list[Dialogue]],
    characters: dict[str, Character],
    eval_personas: list[Persona],
    threshold: float,
    same_name_threshold: float,
) -> dict:
    """Refuse (DramatisError) a training split that holds a held-out character or a near-duplicate of one or of
    an evaluation persona; returns the check's numbers for dataset_info.json and the report."""
    held = {d.character_id for d in rows.get("heldout", [])} | {
        c.id for c in characters.values() if c.split == "heldout"
    }
    trained = {d.character_id for s in ("train", "validation") for d in rows.get(s, [])}
    unknown = sorted(trained - set(characters))
    if unknown:
        raise DramatisError(
            f"dataset: training rows of unknown character(s) {', '.join(unknown[:5])}; run the split stage again"
        )
    same = sorted(trained & held)
    if same:
        raise DramatisError(
            f"leakage: held-out character(s) {', '.join(same[:5])} have training rows; refusing to write the dataset"
        )
    leaks = find_leaks(
        [characters[i] for i in sorted(trained)],
        [characters[i] for i in sorted(held) if i in characters],
        eval_personas,
        threshold=threshold,
        same_name_threshold=same_name_threshold,
    )
    if leaks:
        first = leaks[0]
        raise DramatisError(
            f"leakage: {len(leaks)} training character(s) near held-out or eval characters, e.g. "
            f"{first.character_id} ({first.reason}: {first.detail}); refusing to write the dataset"
        )
    return {
        "training_characters": len(trained),
        "heldout_characters": len(held),
        "eval_personas": len(eval_personas),
        "overlap": 0,
        "near_duplicates": 0,
        "threshold": threshold,
    }


def write_dataset(
    folder: Path,
    dialogues: list[Dialogue],
    characters: list[Character],
    eval_personas: list[Persona],
    *,
    threshold: float = 0.9,
    same_name_threshold: float = 0.5,
    shard_rows: int = 2048,
    info: dict | None = None,
) -> dict:
    by_split: dict[str, list[Dialogue]] = defaultdict(list)
    for d in dialogues:
        if d.split not in SPLITS:
            raise DramatisError(f"dialogue {d.id}: unknown split '{d.split}'")
        by_split[d.split].append(d)
    leakage = check_leakage(by_split, {c.id: c for c in characters}, eval_personas, threshold, same_name_threshold)
    schema = arrow_schema(Dialogue)
    splits = {}
    with staged_folder(folder) as staging:
        (staging / "data").mkdir()
        for split in SPLITS:
            rows = by_split.get(split, [])
            if not rows:
                continue
            n = (len(rows) + shard_rows - 1) // shard_rows
            files = []
            for i in range(n):
                name = f"data/{split}-{i:05d}-of-{n:05d}.arrow"
                write_shard(staging / name, rows[i * shard_rows : (i + 1) * shard_rows], schema)
                files.append(name)
            splits[split] = {
                "rows": len(rows),
                "files": files,
                "characters": len({d.character_id for d in rows}),
                "modes": dict(sorted(Counter(d.mode for d in rows).items())),
                "turns": dict(sorted(Counter(str(d.turns) for d in rows).items(), key=lambda kv: int(kv[0]))),
                "languages": dict(sorted(Counter(d.language for d in rows).items())),
            }
        dataset_info = {
            **(info or {}),
            "splits": splits,
            "leakage": leakage,
            "features": {f.name: str(f.type) for f in schema},
            "messages_column": "messages",
        }
        write_atomic(staging / "dataset_info.json", json.dumps(dataset_info, indent=2, ensure_ascii=False).encode())
    return dataset_info
