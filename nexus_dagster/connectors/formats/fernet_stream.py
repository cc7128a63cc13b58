"""Files encrypted with the project's Fernet keys (``options.encryption: fernet``), streamed.

A file is one standard Fernet token (https://github.com/fernet/spec), as
``Fernet(key).encrypt(data)`` writes it: urlsafe base64 of ``0x80 | timestamp (8) | IV (16) |
AES-128-CBC ciphertext (PKCS7) | HMAC-SHA256 (32)``. ``cryptography`` decrypts such a token only
whole, in memory; here the same token is read and written block by block:

* :func:`verify_file` reads the token once and finds the key whose HMAC signs it (before a
  single plaintext byte is produced);
* :class:`FernetReader` then decrypts it as a stream, checking the HMAC again at the end (a file
  changed between the two passes fails there, before a load commits);
* :class:`FernetWriter` writes a token that ``Fernet.decrypt`` (and ``nexus``) read back,
  encrypting with the first key.

Memory stays at about one block. The keys are those of :func:`nexus_dagster.secrets.fernet_keys`
(``MASTER_ENCRYPTION_KEY``; several keys for rotation), never shown in a message.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import struct
import time
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from nexus_dagster import secrets
from nexus_dagster.errors import DataError

if TYPE_CHECKING:  # cryptography (~0.15 s) loads with the first encrypted file, not the connector
    from cryptography.hazmat.primitives import hmac

_VERSION = 0x80
_HEADER = 1 + 8 + 16  # version, timestamp, IV
_TAG = 32
_BLOCK = 1 << 20  # base64 text read at a time
_URLSAFE = bytes.maketrans(b"-_", b"+/")
_SPACE = b" \t\r\n"


def keys(keys_text: str | None = None) -> list[bytes]:
    """The project's Fernet keys, the first one encrypting (see :func:`secrets.fernet_keys`)."""
    found = secrets.fernet_keys(keys_text, needed_for="options.encryption: fernet")
    return [base64.urlsafe_b64decode(k) for k in found]


def _wrong_key(name: str) -> DataError:
    return DataError(
        f"file {name} cannot be decrypted with {secrets.MASTER_KEY_ENV} (options.encryption: "
        "fernet): it was encrypted with another key (or a rotated-out one), or it is damaged; "
        f"set {secrets.MASTER_KEY_ENV} to the key it was encrypted with (several keys: "
        "comma-separated)"
    )


class _Decoded:
    """The bytes of a base64 token read from ``raw`` in blocks (whitespace ignored)."""

    def __init__(self, raw: IO[bytes], name: str):
        self._raw = raw
        self._name = name
        self._text = b""
        self.done = False

    def read(self) -> bytes:
        """The next decoded bytes (``b""`` once the token ends)."""
        while not self.done:
            chunk = self._raw.read(_BLOCK)
            if not chunk:
                self.done = True
                text, self._text = self._text, b""
            else:
                self._text += chunk.translate(None, _SPACE)
                cut = len(self._text) - len(self._text) % 4
                text, self._text = self._text[:cut], self._text[cut:]
            if self.done and not text:
                return b""
            if text:
                try:
                    return base64.b64decode(text.translate(_URLSAFE), validate=True)
                except (binascii.Error, ValueError):
                    raise DataError(
                        f"file {self._name} is not a Fernet token (options.encryption: fernet "
                        "expects the urlsafe base64 text Fernet.encrypt writes)"
                    ) from None
        return b""


class _Split:
    """Splits a token's decoded bytes into the header, the ciphertext and the trailing tag."""

    def __init__(self, decoded: _Decoded, name: str):
        self._decoded = decoded
        self._name = name
        self._held = b""
        self.header = b""
        while len(self._held) < _HEADER + _TAG and not decoded.done:
            self._held += decoded.read()
        if len(self._held) < _HEADER + _TAG or self._held[0] != _VERSION:
            raise DataError(
                f"file {name} is not a Fernet token (too short or not version 0x80; "
                "options.encryption: fernet)"
            )
        self.header, self._held = self._held[:_HEADER], self._held[_HEADER:]

    def ciphertext(self) -> bytes:
        """The next ciphertext bytes; ``b""`` at the end, when :attr:`tag` is complete."""
        while len(self._held) <= _TAG and not self._decoded.done:
            self._held += self._decoded.read()
        if len(self._held) > _TAG:
            out, self._held = self._held[:-_TAG], self._held[-_TAG:]
            return out
        return b""

    @property
    def tag(self) -> bytes:
        """The HMAC at the end of the token (valid once :meth:`ciphertext` returned ``b""``)."""
        return self._held


def _macs(keys_: Sequence[bytes], header: bytes) -> list[hmac.HMAC]:
    macs = []
    for key in keys_:
        from cryptography.hazmat.primitives import hashes, hmac

        mac = hmac.HMAC(key[:16], hashes.SHA256())
        mac.update(header)
        macs.append(mac)
    return macs


