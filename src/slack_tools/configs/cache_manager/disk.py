"""L3: a SQLite file in the data directory that survives restarts.

For expensive, slow-changing values. Point reads go straight to SQLite (a few
µs, cheaper than handing them to a thread); writes are queued and committed in
batches (one commit per ``flush``) since a lost cache write costs one reload at
most. Deletions are applied at once, and to the queue, so a value invalidated
is never written back afterwards.

Written on the standard library's sqlite3 rather than diskcache: we already hold
serialized bytes, need tag and prefix deletion and batched commits, and
diskcache pickles anything that is not bytes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SCHEMA = (
    (
        "CREATE TABLE IF NOT EXISTS cache_entries ("
        " namespace TEXT NOT NULL, key TEXT NOT NULL, data BLOB NOT NULL,"
        " stale_until REAL NOT NULL, written_at REAL NOT NULL, PRIMARY KEY (namespace, key))"
    ),
    (
        "CREATE TABLE IF NOT EXISTS cache_tags ("
        " namespace TEXT NOT NULL, tag TEXT NOT NULL, key TEXT NOT NULL,"
        " PRIMARY KEY (namespace, tag, key))"
    ),
    "CREATE INDEX IF NOT EXISTS cache_entries_written ON cache_entries (written_at)",
)


@dataclass(frozen=True, slots=True)
class Row:
    """A stored entry: its bytes and when it was written (wall clock seconds)."""

    data: bytes
    written_at: float


@dataclass(frozen=True, slots=True)
class _Write:
    data: bytes
    stale_until: float
    written_at: float
    tags: tuple[str, ...]


class DiskTier:
    """One SQLite file shared by every namespace of a cache manager."""

    def __init__(self, path: Path, *, max_entries: int = 100_000, batch: int = 256) -> None:
        self.path = path
        self.max_entries = max_entries
        self.batch = batch
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection used from the event loop and from the flushing thread, in turns.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            for statement in SCHEMA:
                self._db.execute(statement)
        self._pending: dict[tuple[str, str], _Write] = {}

    @property
    def pending(self) -> int:
        return len(self._pending)

    def get(self, namespace: str, key: str, now: float) -> Row | None:
        queued = self._pending.get((namespace, key))
        if queued is not None:
            return Row(queued.data, queued.written_at) if queued.stale_until > now else None
        with self._lock:
            found = self._db.execute(
                "SELECT data, written_at FROM cache_entries"
                " WHERE namespace = ? AND key = ? AND stale_until > ?",
                (namespace, key, now),
            ).fetchone()
        return Row(bytes(found[0]), float(found[1])) if found else None

    def put(
        self,
        namespace: str,
        key: str,
        data: bytes,
        *,
        stale_until: float,
        written_at: float,
        tags: tuple[str, ...] = (),
    ) -> bool:
        """Queue a write; True when the queue is long enough to be flushed."""
        self._pending[(namespace, key)] = _Write(data, stale_until, written_at, tags)
        return len(self._pending) >= self.batch

    def flush(self, now: float) -> int:
        """Commit the queued writes in one transaction and drop what outlived its time."""
        pending, self._pending = self._pending, {}
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO cache_entries VALUES (?, ?, ?, ?, ?)",
                    [(n, k, w.data, w.stale_until, w.written_at) for (n, k), w in pending.items()],
                )
                self._db.executemany(
                    "INSERT OR IGNORE INTO cache_tags VALUES (?, ?, ?)",
                    [(n, tag, k) for (n, k), w in pending.items() for tag in w.tags],
                )
                self._db.execute("DELETE FROM cache_entries WHERE stale_until <= ?", (now,))
                self._trim()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(pending)

    def _trim(self) -> None:
        (count,) = self._db.execute("SELECT count(*) FROM cache_entries").fetchone()
        if count > self.max_entries:
            self._db.execute(
                "DELETE FROM cache_entries WHERE rowid IN"
                " (SELECT rowid FROM cache_entries ORDER BY written_at LIMIT ?)",
                (count - self.max_entries,),
            )

    def delete(self, namespace: str, keys: Sequence[str]) -> None:
        for key in keys:
            self._pending.pop((namespace, key), None)
        with self._lock:
            self._db.executemany(
                "DELETE FROM cache_entries WHERE namespace = ? AND key = ?",
                [(namespace, key) for key in keys],
            )

    def delete_tag(self, namespace: str, tag: str) -> None:
        for name, w in list(self._pending.items()):
            if name[0] == namespace and tag in w.tags:
                del self._pending[name]
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute(
                "DELETE FROM cache_entries WHERE namespace = ? AND key IN"
                " (SELECT key FROM cache_tags WHERE namespace = ? AND tag = ?)",
                (namespace, namespace, tag),
            )
            self._db.execute(
                "DELETE FROM cache_tags WHERE namespace = ? AND tag = ?", (namespace, tag)
            )
            self._db.execute("COMMIT")

    def delete_prefix(self, namespace: str, prefix: str) -> None:
        for name in list(self._pending):
            if name[0] == namespace and name[1].startswith(prefix):
                del self._pending[name]
        with self._lock:
            # key >= prefix AND key < prefix + U+10FFFF uses the primary key, unlike LIKE.
            self._db.execute(
                "DELETE FROM cache_entries WHERE namespace = ? AND key >= ? AND key < ?",
                (namespace, prefix, prefix + "\U0010ffff"),
            )

    def clear(self, namespaces: Iterable[str] | None = None) -> None:
        with self._lock:
            if namespaces is None:
                self._pending.clear()
                self._db.execute("DELETE FROM cache_entries")
                self._db.execute("DELETE FROM cache_tags")
                return
            for namespace in namespaces:
                for name in [n for n in self._pending if n[0] == namespace]:
                    del self._pending[name]
                self._db.execute("DELETE FROM cache_entries WHERE namespace = ?", (namespace,))
                self._db.execute("DELETE FROM cache_tags WHERE namespace = ?", (namespace,))

    def close(self, now: float) -> None:
        if self._pending:
            self.flush(now)
        with self._lock:
            self._db.close()
