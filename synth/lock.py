"""One process at a time in a run folder: `run_lock(out)` holds an exclusive lock on `out/.lock` while a run
writes there, and a second process is refused at once with the holder's PID and host.

The lock is `flock(2)` on the file, so the kernel drops it when its process dies in any way (kill -9 included):
a lock left by a killed run is stale by construction and the next run takes it over, noting whose it was. The
file's content (PID, host, start time) only names the holder; it never decides anything. `filelock` would do the
locking, but it truncates the file on every attempt, which erases the holder's name the refusal must give.
Within one process the lock is re-entrant, so a library caller may run stages one after another on one folder.
"""

import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from personas.errors import DramatisError

_held: set[Path] = set()  # resolved folders whose lock this process holds


def _holder(text: str) -> dict:
    try:
        return json.loads(text)
    except ValueError:
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


@contextmanager
def run_lock(out: Path):
    """Hold `out`'s lock for the block (`out` must exist); DramatisError naming the holder if another has it."""
    key = Path(out).resolve()
    if key in _held:  # re-entered: the outer block releases it
        yield
        return
    path = key / ".lock"
    handle = open(path, "a+", encoding="utf-8")  # not truncated: a refused process must still read the holder
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        who = _holder(handle.read())
        handle.close()
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(who["since"])) if "since" in who else "?"
        raise DramatisError(
            f"out={out}: another dramatis process is writing this run (PID {who.get('pid', '?')} on "
            f"{who.get('host', '?')}, since {since}); wait for it to end, stop it, or give another out="
        ) from None
    handle.seek(0)
    before = _holder(handle.read())
    if before.get("pid") and before.get("host") == socket.gethostname() and not _alive(before["pid"]):
        print(f"{out}: took over the lock of PID {before['pid']}, which is no longer running", file=sys.stderr)
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}))
    handle.flush()
    _held.add(key)
    try:
        yield
    finally:
        _held.discard(key)
        # Emptied before the unlock: a file that names a holder is then only ever a live or a killed one.
        handle.seek(0)
        handle.truncate()
        handle.flush()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
