"""Hot reload: a watched operator file, SIGHUP-style reloads, and writes seen in the database."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from slack_tools.configs import ConfigChange, ConfigManager, ConfigRuntime
from slack_tools.configs.hot_reload import ConfigWatcher
from slack_tools.storage import DocumentKey, Scope
from tests.helpers import assert_no_secret

MakeRuntime = Callable[..., ConfigRuntime]

BOT_TOKEN = "xoxb-4444444444-hot-reload-token-never-logged"
DEBOUNCE = 0.05
DEADLINE = 20.0  # generous: only a broken watcher ever waits this long
GLOBAL = DocumentKey(Scope.GLOBAL)
ACME = DocumentKey.for_scope("acme")

VALID = '# operator settings\nslack:\n  default_channel: "{channel}"\n'

INVALID = [
    # (id, text, error location, words in the message)
    (
        "syntax",
        f'slack:\n  default_channel: "#x"\n  bot_token: [{BOT_TOKEN}\nserver:\n  port: 1\n',
        ":4:7: ",
        "expected ','",
    ),
    (
        "duplicate",
        'slack:\n  default_channel: "#x"\n  default_channel: "#y"\n',
        ":3:3: ",
        "duplicate key 'default_channel'",
    ),
    (
        "bad-channel",
        f'# edited\nslack:\n  default_channel: "{BOT_TOKEN}"\n',
        ":3:3: slack.default_channel: ",
        "expected a channel name",
    ),
    (
        "out-of-range",
        'slack:\n  default_channel: "#x"\nserver:\n  port: 99999\n',
        ":4:3: server.port: ",
        "65535",
    ),
    ("not-a-mapping", "- slack\n- server\n", ":1:1: ", "must be a mapping"),
]


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` whole, as editors and Kubernetes do, so no half-written file is seen."""
    staging = path.parent.parent / f"{path.name}.staging"
    staging.write_text(text)
    staging.replace(path)


async def eventually(
    predicate: Callable[[], bool], *, nudge: Path | None = None, what: str = "condition"
) -> None:
    """Wait until ``predicate`` holds; touching ``nudge`` now and then covers a watcher that
    started after the edit. Fails only after a deadline far beyond any normal reload."""
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    next_nudge = loop.time() + 0.5
    while not predicate():
        now = loop.time()
        if now > end:
            pytest.fail(f"timed out waiting for {what}")
        if nudge is not None and now > next_nudge:
            os.utime(nudge)
            next_nudge = now + 0.5
        await asyncio.sleep(0.02)


def logged_text(logs: list[MutableMapping[str, Any]]) -> str:
    """Every captured log entry, one per line, as it would be rendered."""
    return "\n".join(repr(entry) for entry in logs)


@dataclass
class Watched:
    """A runtime over one operator file, its running watcher, and what it reported."""

    runtime: ConfigRuntime
    watcher: ConfigWatcher
    file: Path
    secrets: tuple[str, ...]
    logs: list[MutableMapping[str, Any]]
    changes: list[ConfigChange] = field(default_factory=list)

    def assert_no_secret_anywhere(self) -> None:
        """No token or key in the logs, the reload status or the change notifications."""
        text = "\n".join(
            [
                logged_text(self.logs),
                repr(self.runtime.status),
                *self.runtime.status.errors,
                repr(self.changes),
            ]
        )
        assert_no_secret(text, *self.secrets)


@pytest.fixture
def database_file(tmp_path: Path) -> str:
    """One SQLite database shared by every instance of a test."""
    return f"sqlite:///{tmp_path / 'hot.db'}"