def verify_file(raw: IO[bytes], keys_: Sequence[bytes], name: str) -> int:
    """Read a whole token and return the index of the key whose HMAC signs it.

    Raises:
        DataError: the file is not a Fernet token, or no key signs it (the message names the
            file and ``MASTER_ENCRYPTION_KEY``, never a key).
    """
    split = _Split(_Decoded(raw, name), name)
    macs = _macs(keys_, split.header)
    while chunk := split.ciphertext():
        for mac in macs:
            mac.update(chunk)
    for index, mac in enumerate(macs):
        try:
            mac.verify(split.tag)
        except Exception:  # cryptography.exceptions.InvalidSignature
            continue
        return index
    raise _wrong_key(name)


class FernetReader(io.RawIOBase):
    """The plaintext of a Fernet token in ``raw``, decrypted as it is read with ``key``.

    Use :func:`open_decrypted`, which verifies the token first. The HMAC is checked again when
    the ciphertext ends; a mismatch raises :class:`DataError` before the last bytes are
    returned. Closing it closes ``raw``.
    """

    def __init__(self, raw: IO[bytes], key: bytes, name: str):
        self._raw = raw
        self._name = name
        self._split = _Split(_Decoded(raw, name), name)
        (self._mac,) = _macs([key], self._split.header)
        iv = self._split.header[9:_HEADER]
        from cryptography.hazmat.primitives import padding
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        self._decryptor = Cipher(algorithms.AES(key[16:]), modes.CBC(iv)).decryptor()
        self._unpadder = padding.PKCS7(algorithms.AES.block_size).unpadder()
        self._out = b""
        self._ended = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        chunk = self._split.ciphertext()
        if chunk:
            self._mac.update(chunk)
            self._out += self._unpadder.update(self._decryptor.update(chunk))
            return
        try:
            self._mac.verify(self._split.tag)
        except Exception:  # cryptography.exceptions.InvalidSignature
            raise _wrong_key(self._name) from None
        try:
            self._out += self._unpadder.update(self._decryptor.finalize())
            self._out += self._unpadder.finalize()
        except ValueError:
            raise _wrong_key(self._name) from None
        self._ended = True

    def readinto(self, buffer: Any) -> int:
        while not self._out and not self._ended:
            self._fill()
        size = min(len(buffer), len(self._out))
        buffer[:size] = self._out[:size]
        self._out = self._out[size:]
        return size

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def open_decrypted(
    open_raw: Any, keys_: Sequence[bytes], name: str, verified: dict[str, int] | None = None
) -> IO[bytes]:
    """The plaintext of the token ``open_raw()`` opens, as a buffered stream.

    The first open of ``name`` reads the token once to find and check its key (cached in
    ``verified``), then reopens it to decrypt.

    Args:
        open_raw: a zero-argument callable opening the stored file (binary, readable).
        keys_: the candidate keys (:func:`keys`).
        name: the file as shown in messages.
        verified: file name -> index of its key, shared by the opens of one read.
    """
    verified = {} if verified is None else verified
    if name not in verified:
        with open_raw() as raw:
            verified[name] = verify_file(raw, keys_, name)
    raw = open_raw()
    try:
        return io.BufferedReader(FernetReader(raw, keys_[verified[name]], name), _BLOCK)
    except BaseException:
        raw.close()
        raise


class FernetWriter(io.RawIOBase):
    """A writable stream that writes one Fernet token of everything written to ``out``.

    The token is complete when the writer is closed (``out`` itself is left open), and
    ``Fernet(key).decrypt(out_bytes)`` returns the plaintext.
    """

    def __init__(self, out: IO[bytes], key: bytes):
        self._out = out
        iv = os.urandom(16)
        header = struct.pack(">BQ", _VERSION, int(time.time())) + iv
        from cryptography.hazmat.primitives import hashes, hmac, padding
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        self._mac = hmac.HMAC(key[:16], hashes.SHA256())
        self._mac.update(header)
        self._encryptor = Cipher(algorithms.AES(key[16:]), modes.CBC(iv)).encryptor()
        self._padder = padding.PKCS7(algorithms.AES.block_size).padder()
        self._pending = header  # raw bytes not yet base64-encoded (kept to a multiple of 3)
        self._written = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        """Plaintext bytes written so far (writers such as Parquet's ask for it)."""
        return self._written

    def _emit(self, data: bytes, final: bool = False) -> None:
        self._pending += data
        cut = len(self._pending) if final else len(self._pending) - len(self._pending) % 3
        if cut:
            self._out.write(base64.urlsafe_b64encode(self._pending[:cut]))
            self._pending = self._pending[cut:]

    def _cipher(self, data: bytes) -> None:
        if data:
            self._mac.update(data)
            self._emit(data)

    def write(self, data: Any) -> int:
        data = bytes(data)
        self._written += len(data)
        self._cipher(self._encryptor.update(self._padder.update(data)))
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._cipher(self._encryptor.update(self._padder.finalize()))
            self._cipher(self._encryptor.finalize())
            self._emit(self._mac.finalize(), final=True)
        super().close()
