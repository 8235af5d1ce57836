"""Shared helpers of the integration tests (tests import these, never each other)."""
