"""Secrets: ``${ENV}`` references and ``enc:`` Fernet tokens, resolved at run time only, and masked.

A spec keeps its values unresolved (``password: ${PG_PASSWORD}`` or ``password: enc:gAAAA...``),
so definitions, the Dagster UI and saved specs never hold a secret. :func:`resolve` turns them
into real values inside a run and registers every secret it produced with :func:`mask`, which
every log line, exception and metadata value of ours passes through.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import os
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from nexus_dagster.errors import SpecError

ENC_PREFIX = "enc:"
MASTER_KEY_ENV = "MASTER_ENCRYPTION_KEY"
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
#: parameter names whose values are always treated as secrets
SENSITIVE_KEYS = re.compile(
    r"pass(word|wd)?|secret|token|api_?key|access_?key|account_?key|private_?key|credential"
    r"|auth|sas|connection_string|dsn",
    re.IGNORECASE,
)

_known_secrets: set[str] = set()
_lock = threading.Lock()


def is_sensitive(key: str) -> bool:
    """True for parameter names that hold secrets (password, token, secret_key, ...)."""
    return bool(SENSITIVE_KEYS.search(key))


def register_secret(value: str) -> None:
    """Mask ``value`` from now on in everything :func:`mask` sees (short values are ignored)."""
    if isinstance(value, str) and len(value) >= 4:
        with _lock:
            _known_secrets.add(value)


def mask(text: Any) -> str:
    """``text`` as a string with every registered secret replaced by ``***``."""
    text = str(text)
    with _lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def is_reference(value: Any) -> bool:
    """True for text resolved only at run time: holding ``${ENV}`` or an ``enc:`` token."""
    return isinstance(value, str) and ("${" in value or value.strip().startswith(ENC_PREFIX))


def env_references(value: Any) -> set[str]:
    """The environment variable names a (nested) value refers to with ``${NAME}``."""
    names: set[str] = set()
    if isinstance(value, str):
        names.update(m.group(1) for m in _ENV_RE.finditer(value) if m.group(2) is None)
    elif isinstance(value, Mapping):
        for item in value.values():
            names |= env_references(item)
    elif isinstance(value, list | tuple):
        for item in value:
            names |= env_references(item)
    return names


def resolve(value: Any, *, where: str = "value", key: str = "") -> Any:
    """Expand ``${ENV}`` references and decrypt ``enc:`` tokens in a (nested) value.

    Every value that came from the environment or a token, and every value under a sensitive
    key, is registered for masking.

    Raises:
        SpecError: a referenced variable is unset, or a token cannot be decrypted.
    """
    if isinstance(value, Mapping):
        return {k: resolve(v, where=f"{where}.{k}", key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(v, where=f"{where}[{i}]", key=key) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    secret = is_sensitive(key)
    if value.startswith(ENC_PREFIX):
        value = decrypt_token(value[len(ENC_PREFIX):], where=where)
        secret = True
    elif "${" in value:

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found is None:
                if default is not None:
                    return default
                raise SpecError(
                    f"{where}: environment variable {name} is not set "
                    f"(fix: export {name}=... before the run, or use ${{{name}:-default}})"
                )
            if is_sensitive(key) or is_sensitive(name):
                register_secret(found)
            return found

        value = _ENV_RE.sub(substitute, value)
    if secret:
        register_secret(value)
    return value


_override = threading.local()


@contextlib.contextmanager
def master_keys(keys: str | None) -> Iterator[None]:
    """Use ``keys`` instead of ``$MASTER_ENCRYPTION_KEY`` in this thread (Python API)."""
    previous = getattr(_override, "keys", None)
    _override.keys = keys
    try:
        yield
    finally:
        _override.keys = previous


@functools.lru_cache(maxsize=32)
def fernet_key(key: str) -> bytes:
    """A Fernet key as given (``nexus keygen``), or derived from a passphrase with PBKDF2.

    The Nexus docs use passphrases (``SecurityManager(master_key="your-secure-key")``); a
    passphrase always derives the same key, so tokens stay decryptable.
    """
    try:
        if len(base64.urlsafe_b64decode(key.encode())) == 32 and len(key) == 44:
            return key.encode()
    except (ValueError, binascii.Error):
        pass
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=b"nexus-dagster/v1",
                     iterations=200_000)
    return base64.urlsafe_b64encode(kdf.derive(key.encode()))


def fernet_keys(keys: str | None = None, *, needed_for: str = "an enc: value") -> list[bytes]:
    """The Fernet keys (urlsafe base64, 32 bytes decoded) in order, the first one encrypting:
    ``keys`` (comma-separated), else those of :func:`master_keys` or
    ``$MASTER_ENCRYPTION_KEY``. Each given key is registered for masking.

    Raises:
        SpecError: no key is set; ``needed_for`` says what needs one.
    """
    raw = keys or getattr(_override, "keys", None) or os.environ.get(MASTER_KEY_ENV)
    if not raw:
        raise SpecError(
            f"{needed_for} needs the master key: set {MASTER_KEY_ENV} "
            "(create one with `nexus keygen`)"
        )
    parts = [k.strip() for k in raw.split(",") if k.strip()]
    for part in parts:
        register_secret(part)
    return [fernet_key(k) for k in parts]


def fernet(keys: str | None = None):
    """A MultiFernet over ``keys`` (comma-separated; the first encrypts), else the keys of
    :func:`master_keys` or ``$MASTER_ENCRYPTION_KEY``; a missing key is a SpecError."""
    from cryptography.fernet import Fernet, MultiFernet

    return MultiFernet([Fernet(key) for key in fernet_keys(keys)])


def decrypt_token(token: str, *, where: str = "value", keys: str | None = None) -> str:
    """Decrypt one Fernet token with the master key(s); a wrong key is a clear SpecError."""
    from cryptography.fernet import InvalidToken

    try:
        return fernet(keys).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SpecError(
            f"{where}: the enc: value cannot be decrypted with {MASTER_KEY_ENV} "
            "(wrong or rotated-out key, or a damaged token)"
        ) from None


def encrypt_value(plaintext: str, *, keys: str | None = None) -> str:
    """Encrypt with the first master key; returns ``enc:<token>`` for use in a spec."""
    return ENC_PREFIX + fernet(keys).encrypt(plaintext.encode()).decode()
