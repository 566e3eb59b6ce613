"""Shared fixtures: environments, master keys, real databases, and the no-secret check."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from slack_tools.configs import ConfigRuntime, set_default_runtime
from slack_tools.configs.config_loader import read_environment
from slack_tools.configs.security import generate_key
from slack_tools.service.container import known_secrets
from slack_tools.storage import Database, create_engine
from tests.leaks import SecretGuard, secret_guard

__all__ = ["secret_guard"]  # the autouse guard, collected through this module

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_URL = os.environ.get(
    "SLACK_TOOLS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SLACK_TOOLS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def pytest_addoption(parser: pytest.Parser) -> None:
    """--update-golden: the one way to rewrite the reviewed snapshots (tests/golden)."""
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="Rewrite the reviewed message snapshots in tests/golden instead of comparing them "
        "(python3 dev.py golden); refused when CI is set.",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Refuse --update-golden under CI: CI compares snapshots, it never rewrites them."""
    if config.getoption("--update-golden") and IN_CI:
        raise pytest.UsageError(
            "--update-golden rewrites the reviewed snapshots in tests/golden and is refused "
            "when CI is set: run `python3 dev.py golden` on your machine, review "
            "`git diff tests/golden` and commit the snapshots."
        )


def unavailable(service: str, reason: str) -> None:
    """Skip outside CI; under CI a missing service is a failure, never a silent skip."""
    message = f"{service} unreachable ({reason})"
    if IN_CI:
        pytest.fail(f"{message}: CI requires it", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def master_keys(secret_guard: SecretGuard) -> str:
    """SLACK_TOOLS_MASTER_KEYS with one fresh active key (tracked by the secret guard)."""
    key = generate_key()
    secret_guard.track(key)
    return f"k1:{key}"


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    """A clean process environment: dev, data in a temporary directory, nothing else."""
    return {"SLACK_TOOLS_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty schema on the real PostgreSQL, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        unavailable("PostgreSQL", str(exc.orig).splitlines()[0] if exc.orig else str(exc))
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend in turn: a SQLite file, then a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def strict_url(database_url: str) -> Iterator[Callable[[str], str | None]]:
    """A database for a strict tenant: None on SQLite (the default file under the data
    directory), else a new PostgreSQL database on the test server, dropped afterwards."""
    made: list[str] = []

    def make(tenant_id: str) -> str | None:
        if database_url.startswith("sqlite"):
            return None
        name = f"st_strict_{tenant_id}_{uuid.uuid4().hex[:10]}"
        made.append(name)
        return make_url(POSTGRES_URL).set(database=name, query={}).render_as_string()

    yield make
    if made:
        server = sa.create_engine(
            make_url(POSTGRES_URL).set(database="postgres", query={}),
            isolation_level="AUTOCOMMIT",
            poolclass=sa.NullPool,
        )
        with server.connect() as connection:
            for name in made:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.dispose()


@pytest.fixture
def make_runtime(
    environ: dict[str, str], secret_guard: SecretGuard
) -> Iterator[Callable[..., ConfigRuntime]]:
    """Build and start runtimes over given files, variables and database; disposed afterwards."""
    made: list[ConfigRuntime] = []

    def build(
        files: list[Path] | None = None,
        extra: dict[str, str] | None = None,
        database_url: str | None = None,
        **options: Any,
    ) -> ConfigRuntime:
        variables = {**environ, **(extra or {})}
        database = Database(create_engine(database_url)) if database_url else None
        runtime = ConfigRuntime(
            read_environment(variables),
            files=files or [],
            database=database,
            migrate=True,
            **options,
        )
        runtime.start()
        made.append(runtime)
        secret_guard.track(*known_secrets(runtime))
        return runtime

    yield build
    for runtime in made:
        runtime.close()
    set_default_runtime(None)


def assert_no_secret(text: str, *secrets: str) -> None:
    """Fail if any secret value appears in ``text`` (errors, logs, output, audit entries)."""
    for secret in secrets:
        assert secret not in text, f"a secret value leaked into: {text[:200]!r}"
