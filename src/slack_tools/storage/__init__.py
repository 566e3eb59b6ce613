"""Persistence: every table, every migration, and the repositories over them.

Takes URLs and plain values; imports nothing from the rest of slack-tools but
its error types.
"""

from slack_tools.storage.database import (
    Database,
    check_schema,
    create_engine,
    default_sqlite_url,
    head_revision,
    upgrade,
)
from slack_tools.storage.documents import DocumentKey, DocumentStore, DocumentVersion, Scope

__all__ = [
    "Database",
    "DocumentKey",
    "DocumentStore",
    "DocumentVersion",
    "Scope",
    "check_schema",
    "create_engine",
    "default_sqlite_url",
    "head_revision",
    "upgrade",
]
