"""Hot reload: watch the configuration files and poll the database, reload on change.

Directories are watched rather than files because Kubernetes swaps a ConfigMap
by replacing a symlink in the directory (a watch on the old file never fires).
Events are debounced, and a reload happens only when the files' content hash
changed, so editors that write twice or touch without changing cost nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog
from watchfiles import awatch

from slack_tools.configs.config_loader import expand_paths
from slack_tools.configs.runtime import ConfigRuntime
from slack_tools.errors import SlackToolsError, StorageError

log = structlog.get_logger(__name__)


def files_fingerprint(paths: Sequence[Path]) -> str:
    """Hash of the names and contents of every configuration file under ``paths``."""
    digest = hashlib.sha256()
    files, _ = expand_paths(paths)
    for path in files:
        digest.update(str(path).encode())
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
    return digest.hexdigest()


class ConfigWatcher:
    """Reloads ``runtime`` when its files change or another instance writes a document."""

    def __init__(
        self,
        runtime: ConfigRuntime,
        paths: Sequence[Path],
        *,
        debounce_seconds: float,
        poll_database_seconds: float,
        watch_files: bool = True,
    ) -> None:
        self.runtime = runtime
        self.paths = tuple(paths)
        self.debounce_seconds = debounce_seconds
        self.poll_database_seconds = poll_database_seconds
        self.watch_files = watch_files and bool(paths)
        self._fingerprint = files_fingerprint(self.paths)
        self._looking = asyncio.Lock()

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop`` is set."""
        tasks = [asyncio.create_task(self._poll_database(stop))]
        if self.watch_files:
            tasks.append(asyncio.create_task(self._watch_files(stop)))
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def check_files(self, trigger: str = "file") -> bool:
        """Reload if the files' content changed since the last look; True if it reloaded."""
        # The file watch and the poll both look; one look at a time, or both would reload.
        async with self._looking:
            fingerprint = await asyncio.to_thread(files_fingerprint, self.paths)
            if fingerprint == self._fingerprint:
                return False
            status = await asyncio.to_thread(self.runtime.reload, trigger)
            # Invalid content is not tried again until it changes; a passing failure
            # (database unreachable) is, at the next look.
            if not (status.outcome == "rejected" and status.retryable):
                self._fingerprint = fingerprint
            return True

    async def _watch_files(self, stop: asyncio.Event) -> None:
        directories = sorted({p if p.is_dir() else p.parent for p in self.paths})
        existing = [d for d in directories if d.exists()]
        if not existing:
            return
        debounce_ms = max(int(self.debounce_seconds * 1000), 1)
        async for _changes in awatch(
            *existing, debounce=debounce_ms, stop_event=stop, recursive=False
        ):
            try:
                await self.check_files()
            except Exception:  # the watcher must outlive any single bad reload
                log.exception("config.watch_failed")

    async def _poll_database(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll_database_seconds)
            if stop.is_set():
                return
            try:
                await asyncio.to_thread(self.runtime.refresh_from_database)
                if self.watch_files:
                    # Also a safety net where file events are not delivered (NFS, some mounts).
                    await self.check_files()
            except StorageError as exc:
                log.warning("config.poll_failed", error=str(exc))


def tree_fingerprint(directories: Sequence[Path], suffixes: tuple[str, ...]) -> str:
    """Hash of the names and contents of the files ending in ``suffixes`` under ``directories``."""
    digest = hashlib.sha256()
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in sorted(directory.rglob("*")):
            if path.suffix not in suffixes or not path.is_file():
                continue
            digest.update(str(path).encode())
            try:
                digest.update(path.read_bytes())
            except OSError:
                digest.update(b"<unreadable>")
    return digest.hexdigest()


class TreeWatcher:
    """Calls ``reload`` when the files under some directories change (catalogs, templates).

    ``reload`` keeps what is loaded for a file it refuses (a half-edited ``.po``
    must not take the translations away from a running service) and returns the
    refused files; it logs them with their line itself.
    """

    def __init__(
        self,
        name: str,
        directories: Sequence[Path],
        reload: Callable[[], Sequence[object]],
        *,
        suffixes: tuple[str, ...],
        debounce_seconds: float,
        poll_seconds: float,
    ) -> None:
        self.name = name
        self.directories = tuple(d for d in directories if d.is_dir())
        self.reload = reload
        self.suffixes = suffixes
        self.debounce_seconds = debounce_seconds
        self.poll_seconds = poll_seconds
        self._fingerprint = tree_fingerprint(self.directories, suffixes)
        self._looking = asyncio.Lock()

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop`` is set."""
        if not self.directories:
            return
        tasks = [
            asyncio.create_task(self._watch(stop)),
            # A safety net where file events are not delivered (NFS, some mounts).
            asyncio.create_task(self._poll(stop)),
        ]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def check(self) -> bool:
        """Reload if the files changed since the last look; True if it reloaded."""
        async with self._looking:
            fingerprint = await asyncio.to_thread(tree_fingerprint, self.directories, self.suffixes)
            if fingerprint == self._fingerprint:
                return False
            # Whatever happens, this content is not tried again until it changes.
            self._fingerprint = fingerprint
            try:
                refused = await asyncio.to_thread(self.reload)
            except SlackToolsError as exc:  # what is loaded stays; say why the files were refused
                log.error("reload.failed", what=self.name, error=str(exc))
                return False
            log.info("reload.done", what=self.name, refused=len(refused))
            return True

    async def _watch(self, stop: asyncio.Event) -> None:
        debounce_ms = max(int(self.debounce_seconds * 1000), 1)
        async for _changes in awatch(*self.directories, debounce=debounce_ms, stop_event=stop):
            await self.check()

    async def _poll(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll_seconds)
            if not stop.is_set():
                await self.check()
