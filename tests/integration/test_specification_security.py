"""The specification's security decorators, imported and written exactly as it shows them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from slack_tools.configs import ConfigRuntime, set_default_runtime
from slack_tools.configs.security import (
    Actor,
    AuditLog,
    acting_as,
    audit_action,
    gdpr_compliant,
    require_permission,
)
from slack_tools.configs.security.gdpr import register
from slack_tools.errors import PermissionDenied

VIEWER = Actor("vera", roles=frozenset({"viewer"}), tenants=frozenset({"acme"}))
TENANT_ADMIN = Actor("tom", roles=frozenset({"tenant_admin"}), tenants=frozenset({"acme"}))


@require_permission("config.read")
def get_config(tenant_id: str) -> str:
    return f"config of {tenant_id}"


@require_permission("config.write", tenant=True)  # tenant_id must be one of the caller's
def update_config(tenant_id: str, config: dict[str, Any]) -> dict[str, Any]:
    return {tenant_id: config}


@audit_action("config.update")
def update_configuration(user_id: str, changes: dict[str, Any]) -> int:
    return len(changes)


@gdpr_compliant
def handle_user_data(user_id: str) -> str:
    return user_id.upper()


def test_permissions_as_the_specification_writes_them() -> None:
    """Read needs config.read; a tenant admin writes its own tenants only; nobody, nothing."""
    with pytest.raises(PermissionDenied):
        get_config("acme")  # no caller at all
    with acting_as(VIEWER):
        assert get_config("acme") == "config of acme"
        with pytest.raises(PermissionDenied):
            update_config("acme", {"slack_channel": "#x"})
    with acting_as(TENANT_ADMIN):
        assert update_config("acme", {"a": 1}) == {"acme": {"a": 1}}
        with pytest.raises(PermissionDenied):
            update_config("globex", {"a": 1})


def test_audit_and_gdpr_decorators_as_the_specification_writes_them(
    make_runtime: Callable[..., ConfigRuntime],
) -> None:
    """The audited call lands in the default runtime's trail; the GDPR one in the register."""
    runtime = make_runtime()
    set_default_runtime(runtime)
    with acting_as(TENANT_ADMIN):
        assert update_configuration("u-42", {"locale": "de_DE", "slack_bot_token": "xoxb-1"}) == 2
    log = AuditLog.of(runtime)
    [entry] = log.list(action="config.update")
    assert entry.actor == "tom"
    assert entry.subject == "u-42"
    assert "xoxb-1" not in str(entry.as_dict())
    assert log.verify().ok

    assert handle_user_data("ada") == "ADA"
    names = {activity.name.rsplit(".", 1)[-1]: activity for activity in register()}
    assert names["handle_user_data"].personal_args == ("user_id",)
