"""One group-commit writer per database: each job committed in the database it was given."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from slack_tools.errors import StorageError
from slack_tools.service.writer import CommitWriters
from slack_tools.storage.database import create_engine


def numbers_engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE numbers (n INTEGER PRIMARY KEY)")
    return engine


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[tuple[Engine, Engine, Engine]]:
    """The shared database and two tenants' own."""
    made = (
        numbers_engine(tmp_path / "shared.db"),
        numbers_engine(tmp_path / "acme.db"),
        numbers_engine(tmp_path / "initech.db"),
    )
    yield made
    for engine in made:
        engine.dispose()


def store(n: int) -> Callable[[sa.Connection], int]:
    def job(connection: sa.Connection) -> int:
        connection.execute(sa.text("INSERT INTO numbers (n) VALUES (:n)").bindparams(n=n))
        return n

    return job


def stored(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return [row[0] for row in connection.exec_driver_sql("SELECT n FROM numbers ORDER BY n")]


async def test_each_database_gets_its_own_writer_and_only_its_jobs(
    engines: tuple[Engine, Engine, Engine],
) -> None:
    shared, acme, initech = engines
    writers = CommitWriters(shared)
    writers.start()
    try:
        assert writers.for_engine(shared) is writers.shared
        acme_writer = writers.for_engine(acme)  # made (and started) on first use
        assert writers.for_engine(acme) is acme_writer
        assert acme_writer is not writers.shared
        jobs = [
            *(writers.shared.run(store(n)) for n in range(10)),
            *(acme_writer.run(store(n)) for n in range(10, 30)),
            *(writers.for_engine(initech).run(store(n)) for n in range(30, 35)),
        ]
        assert await asyncio.gather(*jobs) == list(range(35))
    finally:
        writers.stop()

    assert stored(shared) == list(range(10))
    assert stored(acme) == list(range(10, 30))
    assert stored(initech) == list(range(30, 35))
    assert writers.jobs == 35
    assert len(writers.writers()) == 3


async def test_a_writer_made_before_start_starts_with_the_others(
    engines: tuple[Engine, Engine, Engine],
) -> None:
    shared, acme, _ = engines
    writers = CommitWriters(shared)
    early = writers.for_engine(acme)
    writers.start()
    try:
        assert await early.run(store(1)) == 1
    finally:
        writers.stop()
    assert stored(acme) == [1]


def test_no_writer_is_made_once_stopped(engines: tuple[Engine, Engine, Engine]) -> None:
    shared, acme, _ = engines
    writers = CommitWriters(shared)
    writers.start()
    writers.stop()
    with pytest.raises(StorageError, match="stopping"):
        writers.for_engine(acme)


async def test_a_deleted_tenants_writer_is_retired_after_finishing_its_jobs(
    engines: tuple[Engine, Engine, Engine],
) -> None:
    shared, acme, initech = engines
    writers = CommitWriters(shared)
    writers.start()
    try:
        acme_writer = writers.for_engine(acme)
        initech_writer = writers.for_engine(initech)
        assert await acme_writer.run(store(1)) == 1
        # initech's writer is kept busy, so job 2 really waits in its queue when the
        # writer is retired.
        release = threading.Event()
        busy = asyncio.ensure_future(initech_writer.run(lambda _c: release.wait(10)))
        queued = asyncio.ensure_future(initech_writer.run(store(2)))
        await asyncio.sleep(0.05)

        retiring = asyncio.ensure_future(asyncio.to_thread(writers.retire_except, lambda: [acme]))
        await asyncio.sleep(0.05)
        release.set()

        assert await retiring == 1
        assert await busy is True
        assert await queued == 2  # what was queued is committed first
        assert stored(initech) == [2]
        with pytest.raises(StorageError, match="closed"):
            await initech_writer.run(store(3))
        assert writers.writers() == [writers.shared, acme_writer]
        assert writers.for_engine(initech) is not initech_writer  # a new one if reopened
        assert await acme_writer.run(store(4)) == 4
    finally:
        writers.stop()
    assert stored(acme) == [1, 4]
