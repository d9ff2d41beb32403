"""Helpers the tests share: the sandbox, and per-feature builders (never imported from a test module)."""
