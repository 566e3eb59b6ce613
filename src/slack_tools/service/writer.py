"""Group commit: many requests' writes in one transaction, on one writer thread.

SQLite allows one writer at a time and a commit costs a disk sync, so committing
each request alone caps the rate near what the disk syncs per second. Requests
instead queue their writes; the writer thread takes everything queued, runs it in
one transaction, commits once, and then answers every waiting request. A write
that fails makes the batch roll back and run again one by one, so it fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

from slack_tools.errors import StorageError
from slack_tools.storage.database import write_transaction
from slack_tools.storage.usage import usage_noted

log = structlog.get_logger(__name__)
T = TypeVar("T")
Job = Callable[[sa.Connection], T]


@dataclass
class _Pending(Generic[T]):
    job: Job[T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop


def _settle(pending: _Pending[Any], result: Any = None, error: BaseException | None = None) -> None:
    _settle_all([(pending, result, error)])


Outcome = tuple[_Pending[Any], Any, BaseException | None]


def _apply(outcomes: list[Outcome]) -> None:
    for pending, result, error in outcomes:
        if pending.future.done():  # the request gave up waiting (client went away)
            continue
        if error is not None:
            pending.future.set_exception(error)
        else:
            pending.future.set_result(result)


def _settle_all(outcomes: list[Outcome]) -> None:
    """Answer the waiting requests: one wake-up of each event loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            loop.call_soon_threadsafe(_apply, settled)


class GroupCommitWriter:
    """Runs write jobs on a dedicated thread, committing whatever is queued together."""

    def __init__(
        self, engine: Engine, *, max_batch: int = 256, name: str = "ingest-writer"
    ) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending[Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        # Taken to queue a job and to close: no job is queued behind the closing marker,
        # where nothing would ever run it.
        self._closing = threading.Lock()
        self._closed = False
        self.batches = 0
        self.jobs = 0

    @property
    def engine(self) -> Engine:
        return self._engine

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop the thread; later jobs are refused."""
        with self._closing:
            self._closed = True
            if self._thread.is_alive():
                self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    async def run(self, job: Job[T]) -> T:
        """Run ``job`` in the next transaction; returns once it is committed.

        Raises :class:`StorageError` once the writer is stopped (the request is refused
        as unavailable, and the sender retries).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._closing:
            if self._closed:
                raise StorageError("this database's writer is closed: try again")
            self._queue.put(_Pending(job, future, loop))
        return await future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Pending[Any]]) -> None:
        try:
            with write_transaction(self._engine) as connection, usage_noted(connection):
                results = [pending.job(connection) for pending in batch]
        except Exception:  # noqa: BLE001 - isolate the failing job below
            if len(batch) == 1:
                self._alone(batch[0])
                return
            for pending in batch:
                self._alone(pending)
            return
        self.batches += 1
        self.jobs += len(batch)
        _settle_all(
            [(pending, result, None) for pending, result in zip(batch, results, strict=True)]
        )

    def _alone(self, pending: _Pending[Any]) -> None:
        try:
            with write_transaction(self._engine) as connection, usage_noted(connection):
                result = pending.job(connection)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
            log.warning("ingest.write_failed", error=type(exc).__name__)
            _settle(pending, error=exc)
            return
        self.batches += 1
        self.jobs += 1
        _settle(pending, result)


class CommitWriters:
    """One group-commit writer per database: the shared one's, and each strict tenant's.

    A strictly isolated tenant's alerts are committed in its own database, by a writer
    of its own made on the first request for it (so one slow tenant database holds up
    no other). The shared database's writer is :attr:`shared`: the hot path of every
    tenant whose data is shared looks nothing up.
    """

    def __init__(self, shared: Engine, *, max_batch: int = 256) -> None:
        self.shared = GroupCommitWriter(shared, max_batch=max_batch)
        self._max_batch = max_batch
        self._own: dict[Engine, GroupCommitWriter] = {}
        self._lock = threading.Lock()
        self._started = False
        self._stopped = False

    def for_engine(self, engine: Engine) -> GroupCommitWriter:
        """The writer committing into ``engine``'s database (made and started on first use)."""
        if engine is self.shared.engine:
            return self.shared
        writer = self._own.get(engine)
        if writer is not None:
            return writer
        with self._lock:
            writer = self._own.get(engine)
            if writer is None:
                if self._stopped:
                    raise StorageError("the service is stopping: nothing more is written")
                writer = GroupCommitWriter(
                    engine, max_batch=self._max_batch, name=f"ingest-writer-{len(self._own) + 1}"
                )
                if self._started:
                    writer.start()
                self._own[engine] = writer
        return writer

    def retire_except(self, engines: Callable[[], Iterable[Engine]]) -> int:
        """Stop the writers of tenant databases not among ``engines()`` (their tenants
        were deleted, or their databases reopened): each finishes what it has queued
        first. Returns how many were stopped.

        ``engines`` is asked under the lock that :meth:`for_engine` makes writers under:
        a writer made meanwhile is for a database already open, so it is kept.
        """
        with self._lock:
            keep = set(engines())
            gone = [engine for engine in self._own if engine not in keep]
            retired = [self._own.pop(engine) for engine in gone]
        for writer in retired:
            writer.stop()
        return len(retired)

    def writers(self) -> list[GroupCommitWriter]:
        """Every writer, the shared database's first."""
        with self._lock:
            return [self.shared, *self._own.values()]

    def start(self) -> None:
        with self._lock:
            self._started = True
            writers = [self.shared, *self._own.values()]
        for writer in writers:
            writer.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what each writer has queued, then stop them all (made no more after)."""
        with self._lock:
            self._stopped = True
            writers = [self.shared, *self._own.values()]
        for writer in writers:
            writer.stop(timeout)

    @property
    def batches(self) -> int:
        return sum(w.batches for w in self.writers())

    @property
    def jobs(self) -> int:
        return sum(w.jobs for w in self.writers())
