"""Logs are structured and never carry a secret, whoever logs it."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from slack_tools.service.logging import REDACTED, SecretScrubber, configure_logging
from tests.helpers import assert_no_secret

SECRET = "s3cr3t-admin-token-value"
SLACK_TOKEN = "xoxb-1234567890-0987654321-AbCdEfGhIjKl"


@pytest.fixture(autouse=True)
def restore_logging() -> object:
    """Leave the process's logging as the test found it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_scrubber_replaces_known_secrets_and_slack_token_shapes() -> None:
    """Known values and anything shaped like a Slack token are redacted, nested values too."""
    scrubber = SecretScrubber()
    scrubber.update([SECRET, "abc"])
    event = scrubber(
        None,
        "info",
        {
            "event": f"login with {SECRET}",
            "nested": {"token": SLACK_TOKEN, "list": [SECRET, "plain"]},
            "short": "abc is too short to count as a secret",
        },
    )
    assert event["event"] == f"login with {REDACTED}"
    assert event["nested"] == {"token": REDACTED, "list": [REDACTED, "plain"]}
    assert event["short"] == "abc is too short to count as a secret"


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_structlog_and_stdlib_lines_are_scrubbed(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """structlog calls and standard-library loggers (uvicorn, SQLAlchemy) are all redacted."""
    configure_logging("INFO", fmt, secrets=[SECRET])
    structlog.get_logger("test").info("configured", token=SECRET, slack=SLACK_TOKEN)
    logging.getLogger("uvicorn.error").warning("client sent %s", SECRET)
    try:
        int(f"bad value {SECRET}")
    except ValueError:
        structlog.get_logger("test").exception("failed")
    err = capsys.readouterr().err
    assert_no_secret(err, SECRET, SLACK_TOKEN)
    assert err.count(REDACTED) >= 4
    if fmt == "json":
        lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert {line["event"] for line in lines} >= {"configured", "failed"}
        assert all("timestamp" in line and "level" in line for line in lines)


def test_level_filters_lower_levels(capsys: pytest.CaptureFixture[str]) -> None:
    """Lines below the configured level are not written."""
    configure_logging("WARNING", "json")
    structlog.get_logger("test").info("quiet")
    structlog.get_logger("test").warning("loud")
    err = capsys.readouterr().err
    assert "loud" in err
    assert "quiet" not in err


@pytest.mark.parametrize(
    "credential",
    [
        "xapp-1-A0123456789-1234567890123-abcdef",
        "stk_" + "Ab1-_" * 8,
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLXZhbHVl",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBx",  # cut short in a log line
    ],
)
def test_credential_shapes_are_scrubbed_without_being_told(credential: str) -> None:
    """App tokens, tenant API keys, JWTs and private keys are recognised by their shape."""
    event = SecretScrubber()(None, "info", {"event": f"got {credential} from the client"})
    assert credential not in event["event"]
    assert event["event"].startswith("got [redacted]")


def test_authorization_header_values_and_secret_objects_are_scrubbed() -> None:
    """Whatever follows Bearer/Basic, and pydantic secret objects whatever their repr."""
    from pydantic import SecretStr  # noqa: PLC0415 - local to the one test that needs it

    event = SecretScrubber()(
        None,
        "info",
        {
            "headers": {"authorization": "Bearer opaque.token-value_123"},
            "basic": "Basic dXNlcjpwYXNzd29yZA==",
            "value": SecretStr("hunter2-hunter2"),
        },
    )
    assert event == {
        "headers": {"authorization": f"Bearer {REDACTED}"},
        "basic": f"Basic {REDACTED}",
        "value": REDACTED,
    }


def test_personal_data_of_gdpr_calls_is_masked_in_the_service_logs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What a @gdpr_compliant function was given about a person never reaches a log line."""
    from slack_tools.configs.security.gdpr import MASK, gdpr_compliant  # noqa: PLC0415

    @gdpr_compliant
    def greet(user_id: str, email: str) -> None:
        structlog.get_logger("test").warning("greeting", who=user_id, note=f"mail to {email}")
        logging.getLogger("test.stdlib").warning("sent to %s", email)

    configure_logging("INFO", "json")
    greet("U0PERSON42", "ada@example.org")
    structlog.get_logger("test").warning("after", who="U0PERSON42")
    lines = capsys.readouterr().err.splitlines()
    inside, after = lines[:2], lines[2:]
    assert all("U0PERSON42" not in line and "ada@example.org" not in line for line in inside)
    assert all(MASK in line for line in inside)
    assert any("U0PERSON42" in line for line in after), "only inside the call is masked"
