"""Group commit: each request gets its own result, a failing write fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from slack_tools.service.writer import GroupCommitWriter
from slack_tools.storage.database import create_engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite file with one table of numbers."""
    engine = create_engine(f"sqlite:///{tmp_path / 'w.sqlite'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE numbers (n INTEGER PRIMARY KEY)")
    yield engine
    engine.dispose()


def insert(n: int) -> sa.TextClause:
    return sa.text("INSERT INTO numbers (n) VALUES (:n)").bindparams(n=n)


def numbered(n: int, *, failing: int | None = None) -> Callable[[sa.Connection], int]:
    """A write job storing ``n`` and returning it; the job numbered ``failing`` raises."""

    def job(connection: sa.Connection) -> int:
        if n == failing:
            raise ValueError("bad write")
        connection.execute(insert(n))
        return n

    return job


def stored(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return [row[0] for row in connection.exec_driver_sql("SELECT n FROM numbers ORDER BY n")]


async def test_concurrent_writes_each_get_their_result_after_a_shared_commit(
    engine: Engine,
) -> None:
    """Many waiting requests are committed in fewer transactions, each answered with its own."""
    writer = GroupCommitWriter(engine)
    writer.start()
    try:
        results = await asyncio.gather(*(writer.run(numbered(n)) for n in range(200)))
    finally:
        writer.stop()

    assert results == list(range(200))
    assert stored(engine) == list(range(200))
    assert writer.jobs == 200
    assert writer.batches < 200


async def test_a_failing_write_fails_alone(engine: Engine) -> None:
    """A write that raises is rolled back and reported to its request; the others commit."""
    writer = GroupCommitWriter(engine)
    writer.start()
    try:
        outcomes: list[int | BaseException] = await asyncio.gather(
            *(writer.run(numbered(n, failing=7)) for n in range(20)), return_exceptions=True
        )
    finally:
        writer.stop()

    assert isinstance(outcomes[7], ValueError)
    assert [o for i, o in enumerate(outcomes) if i != 7] == [n for n in range(20) if n != 7]
    assert stored(engine) == [n for n in range(20) if n != 7]
