"""``slack-tools keys …`` and ``slack-tools db …``: master keys and schema migrations."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from slack_tools.cli.common import err, open_runtime, out
from slack_tools.configs import security
from slack_tools.configs.config_loader import load_sources, read_environment, resolve
from slack_tools.configs.rotation import (
    record_rotation,
    rotate_audit_key,
    rotate_data_keys,
    rotate_documents,
    rotate_file,
)
from slack_tools.configs.runtime import (
    ConfigRuntime,
    DatabaseStatus,
    database_status,
    migrate_database,
)
from slack_tools.configs.security.audit import AuditLog
from slack_tools.errors import SecretError
from slack_tools.storage.tenants import TenantStore

keys_app = typer.Typer(help="Master keys: generate and rotate.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)


@keys_app.command("generate")
def keys_generate(
    key_id: Annotated[
        str | None, typer.Option("--id", help="Key id (default: date-based).")
    ] = None,
) -> None:
    """Print a new master key as id:base64 (put it first in SLACK_TOOLS_MASTER_KEYS)."""
    identifier = key_id or f"k{datetime.now(UTC):%Y%m%d}{secrets.token_hex(2)}"
    entry = f"{identifier}:{security.generate_key()}"
    security.parse_keys([entry], "--id")  # refuses an id that could not be read back
    out.print(entry, markup=False)


@keys_app.command("rotate")
def keys_rotate(
    files: Annotated[
        list[Path] | None, typer.Argument(help="YAML files to re-encrypt in place.")
    ] = None,
) -> None:
    """Re-encrypt every encrypted value with the active key, in FILES and in the database."""
    runtime = open_runtime()
    cipher = runtime.snapshot.loaded.cipher
    if cipher is None:
        raise SecretError(
            "no master key: set SLACK_TOOLS_MASTER_KEYS or security.encryption.key_file"
        )
    log = AuditLog.of(runtime)
    with log.failures("keys.rotate", target=f"master-key:{cipher.active_key_id}"):
        _rotate(runtime, cipher, files or [], log)


def _rotate(
    runtime: ConfigRuntime, cipher: security.ValueCipher, files: list[Path], log: AuditLog
) -> None:
    in_files = 0
    for path in files:
        changed = rotate_file(path, cipher)
        in_files += changed
        out.print(f"{path}: {changed} value(s) re-encrypted with key {cipher.active_key_id}")
    versions, values = rotate_documents(runtime.store, cipher)
    out.print(
        f"database: {values} value(s) in {versions} version(s) re-encrypted "
        f"with key {cipher.active_key_id}"
    )
    rewrapped = rotate_data_keys(TenantStore(runtime.database.engine), cipher)
    out.print(
        f"database: {rewrapped} tenant data key(s) re-wrapped with key {cipher.active_key_id}"
    )
    audit_key = rotate_audit_key(log, cipher)
    record_rotation(
        log,
        cipher,
        {
            "files": len(files),
            "values_in_files": in_files,
            "versions": versions,
            "values_in_documents": values,
            "data_keys": rewrapped,
            "audit_key": int(audit_key),
        },
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations to the shared database and every tenant's own."""
    failed = False
    for status, before in migrate_database(resolve(load_sources(read_environment())).config):
        if status.error is not None:
            err.print(f"tenant {status.tenant}: not migrated: {status.error}", markup=False)
            failed = True
            continue
        out.print(f"{_named(status)}: {before or 'empty'} → {status.current}", markup=False)
    if failed:
        raise typer.Exit(1)


@db_app.command("status")
def db_status() -> None:
    """Show each database's schema revision and whether it is current (exit 1 if not)."""
    statuses = database_status(resolve(load_sources(read_environment())).config)
    for status in statuses:
        if status.error is not None:
            err.print(f"tenant {status.tenant}: {status.error}", markup=False)
            continue
        out.print(
            f"{_named(status)}: at {status.current or 'empty'}, code needs {status.head}",
            markup=False,
        )
    if any(status.error is None and not status.is_current for status in statuses):
        err.print("run 'slack-tools db upgrade'")
    if not all(status.is_current for status in statuses):
        raise typer.Exit(1)


def _named(status: DatabaseStatus) -> str:
    return status.url if status.tenant is None else f"{status.url} (tenant {status.tenant})"
