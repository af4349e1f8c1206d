"""The embedded durable queue of asynchronous requests: one SQLite file (WAL), shared by the processes of
one machine.

A request is put once (its inference id is the key: a retried put is not a second request), claimed by a
worker with a lease, and finished once: `finish` only moves a request that is still claimed by that
claim, so a worker whose lease ran out (it was killed, or too slow) cannot finish a request a second time.
After a restart, requests left claimed are claimed again when their lease expires: none is lost.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, doc TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',         -- queued | running | succeeded | failed | expired
    accepted_at REAL NOT NULL, expires_at REAL, claim TEXT, lease_until REAL, attempts INTEGER NOT NULL DEFAULT 0,
    finished_at REAL, reason TEXT
);
CREATE INDEX IF NOT EXISTS waiting ON requests (endpoint, state, accepted_at);
"""
DONE = ("succeeded", "failed", "expired")


@dataclass
class Claimed:
    id: str
    doc: str
    claim: str
    accepted_at: float
    expires_at: float | None
    attempts: int


class SqliteQueue:
    """put / claim / finish / status / backlog over one SQLite file."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an accepted request survives a power cut
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def put(self, endpoint: str, inference_id: str, doc: str, expires_at: float | None) -> bool:
        """Queue a request; False when that inference id is already known (nothing added)."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO requests (id, endpoint, doc, accepted_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                (inference_id, endpoint, doc, time.time(), expires_at))
            return cur.rowcount == 1

    def claim(self, endpoint: str, lease_s: float) -> Claimed | None:
        """The oldest waiting request (or one whose lease ran out), leased to a new claim; None if none."""
        now, claim = time.time(), uuid.uuid4().hex
        with self._lock:
            row = self._db.execute(
                "UPDATE requests SET state='running', claim=?, lease_until=?, attempts=attempts+1 WHERE id = ("
                " SELECT id FROM requests WHERE endpoint=? AND (state='queued' OR (state='running' AND lease_until<?))"
                " ORDER BY accepted_at LIMIT 1) RETURNING id, doc, accepted_at, expires_at, attempts",
                (claim, now + lease_s, endpoint, now)).fetchone()
        if row is None:
            return None
        return Claimed(row[0], row[1], claim, row[2], row[3], row[4])

    def renew(self, claimed: Claimed, lease_s: float) -> bool:
        """Extend a claim's lease; False when the claim was lost (the worker must stop working on it)."""
        with self._lock:
            cur = self._db.execute("UPDATE requests SET lease_until=? WHERE id=? AND claim=? AND state='running'",
                                   (time.time() + lease_s, claimed.id, claimed.claim))
            return cur.rowcount == 1

    def finish(self, claimed: Claimed, state: str, reason: str | None = None) -> bool:
        """Mark a claimed request done; False when the claim was lost (another worker owns it now)."""
        assert state in DONE
        with self._lock:
            cur = self._db.execute(
                "UPDATE requests SET state=?, finished_at=?, reason=?, lease_until=NULL WHERE id=? AND claim=? "
                "AND state='running'", (state, time.time(), reason, claimed.id, claimed.claim))
            return cur.rowcount == 1

    def stage(self, claimed: Claimed, topic: str, key: bytes, value: bytes, sent) -> bool:
        """No transaction to put a Kafka notification in (serving.asyncq.kafka.Ledger.stage): the caller sends it."""
        return False

    def status(self, inference_id: str) -> dict | None:
        row = self._db.execute("SELECT endpoint, doc, state, accepted_at, finished_at, reason, attempts FROM requests "
                               "WHERE id=?", (inference_id,)).fetchone()
        if row is None:
            return None
        return dict(zip(("endpoint", "doc", "state", "accepted_at", "finished_at", "reason", "attempts"), row))

    def backlog(self, endpoint: str) -> tuple[int, float]:
        """(requests not finished, age in seconds of the oldest of them, 0 when none)."""
        n, oldest = self._db.execute("SELECT COUNT(*), MIN(accepted_at) FROM requests WHERE endpoint=? AND state IN "
                                     "('queued', 'running')", (endpoint,)).fetchone()
        return n, (time.time() - oldest) if oldest else 0.0

    def close(self) -> None:
        self._db.close()
