"""DocumentStore against real databases: versions, check-and-set, history and change polling."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from slack_tools.errors import ConflictError, NotFoundError
from slack_tools.storage import (
    Database,
    DocumentKey,
    DocumentStore,
    Scope,
    create_engine,
    upgrade,
)
from slack_tools.storage.documents import content_hash

TENANT = DocumentKey(Scope.TENANT, "acme")
OTHER_TENANT = DocumentKey(Scope.TENANT, "globex")
USER = DocumentKey(Scope.USER, "acme", "alice")
GLOBAL = DocumentKey(Scope.GLOBAL)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated database on each backend, disposed afterwards."""
    database = Database(create_engine(database_url))
    upgrade(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def store(database: Database) -> DocumentStore:
    """A store over the migrated database."""
    return DocumentStore(database.engine)


def write_versions(store: DocumentStore, key: DocumentKey, count: int) -> None:
    """Append ``count`` versions, each based on the previous one."""
    for number in range(1, count + 1):
        store.append(
            key,
            {"slack_channel": f"#c{number}"},
            expected_version=number - 1,
            author=f"author{number}",
            comment=f"change {number}",
        )


def test_append_numbers_versions_and_records_who_when_and_hash(store: DocumentStore) -> None:
    """Each append stores version n+1 with its author, comment, UTC time and content hash."""
    before = datetime.now(UTC)
    written = [
        store.append(
            TENANT,
            {"slack_channel": f"#c{n}", "quotas": {"alerts_per_minute": n}},
            expected_version=n - 1,
            author=f"author{n}",
            comment=f"change {n}",
        )
        for n in (1, 2, 3)
    ]
    after = datetime.now(UTC)

    assert [v.version for v in written] == [1, 2, 3]
    history = store.history(TENANT)
    assert [v.version for v in history] == [3, 2, 1]
    for stored in history:
        n = stored.version
        assert stored.key == TENANT
        assert stored.content == {"slack_channel": f"#c{n}", "quotas": {"alerts_per_minute": n}}
        assert stored.author == f"author{n}"
        assert stored.comment == f"change {n}"
        assert stored.action == "update"
        assert stored.based_on is None
        assert stored.content_hash == content_hash(stored.content)
        assert stored.created_at.tzinfo is not None
        assert before <= stored.created_at <= after
        assert stored.change_id == written[n - 1].change_id
    current = store.current(TENANT)
    assert current is not None
    assert current.version == 3
    assert store.version(TENANT, 2).content["slack_channel"] == "#c2"


def test_content_hash_ignores_key_order() -> None:
    """Two contents with the same keys and values hash alike, whatever their order."""
    assert content_hash({"a": 1, "b": {"c": 2, "d": 3}}) == content_hash(
        {"b": {"d": 3, "c": 2}, "a": 1}
    )
    assert content_hash({"a": 1}) != content_hash({"a": 2})


def test_append_keeps_action_and_based_on(store: DocumentStore) -> None:
    """A rollback-style append stores its action and the version it restores."""
    write_versions(store, TENANT, 2)
    restored = store.append(
        TENANT,
        store.version(TENANT, 1).content,
        expected_version=2,
        author="ops",
        action="rollback",
        based_on=1,
    )
    stored = store.version(TENANT, 3)
    assert (restored.action, restored.based_on) == ("rollback", 1)
    assert (stored.action, stored.based_on) == ("rollback", 1)
    assert stored.content == store.version(TENANT, 1).content


@pytest.mark.parametrize(
    ("written", "expected_version"),
    [
        (0, 1),  # the document does not exist yet
        (1, 0),  # "must not exist" but it does
        (2, 1),  # based on an old version
        (2, 3),  # based on a version from the future
    ],
)
def test_stale_expected_version_is_refused_and_writes_nothing(
    store: DocumentStore, written: int, expected_version: int
) -> None:
    """An append whose expected_version is not the current version raises ConflictError."""
    write_versions(store, TENANT, written)
    history_before = store.history(TENANT)
    versions_before = store.current_versions()

    with pytest.raises(ConflictError, match="changed since version"):
        store.append(
            TENANT, {"slack_channel": "#late"}, expected_version=expected_version, author="late"
        )

    assert store.history(TENANT) == history_before
    assert store.current_versions() == versions_before


@pytest.mark.parametrize("based_on", [0, 1], ids=["create", "update"])
def test_concurrent_writers_on_the_same_version_only_one_wins(
    store: DocumentStore, based_on: int
) -> None:
    """Writers in several threads based on the same version: exactly one succeeds."""
    write_versions(store, TENANT, based_on)
    writers = 6
    barrier = threading.Barrier(writers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def write(number: int) -> None:
        barrier.wait()
        try:
            store.append(
                TENANT,
                {"slack_channel": f"#w{number}"},
                expected_version=based_on,
                author=f"writer{number}",
            )
        except ConflictError:
            result = "conflict"
        else:
            result = f"won:{number}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [o for o in outcomes if o.startswith("won:")]
    assert len(outcomes) == writers
    assert len(winners) == 1
    assert outcomes.count("conflict") == writers - 1
    history = store.history(TENANT)
    assert [v.version for v in history] == list(range(based_on + 1, 0, -1))
    winner = winners[0].removeprefix("won:")
    assert history[0].author == f"writer{winner}"
    assert history[0].content == {"slack_channel": f"#w{winner}"}


@pytest.mark.parametrize(
    ("key", "version"),
    [(TENANT, 3), (TENANT, 0), (OTHER_TENANT, 1), (USER, 1), (GLOBAL, 1)],
)
def test_unknown_version_is_not_found(store: DocumentStore, key: DocumentKey, version: int) -> None:
    """Asking for a version that was never written raises NotFoundError naming the document."""
    write_versions(store, TENANT, 2)
    with pytest.raises(NotFoundError, match=f"{key.label} has no version {version}"):
        store.version(key, version)


def test_never_written_document_has_no_current_and_no_history(store: DocumentStore) -> None:
    """A document nobody wrote has no current version and an empty history."""
    assert store.current(TENANT) is None
    assert store.history(TENANT) == []


def test_documents_are_kept_apart(store: DocumentStore) -> None:
    """Versions of one document never show up in another's history, even for the same tenant."""
    write_versions(store, TENANT, 2)
    store.append(USER, {"locale": "de_DE"}, expected_version=0, author="alice")
    store.append(GLOBAL, {"slack": {"default_channel": "#g"}}, expected_version=0, author="ops")

    assert [v.version for v in store.history(USER)] == [1]
    assert [v.content for v in store.history(GLOBAL)] == [{"slack": {"default_channel": "#g"}}]
    assert len(store.history(TENANT)) == 2
    assert store.documents() == [GLOBAL, TENANT, USER]
    assert store.documents(Scope.TENANT) == [TENANT]
    assert store.documents(tenant_id="acme") == [TENANT, USER]


def test_current_versions_lists_each_document_once(store: DocumentStore) -> None:
    """current_versions maps every document to its current version."""
    assert store.current_versions() == {}
    store.append(TENANT, {"slack_channel": "#a"}, expected_version=0, author="a")
    store.append(TENANT, {"slack_channel": "#b"}, expected_version=1, author="a")
    store.append(USER, {"locale": "de_DE"}, expected_version=0, author="a")
    assert store.current_versions() == {TENANT: 2, USER: 1}


def test_current_versions_since_a_time(store: DocumentStore) -> None:
    """Only documents updated at or after the given time are listed."""
    store.append(TENANT, {"slack_channel": "#a"}, expected_version=0, author="a")
    mark = datetime.now(UTC)
    store.append(USER, {"locale": "de_DE"}, expected_version=0, author="a")
    assert store.current_versions(updated_since=mark) == {USER: 1}
    assert store.current_versions(updated_since=mark + timedelta(hours=1)) == {}


def test_refused_write_changes_no_version(store: DocumentStore) -> None:
    """A conflicting append leaves every document at its version."""
    write_versions(store, TENANT, 1)
    with pytest.raises(ConflictError):
        store.append(TENANT, {"slack_channel": "#x"}, expected_version=0, author="x")
    assert store.current_versions() == {TENANT: 1}


def test_for_scope_needs_a_tenant_for_a_user() -> None:
    """A user document without its tenant cannot be named."""
    with pytest.raises(ValueError, match="belongs to a tenant"):
        DocumentKey.for_scope(user_id="alice")


@pytest.mark.parametrize(
    ("tenant_id", "user_id", "expected"),
    [(None, None, GLOBAL), ("acme", None, TENANT), ("acme", "alice", USER)],
)
def test_for_scope_picks_the_scope(
    tenant_id: str | None, user_id: str | None, expected: DocumentKey
) -> None:
    """for_scope names the global, tenant or user document from the ids given."""
    assert DocumentKey.for_scope(tenant_id, user_id) == expected
