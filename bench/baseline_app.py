"""The baselines of bench/ingest.py, on the same uvicorn settings (event loop, HTTP
parser, one worker) and garbage collection settings as the service.

``/api/v1/alerts/alertmanager``: a bare FastAPI endpoint that only parses the payload.

``/floor/alertmanager``: the same, plus the least a durable answer costs: the body is
inserted into a SQLite table (WAL, synchronous NORMAL, as the service's default) and
the 202 waits for the commit, with the inserts of concurrent requests committed
together by one writer thread. No authentication, model, dedup or routing: what is
left of the bare endpoint's rate once the alert is on disk.
"""

from __future__ import annotations

import asyncio
import gc
import json
import queue
import sqlite3
import tempfile
import threading
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from harness import floor_database, insert_bodies
from slack_tools.service.runner import GC_THRESHOLDS

Waiting = tuple[bytes, asyncio.Future[None], asyncio.AbstractEventLoop]


class Floor:
    """One thread inserting what is queued, one transaction per batch."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Waiting] = queue.SimpleQueue()
        self._directory = tempfile.TemporaryDirectory()
        self._connection = floor_database(Path(self._directory.name) / "floor.db")
        threading.Thread(target=self._run, daemon=True).start()

    async def store(self, body: bytes) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put((body, future, loop))
        await future

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < 256:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            error: BaseException | None = None
            try:
                insert_bodies(self._connection, [body for body, _, _ in batch])
            except sqlite3.Error as exc:  # answered to each request; the thread goes on
                error = exc
            for _, future, loop in batch:
                loop.call_soon_threadsafe(_settle, future, error)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the request went away meanwhile
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


floor = Floor()
app = FastAPI()
# The service's garbage collection settings (slack_tools.service.runner), so that the
# comparison is of the work done per request, not of the collector's.
gc.collect()
gc.freeze()
gc.set_threshold(*GC_THRESHOLDS)


@app.post("/api/v1/alerts/alertmanager")
async def accept(request: Request) -> JSONResponse:
    payload = json.loads(await request.body())
    return JSONResponse({"alerts": len(payload["alerts"])}, status_code=202)


@app.post("/floor/alertmanager")
async def accept_durably(request: Request) -> JSONResponse:
    body = await request.body()
    payload = json.loads(body)
    await floor.store(body)
    return JSONResponse({"alerts": len(payload["alerts"])}, status_code=202)
