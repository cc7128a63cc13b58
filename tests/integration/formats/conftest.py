"""Fixtures for the format tests (xml, fixed_width, zip members, Fernet-encrypted files): the
project's Fernet master key (``base`` and ``conn`` are in tests/integration/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet

from nexus_dagster import secrets


@pytest.fixture
def master_key() -> Iterator[str]:
    """A fresh Fernet key set as the project's master key (``secrets.master_keys``)."""
    key = Fernet.generate_key().decode()
    with secrets.master_keys(key):
        yield key
