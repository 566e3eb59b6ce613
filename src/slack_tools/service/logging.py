"""Structured logs (JSON or console) that never carry a secret.

Everything goes through structlog, the standard library's loggers too (uvicorn,
SQLAlchemy), so one set of processors — personal data of ``@gdpr_compliant`` calls
masked, then secrets redacted, last before rendering — sees every line.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog
from pydantic import SecretBytes, SecretStr

from slack_tools.configs.security.gdpr import mask_personal_data

# Credentials with a recognisable shape are scrubbed even when nobody told us the value:
# Slack tokens, this service's tenant API keys, JWTs (three base64url parts, the first
# two JSON objects, so starting ``eyJ``), PEM private keys, and whatever follows a
# ``Bearer`` or ``Basic`` scheme in a header someone logged.
_SHAPES = re.compile(
    r"xox[abposre]-[A-Za-z0-9-]{6,}"
    r"|xapp-[A-Za-z0-9-]{6,}"
    r"|\bstk_[A-Za-z0-9_-]{16,}"
    r"|\beyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)"
    r"|(?<=Bearer )[A-Za-z0-9._~+/=-]{8,}"
    r"|(?<=Basic )[A-Za-z0-9+/=]{8,}",
    re.DOTALL | re.IGNORECASE,
)
REDACTED = "[redacted]"
_SHORTEST_SECRET = 4


class SecretScrubber:
    """A processor that replaces known secret values and credential shapes in every field."""

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()

    def update(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret containing another is replaced whole.
        # Replacing very short strings would blank out ordinary words in every line; a
        # secret that short is no secret, and the token-shape rule below still applies.
        self._secrets = tuple(
            sorted({s for s in secrets if len(s) >= _SHORTEST_SECRET}, key=len, reverse=True)
        )

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return _SHAPES.sub(REDACTED, value)
        if isinstance(value, SecretStr | SecretBytes):
            return REDACTED
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value

    def __call__(
        self, _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            event_dict[key] = self.scrub(value)
        return event_dict


scrubber = SecretScrubber()


def configure_logging(level: str, fmt: str, *, secrets: Iterable[str] = ()) -> None:
    """Route structlog and the standard library through one pipeline at ``level``."""
    scrubber.update(secrets)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                mask_personal_data,
                scrubber,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Libraries' chatter (request bodies, SQL, selector choice) is not ours to show;
    # their warnings and errors still come through.
    for name in ("slack_sdk", "aiohttp", "sqlalchemy", "asyncio", "watchfiles", "httpx"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
