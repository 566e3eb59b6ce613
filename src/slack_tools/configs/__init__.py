"""The configuration and operations toolkit: its public API.

```python
from slack_tools.configs import initialize_config, ConfigManager
config = initialize_config()          # ENVIRONMENT picks dev/staging/production
config_mgr = ConfigManager()
config = config_mgr.load()
config_mgr.update_tenant_config("tenant_spotify_premium", {"slack_channel": "#premium-alerts"})
```

``initialize_config()`` builds the process's default runtime (configuration and
storage); ``ConfigManager()`` uses it when given no runtime of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from slack_tools.configs.config_loader import LoadedConfig, load_config
from slack_tools.configs.manager import ConfigManager, Explanation
from slack_tools.configs.runtime import ConfigChange, ConfigRuntime, EffectiveConfig, ReloadStatus
from slack_tools.configs.schema import AppConfig, EnvName, Severity, TenantConfig, UserConfig
from slack_tools.configs.validator import ConfigValidationError, Issue
from slack_tools.storage import DocumentKey

__all__ = [
    "AppConfig",
    "ConfigChange",
    "ConfigManager",
    "ConfigRuntime",
    "ConfigValidationError",
    "DocumentKey",
    "EffectiveConfig",
    "EnvName",
    "Explanation",
    "Issue",
    "LoadedConfig",
    "ReloadStatus",
    "Severity",
    "TenantConfig",
    "UserConfig",
    "default_runtime",
    "initialize_config",
    "load_config",
    "set_default_runtime",
]

_default: ConfigRuntime | None = None
_default_lock = threading.Lock()


def initialize_config(
    environ: Mapping[str, str] | None = None, files: Sequence[Path] | None = None
) -> AppConfig:
    """Build this process's default runtime from its environment and return the configuration.

    Raises :class:`ConfigValidationError` (every issue at once) when it is invalid.
    """
    runtime = ConfigRuntime.from_environ(environ, files=files)
    runtime.start()
    set_default_runtime(runtime)
    return runtime.config


def default_runtime() -> ConfigRuntime:
    """The process's default runtime, initialised from the environment on first use."""
    global _default  # noqa: PLW0603 - the one process-wide default the specification's API implies
    with _default_lock:
        if _default is None:
            runtime = ConfigRuntime.from_environ()
            runtime.start()
            _default = runtime
        return _default


def set_default_runtime(runtime: ConfigRuntime | None) -> None:
    """Make ``runtime`` the default (``None`` forgets it; the next use re-initialises)."""
    global _default  # noqa: PLW0603 - see default_runtime
    with _default_lock:
        _default = runtime
