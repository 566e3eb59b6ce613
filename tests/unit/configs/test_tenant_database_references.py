"""Tenant database references: what may be stored in the registry, and where it points."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from slack_tools.configs.schema import TenantsConfig
from slack_tools.errors import StorageError
from slack_tools.storage.tenant_databases import (
    check_reference,
    resolve_reference,
    tenant_reference,
)

TENANT_IDS = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,40}", fullmatch=True)


@given(TENANT_IDS)
def test_the_default_reference_is_a_file_of_the_tenant_under_the_data_directory(
    tenant_id: str,
) -> None:
    reference = tenant_reference(TenantsConfig().strict_database_url, tenant_id)
    resolved = make_url(resolve_reference(reference, "/srv/slack-tools"))
    assert resolved.get_backend_name() == "sqlite"
    assert resolved.database == f"/srv/slack-tools/tenants/{tenant_id}.db"


def test_an_absolute_sqlite_path_and_a_postgres_url_are_kept_as_given(tmp_path: Path) -> None:
    absolute = f"sqlite:///{tmp_path}/acme.db"
    assert make_url(resolve_reference(absolute, "/elsewhere")).database == f"{tmp_path}/acme.db"
    postgres = "postgresql://db.example:5432/slack_tools_acme"
    assert resolve_reference(postgres, "/elsewhere") == postgres


def test_a_template_names_the_tenant() -> None:
    template = "postgresql://db.example/slack_tools_{tenant}"
    assert tenant_reference(template, "acme") == "postgresql://db.example/slack_tools_acme"


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ("postgresql://user:hunter2@db.example/acme", "must not hold a password"),
        ("mysql://db.example/acme", "SQLite or PostgreSQL"),
        ("sqlite://", "needs a file"),
        ("sqlite:///:memory:", "needs a file"),
        ("postgresql://db.example/acme?password=hunter2", "not password"),
        ("postgresql://db.example/acme?host=10.0.0.9", "not host"),
        ("not a url", "must be a database URL"),
    ],
)
def test_a_reference_that_cannot_be_stored_is_refused_with_the_reason(
    reference: str, reason: str
) -> None:
    with pytest.raises(StorageError, match=reason) as refused:
        check_reference(reference)
    assert "hunter2" not in str(refused.value)


def test_a_template_that_makes_a_bad_reference_is_refused() -> None:
    with pytest.raises(StorageError, match="must not hold a password"):
        tenant_reference("postgresql://u:secret@db/{tenant}", "acme")


def test_a_reference_may_say_how_to_connect() -> None:
    reference = "postgresql://db.example/acme?sslmode=require&application_name=slack-tools"
    assert check_reference(reference) == reference
