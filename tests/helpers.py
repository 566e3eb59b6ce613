"""Re-export of the shared assertion helpers for test modules."""

from tests.conftest import assert_no_secret

__all__ = ["assert_no_secret"]
