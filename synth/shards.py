"""Arrow IPC shards: schemas derived from the record types, atomic writes, reads.

Shards use the IPC *stream* format, the one `datasets` memory-maps, so `Dataset.from_file` and
`load_dataset("arrow", data_files=...)` read them unchanged.
"""

import contextlib
import hashlib
import os
import shutil
import types
import typing
from pathlib import Path

import pyarrow as pa
from pydantic import BaseModel

from personas.errors import DramatisError

SCALARS = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def _arrow_type(annotation) -> pa.DataType:
    if annotation in SCALARS:
        return SCALARS[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _arrow_type(args[0])
    if origin is list:
        return pa.list_(_arrow_type(args[0]))
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return _arrow_type(inner)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return pa.struct([pa.field(n, _arrow_type(f.annotation)) for n, f in annotation.model_fields.items()])
    if origin is dict and args == (str, str):
        return pa.map_(pa.string(), pa.string())
    raise TypeError(f"no Arrow type for {annotation!r}: add it to synth/shards.py")


def arrow_schema(model: type[BaseModel]) -> pa.Schema:
    return pa.schema([pa.field(name, _arrow_type(f.annotation)) for name, f in model.model_fields.items()])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Temporary name, fsync, rename: a reader sees the whole file or none of it. A write that fails (a full
    disk, a file-size quota) leaves no temporary file and says which file it could not write."""
    tmp = path.with_name("." + path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):  # an error from write() carries no file name: the user needs it
            raise DramatisError(f"{path}: cannot write ({e.strerror or e})") from e
        raise
    _fsync_dir(path.parent)


def check_writable(out: Path) -> None:
    probe = out / ".write-probe"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise DramatisError(f"out={out}: cannot write there ({e.strerror})") from None


def write_shard(path: Path, rows: list[BaseModel], schema: pa.Schema) -> str:
    """Write `rows` as one IPC stream file; returns its sha256 (recorded in the manifest)."""
    table = pa.Table.from_pylist([r.model_dump() for r in rows], schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(table)
    data = sink.getvalue().to_pybytes()
    write_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def read_shard(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_stream(source).read_all()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def staged_folder(folder: Path):
    """Build a folder's new contents in `<folder>.tmp` (the yielded path) and swap it in when the body ends:
    a failure on the way leaves the previous folder whole and no half-built one behind."""
    staging, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