@pytest.fixture
def reload_environ(master_keys: str) -> dict[str, str]:
    """Variables carrying secrets that must never reach a log line."""
    return {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_TOOLS_MASTER_KEYS": master_keys}


@pytest.fixture
def secrets(master_keys: str) -> tuple[str, ...]:
    """The values that must never appear: the bot token and the master key."""
    return (BOT_TOKEN, master_keys, master_keys.split(":", 1)[1])


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every structured log entry emitted during the test, threads included."""
    with capture_logs() as captured:
        yield captured


@pytest.fixture
def operator_file(tmp_path: Path) -> Path:
    """The operator's file, alone in its own directory."""
    directory = tmp_path / "conf"
    directory.mkdir()
    path = directory / "slack-tools.yaml"
    path.write_text(VALID.format(channel="#before"))
    return path


@pytest.fixture
async def watched(
    logs: list[MutableMapping[str, Any]],
    make_runtime: MakeRuntime,
    database_file: str,
    operator_file: Path,
    reload_environ: dict[str, str],
    secrets: tuple[str, ...],
) -> AsyncIterator[Watched]:
    """A runtime with a ConfigWatcher running in the background until the test ends."""
    runtime = make_runtime(files=[operator_file], extra=reload_environ, database_url=database_file)
    watcher = ConfigWatcher(
        runtime, [operator_file], debounce_seconds=DEBOUNCE, poll_database_seconds=DEBOUNCE
    )
    state = Watched(runtime, watcher, operator_file, secrets, logs)
    runtime.on_change(state.changes.append)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    yield state
    stop.set()
    await asyncio.wait_for(task, timeout=DEADLINE)


@pytest.mark.parametrize("in_place", [False, True], ids=["replaced", "edited-in-place"])
async def test_valid_edit_is_applied_and_subscribers_told(watched: Watched, in_place: bool) -> None:
    """Changing the watched file to a valid configuration swaps it in and calls on_change."""
    runtime, before = watched.runtime, watched.runtime.config
    assert before.slack.default_channel == "#before"

    text = VALID.format(channel="#after")
    if in_place:
        watched.file.write_text(text)
    else:
        write_atomically(watched.file, text)
    await eventually(
        lambda: runtime.config.slack.default_channel == "#after",
        nudge=watched.file,
        what="the edit to be applied",
    )

    assert before.slack.default_channel == "#before"
    assert runtime.status.outcome == "applied"
    assert runtime.status.trigger == "file"
    assert runtime.reload_counts[("file", "applied")] >= 1
    last = watched.changes[-1]
    assert last.trigger == "file"
    assert last.current is runtime.config
    assert last.current.slack.default_channel == "#after"
    assert any(entry["event"] == "config.reloaded" for entry in watched.logs)
    watched.assert_no_secret_anywhere()


@pytest.mark.parametrize(
    ("text", "location", "message"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
async def test_invalid_edit_is_rejected_until_fixed(
    watched: Watched, text: str, location: str, message: str
) -> None:
    """An invalid file is rejected with file:line errors, the old config keeps serving, and a
    fixed file is applied again."""
    runtime = watched.runtime
    serving = runtime.config

    write_atomically(watched.file, text)
    await eventually(
        lambda: runtime.status.outcome == "rejected",
        nudge=watched.file,
        what="the invalid file to be rejected",
    )

    status = runtime.status
    assert status.trigger == "file"
    assert any(
        error.startswith(f"{watched.file}{location}") and message in error
        for error in status.errors
    ), status.errors
    assert runtime.config is serving
    assert runtime.config.slack.default_channel == "#before"
    assert status.active_hash == runtime.snapshot.loaded.content_hash
    assert watched.changes == []
    assert runtime.reload_counts[("file", "rejected")] == 1
    rejected = [e for e in watched.logs if e["event"] == "config.reload_rejected"]
    assert rejected
    assert rejected[0]["log_level"] == "error"
    assert list(status.errors) == rejected[-1]["errors"]

    write_atomically(watched.file, VALID.format(channel="#fixed"))
    await eventually(
        lambda: runtime.config.slack.default_channel == "#fixed",
        nudge=watched.file,
        what="the fixed file to be applied",
    )
    assert runtime.status.outcome == "applied"
    assert runtime.status.errors == ()
    assert [c.current.slack.default_channel for c in watched.changes] == ["#fixed"]
    watched.assert_no_secret_anywhere()


async def test_touching_without_changing_content_does_not_reload(watched: Watched) -> None:
    """A file event that leaves the content as it was costs no reload."""
    runtime = watched.runtime
    write_atomically(watched.file, VALID.format(channel="#settled"))
    await eventually(
        lambda: runtime.config.slack.default_channel == "#settled",
        nudge=watched.file,
        what="the first edit to be applied",
    )
    counts = Counter(runtime.reload_counts)
    notified = len(watched.changes)
    serving = runtime.config

    os.utime(watched.file)
    watched.file.write_bytes(watched.file.read_bytes())
    write_atomically(watched.file, watched.file.read_text())
    await asyncio.sleep(DEBOUNCE * 20)  # room for the events to arrive; nothing may follow them

    assert runtime.reload_counts == counts
    assert len(watched.changes) == notified
    assert runtime.config is serving
    assert await watched.watcher.check_files() is False

    write_atomically(watched.file, VALID.format(channel="#later"))
    await eventually(
        lambda: runtime.config.slack.default_channel == "#later",
        nudge=watched.file,
        what="the next edit to be applied",
    )
    assert runtime.reload_counts == counts + Counter({("file", "applied"): 1})
    watched.assert_no_secret_anywhere()


async def test_watcher_picks_up_another_instances_write(
    watched: Watched,
    make_runtime: MakeRuntime,
    database_file: str,
    reload_environ: dict[str, str],
) -> None:
    """The watcher's database poll applies a global override written by another instance."""
    other = make_runtime(extra=reload_environ, database_url=database_file)
    ConfigManager(other).update_global(
        {"slack": {"default_channel": "#from-other"}}, author="other"
    )
    runtime = watched.runtime
    await eventually(
        lambda: runtime.config.slack.default_channel == "#from-other",
        what="the other instance's write to be applied",
    )
    assert runtime.status.trigger == "database"
    assert watched.changes[-1].documents == (GLOBAL,)
    watched.assert_no_secret_anywhere()


def test_reload_on_signal(
    logs: list[MutableMapping[str, Any]],
    make_runtime: MakeRuntime,
    database_file: str,
    operator_file: Path,
    reload_environ: dict[str, str],
    secrets: tuple[str, ...],
) -> None:
    """reload("signal") applies a changed file once, reports unchanged after, rejects bad files."""
    runtime = make_runtime(files=[operator_file], extra=reload_environ, database_url=database_file)
    changes: list[ConfigChange] = []
    runtime.on_change(changes.append)

    operator_file.write_text(VALID.format(channel="#signalled"))
    status = runtime.reload("signal")
    assert (status.outcome, status.trigger) == ("applied", "signal")
    assert runtime.config.slack.default_channel == "#signalled"
    assert [c.trigger for c in changes] == ["signal"]

    again = runtime.reload("signal")
    assert again.outcome == "unchanged"
    assert again.active_hash == status.active_hash
    assert len(changes) == 1

    serving = runtime.config
    operator_file.write_text(INVALID[2][1])
    rejected = runtime.reload("signal")
    assert rejected.outcome == "rejected"
    assert any(e.startswith(f"{operator_file}:3:3: slack.default_channel") for e in rejected.errors)
    assert runtime.config is serving
    assert len(changes) == 1
    assert runtime.reload_counts == Counter(
        {
            ("start", "applied"): 1,
            ("signal", "applied"): 1,
            ("signal", "unchanged"): 1,
            ("signal", "rejected"): 1,
        }
    )
    assert_no_secret(logged_text(logs) + repr(rejected), *secrets)


# --- invalid global overrides written by another instance --------------------------------


@pytest.fixture
def two_instances(
    make_runtime: MakeRuntime,
    database_file: str,
    operator_file: Path,
    reload_environ: dict[str, str],
) -> tuple[ConfigRuntime, ConfigRuntime]:
    """This instance and another one on the same database."""
    return (
        make_runtime(files=[operator_file], extra=reload_environ, database_url=database_file),
        make_runtime(extra=reload_environ, database_url=database_file),
    )


def write_invalid_global(other: ConfigRuntime, expected_version: int = 0) -> None:
    """What an older or misconfigured instance might store: a value this one cannot accept."""
    other.store.append(
        GLOBAL,
        {"slack": {"default_channel": BOT_TOKEN}},
        expected_version=expected_version,
        author="other-instance",
    )


def test_invalid_global_from_another_instance_is_rejected(
    logs: list[MutableMapping[str, Any]],
    two_instances: tuple[ConfigRuntime, ConfigRuntime],
    secrets: tuple[str, ...],
) -> None:
    """An invalid global document seen on refresh is rejected; the old config keeps serving."""
    runtime, other = two_instances
    serving = runtime.config
    changes: list[ConfigChange] = []
    runtime.on_change(changes.append)

    write_invalid_global(other)
    assert runtime.refresh_from_database() == (GLOBAL,)

    status = runtime.status
    assert (status.outcome, status.trigger) == ("rejected", "database")
    assert any(
        "global overrides, version 1 by other-instance" in e and "slack.default_channel" in e
        for e in status.errors
    ), status.errors
    assert runtime.config is serving
    assert runtime.config.slack.default_channel == "#before"
    assert changes == []
    assert any(e["event"] == "config.reload_rejected" for e in logs)

    ConfigManager(other).update_global({"slack": {"default_channel": "#repaired"}})
    assert runtime.refresh_from_database() == (GLOBAL,)
    assert runtime.status.outcome == "applied"
    assert runtime.config.slack.default_channel == "#repaired"
    assert len(changes) == 1
    assert_no_secret(logged_text(logs) + repr(status) + repr(runtime.status), *secrets)


def test_start_serves_without_invalid_global_overrides(
    logs: list[MutableMapping[str, Any]],
    make_runtime: MakeRuntime,
    database_file: str,
    operator_file: Path,
    reload_environ: dict[str, str],
    secrets: tuple[str, ...],
) -> None:
    """An instance starting over an invalid global document serves files and variables alone."""
    other = make_runtime(extra=reload_environ, database_url=database_file)
    write_invalid_global(other)

    runtime = make_runtime(files=[operator_file], extra=reload_environ, database_url=database_file)
    assert runtime.config.slack.default_channel == "#before"
    assert (runtime.status.outcome, runtime.status.trigger) == ("rejected", "start")
    assert any("slack.default_channel" in e for e in runtime.status.errors)
    assert any(e["event"] == "config.global_overrides_invalid" for e in logs)
    assert_no_secret(logged_text(logs) + repr(runtime.status), *secrets)


def test_tenant_change_in_the_same_poll_as_an_invalid_global_still_applies(
    two_instances: tuple[ConfigRuntime, ConfigRuntime],
) -> None:
    """A rejected global document does not hide a tenant change seen in the same refresh."""
    runtime, other = two_instances
    ConfigManager(other).update_tenant_config("acme", {"slack_channel": "#one"})
    runtime.refresh_from_database()
    assert runtime.effective("acme").tenant.slack_channel == "#one"
    changes: list[ConfigChange] = []
    runtime.on_change(changes.append)

    ConfigManager(other).update_tenant_config("acme", {"slack_channel": "#two"})
    write_invalid_global(other)
    runtime.refresh_from_database()

    assert runtime.status.outcome == "rejected"
    assert runtime.effective("acme").tenant.slack_channel == "#two"
    assert [ACME in c.documents for c in changes] == [True]
