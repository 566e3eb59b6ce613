"""``slack-tools serve``: start the configuration, the HTTP server and the background work."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # uvicorn[standard]

from slack_tools.configs import ConfigRuntime, set_default_runtime
from slack_tools.service.app import create_app
from slack_tools.service.container import Service, build_service, known_secrets
from slack_tools.service.logging import configure_logging

log = structlog.get_logger(__name__)


class _Server(uvicorn.Server):
    """uvicorn's server, telling the service to stop claiming work as soon as a stop is asked.

    uvicorn runs the application's shutdown only after it has drained HTTP requests, which
    can take the whole grace period; the dispatcher must not go on sending meanwhile.
    """

    def __init__(self, service: Service, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._service = service

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        try:
            asyncio.get_running_loop().call_soon_threadsafe(self._service.begin_stopping)
        except RuntimeError:  # no loop running: nothing is being claimed either
            self._service.begin_stopping()
        super().handle_exit(sig, frame)


class _CoalescingTransport:
    """A transport that sends what is written in one turn of the event loop in one call.

    uvicorn writes a response's head and its body separately, and uvloop sends each
    at once: two system calls and two TCP segments for every small answer, about a
    sixth of the event loop's time per alert request (bench/ingest.py --profile).
    Writes are instead gathered and sent at the end of the loop's turn; closing
    sends what is gathered first. Everything else is the wrapped transport's.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through a ``_CoalescingTransport``.

    At module level, so that uvicorn can hand it to worker processes.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing = _CoalescingTransport(transport, asyncio.get_running_loop())
        super().connection_made(coalescing)  # type: ignore[arg-type]


# Each alert request allocates a few hundred containers: at CPython's default gen-0
# threshold (700) that is a collection every request or two, and every few hundred
# requests a full one walking the whole heap. With these thresholds bench/ingest.py
# takes about an eighth less CPU per request and its p99 falls from ~95 to ~40 ms; a full
# collection still comes every few thousand requests (a 60 s run keeps RSS at 137 MB).
GC_THRESHOLDS = (20_000, 10, 10)


def _settle_memory() -> None:
    """Once the service is built (configuration, application, caches): that lives as
    long as the process, so full collections leave it out (frozen), and collections
    come less often. What the lifespan starts later is collected as usual."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (uvicorn[standard] brings it), asyncio's loop elsewhere."""
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def worker_app() -> FastAPI:
    """The application of one worker process (``server.workers`` > 1): its own instance."""
    runtime = ConfigRuntime.from_environ()
    runtime.start()
    config = runtime.config
    configure_logging(
        config.monitoring.log_level, config.monitoring.log_format, secrets=known_secrets(runtime)
    )
    set_default_runtime(runtime)
    app = create_app(build_service(runtime, port=config.server.port))
    _settle_memory()
    return app


def serve_workers(runtime: ConfigRuntime, host: str, port: int) -> None:
    """Several worker processes under uvicorn's supervisor; SIGHUP restarts them gracefully."""
    config = runtime.config
    configure_logging(
        config.monitoring.log_level, config.monitoring.log_format, secrets=known_secrets(runtime)
    )
    log.info(
        "service.starting",
        environment=config.environment.value,
        workers=config.server.workers,
        address=f"http://{host}:{port}",
    )
    uvicorn.run(
        "slack_tools.service.runner:worker_app",
        factory=True,
        host=host,
        port=port,
        workers=config.server.workers,
        http=CoalescingHttpToolsProtocol,
        log_config=None,
        access_log=config.server.access_log,
        timeout_graceful_shutdown=int(config.server.graceful_shutdown_seconds),
        server_header=False,
    )


def serve(runtime: ConfigRuntime, *, host: str | None = None, port: int | None = None) -> None:
    """Run until SIGINT/SIGTERM; SIGHUP reloads the configuration."""
    # The event loop shares the interpreter with the group-commit writer thread; a shorter
    # switch interval than the default 5 ms keeps the loop answering while the writer works.
    sys.setswitchinterval(0.0005)
    config = runtime.config
    if config.server.workers > 1:
        serve_workers(runtime, host or config.server.host, port or config.server.port)
        return
    configure_logging(
        config.monitoring.log_level, config.monitoring.log_format, secrets=known_secrets(runtime)
    )
    set_default_runtime(runtime)
    port = port or config.server.port
    service = build_service(runtime, port=port)
    app = create_app(service)
    _settle_memory()
    server = _Server(
        service,
        uvicorn.Config(
            app,
            host=host or config.server.host,
            port=port,
            http=CoalescingHttpToolsProtocol,
            log_config=None,
            access_log=config.server.access_log,
            timeout_graceful_shutdown=int(config.server.graceful_shutdown_seconds),
            server_header=False,
        ),
    )

    stopped_by: list[int] = []

    def remember(signum: int, _frame: object) -> None:
        stopped_by.append(signum)

    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the
    # handler that was in place before it started; this one records it, so that a
    # requested stop ends with exit status 0 instead of "killed by SIGTERM".
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, remember)

    reloads: set[asyncio.Task[object]] = set()  # keeps each SIGHUP reload alive until done

    def reload_on_signal() -> None:
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(runtime.reload, "signal"))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, reload_on_signal)
        log.info(
            "service.starting",
            environment=config.environment.value,
            database=service.database.safe_url,
            address=f"http://{server.config.host}:{server.config.port}",
            warnings=len(runtime.snapshot.loaded.warnings),
        )
        await server.serve()

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())
    log.info("service.stopped", signal=signal.Signals(stopped_by[0]).name if stopped_by else None)
