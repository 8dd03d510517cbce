"""The request cache: a rerun never pays twice for a finished request.

SQLite in WAL mode: every batch is committed as soon as the backend returns it, so a SIGKILL loses at
most the batch in flight, and a relaunch finds every finished request.
"""

import json
import sqlite3
from dataclasses import asdict
from pathlib import Path

from personas.errors import DramatisError
from synth.backend import ChatResult

# SQLite's default limit on host parameters in one statement is 999 on older builds.
LOOKUP_BATCH = 900


class RequestCache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, result TEXT NOT NULL)")
        except sqlite3.DatabaseError as e:  # a damaged or foreign file, a full disk: say which file, not a traceback
            self.db.close()
            raise DramatisError(
                f"{path}: cannot open the request cache ({e}); if the file is damaged, move it away "
                "(its finished requests are then generated again)"
            ) from None

    def get_many(self, keys: list[str]) -> dict[str, ChatResult]:
        found = {}
        for start in range(0, len(keys), LOOKUP_BATCH):
            batch = keys[start : start + LOOKUP_BATCH]
            marks = ",".join("?" * len(batch))
            for key, result in self.db.execute(f"SELECT key, result FROM results WHERE key IN ({marks})", batch):
                found[key] = ChatResult(**json.loads(result))
        return found

    def put_many(self, items: list[tuple[str, ChatResult]]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO results VALUES (?, ?)",
                [(key, json.dumps(asdict(result), ensure_ascii=False)) for key, result in items],
            )

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def close(self) -> None:
        self.db.close()
