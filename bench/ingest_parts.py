"""Where an ingest request's CPU goes: each step alone, in microseconds per request.

    .venv/bin/python bench/ingest_parts.py [--requests 3000] [--repeats 5]

The same Alertmanager payloads of 10 alerts as bench/ingest.py (every one a change of
its group, so none is a duplicate), each step timed alone on this core (process CPU
time, median of the runs):

- decode: ``json.loads`` (what the bare endpoint does) and ``orjson.loads``;
- parse: the body into the ``AlertGroup`` model (fast path), and its state hash;
- store: the writer thread's job for a request (dedup read, group and delivery
  writes, usage), committed by batches of 32 in a SQLite file (WAL, synchronous
  NORMAL), beside the floor's job: the body inserted as one row, same batches.

Read beside bench/ingest.py: at a share of 0.5 of the bare endpoint's rate a request
may cost twice the bare one's CPU; the floor's row already takes part of that, and
these lines say what the model and the dedup write take of the rest. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import floor_database, insert_bodies
from ingest import FLIPS, GROUPS, payload
from slack_tools.alerts.models import Source
from slack_tools.alerts.sources import alertmanager
from slack_tools.service.ingest import _store
from slack_tools.storage import delivery
from slack_tools.storage.database import create_engine, upgrade, write_transaction
from slack_tools.storage.usage import usage_noted

BATCH = 32


def cpu_per_item(run: Callable[[], int], repeats: int) -> float:
    """Median process CPU microseconds per item of ``run`` (which returns its item count)."""
    run()
    samples = []
    for _ in range(repeats):
        started = time.process_time()
        items = run()
        samples.append((time.process_time() - started) / items * 1e6)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--requests", type=int, default=3000, help="rounded up to whole cycles of 1,500"
    )
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    cycle = [payload(group, flip).encode() for flip in range(FLIPS) for group in range(GROUPS)]
    # Whole cycles (each group in each of its states in turn), so that a run's last write
    # of a group and the next run's first differ once the runs are shifted by a state.
    bodies = cycle * max(1, -(-options.requests // len(cycle)))

    def each(step: Callable[[bytes], object]) -> Callable[[], int]:
        def run() -> int:
            for body in bodies:
                step(body)
            return len(bodies)

        return run

    def parsed_with_hash(body: bytes) -> str:
        return alertmanager.parse_fast(body)[0].state_hash

    rows = [
        ("decode: json.loads (the bare endpoint)", each(json.loads)),
        ("decode: orjson.loads", each(orjson.loads)),
        ("parse into the model (orjson included)", each(alertmanager.parse_fast)),
        ("parse + state hash", each(parsed_with_hash)),
    ]
    results = [(name, cpu_per_item(run, options.repeats)) for name, run in rows]

    with tempfile.TemporaryDirectory() as directory:
        engine = create_engine(f"sqlite:///{directory}/parts.db")
        upgrade(engine)
        groups = [alertmanager.parse_fast(body)[0] for body in bodies]
        targets = (delivery.TargetWrite("#bench", "en_US", True),)
        runs = 0
        duplicates = 0

        def store() -> int:
            nonlocal runs, duplicates
            # Each run starts one state further: every write changes its group's state.
            runs += 1
            shift = (runs % FLIPS) * GROUPS
            shifted = groups[shift:] + groups[:shift]
            for start in range(0, len(shifted), BATCH):
                now = datetime.now(UTC)
                jobs = [
                    _store("bench", Source.ALERTMANAGER, [(group, targets)], now)
                    for group in shifted[start : start + BATCH]
                ]
                with write_transaction(engine) as connection, usage_noted(connection):
                    for job in jobs:
                        duplicates += sum(
                            r.outcome is delivery.WriteOutcome.DUPLICATE for r in job(connection)
                        )
            return len(shifted)

        results.append(
            ("store: the writer's job (dedup write)", cpu_per_item(store, options.repeats))
        )
        engine.dispose()
        if duplicates:
            print(f"note: {duplicates} writes were duplicates (measured as cheaper)")

        raw = floor_database(Path(directory) / "floor.db")

        def insert() -> int:
            for start in range(0, len(bodies), BATCH):
                insert_bodies(raw, bodies[start : start + BATCH])
            return len(bodies)

        results.append(("store: the floor's row", cpu_per_item(insert, options.repeats)))
        raw.close()

    print(f"ingest parts: CPU per request, {len(bodies)} requests of 10 alerts")
    for name, micros in results:
        print(f"{name:<44}{micros:>8.1f} us")


if __name__ == "__main__":
    main()
