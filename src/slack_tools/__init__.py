"""slack-tools: a multi-tenant, localized Slack alerting service and its configuration toolkit."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("slack-tools")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
