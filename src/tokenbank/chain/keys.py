"""Ed25519 keys as PEM files: PKCS#8 for the private key (``TOKEN_SIGNING_KEY``), SubjectPublicKeyInfo for the
public one, the same files ``openssl genpkey -algorithm ed25519`` and the ``cryptography`` package write."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from tokenbank.chain import ed25519
from tokenbank.errors import ConfigurationError, InvalidRequestError

# DER prefixes of an Ed25519 key (OID 1.3.101.112): the 32 key bytes follow.
_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def _pem(label: str, der: bytes) -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""])


def _der(pem: bytes | str, label: str) -> bytes:
    text = pem.decode("ascii", "replace") if isinstance(pem, bytes) else pem
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    start, stop = text.find(begin), text.find(end)
    if start == -1 or stop < start:
        raise InvalidRequestError(f"not a PEM {label.lower()} (no '{begin}' block)")
    try:
        return base64.b64decode("".join(text[start + len(begin) : stop].split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"the PEM {label.lower()} is not valid base64") from None


def public_key_bytes(public_key_pem: bytes | str) -> bytes:
    """The 32 raw bytes of a PEM Ed25519 public key. Raises InvalidRequestError for anything else."""
    der = _der(public_key_pem, "PUBLIC KEY")
    if len(der) != len(_SPKI_PREFIX) + 32 or not der.startswith(_SPKI_PREFIX):
        raise InvalidRequestError("the public key is not an Ed25519 key")
    return der[len(_SPKI_PREFIX) :]


def public_key_pem(raw: bytes) -> str:
    return _pem("PUBLIC KEY", _SPKI_PREFIX + raw)


def key_id(raw_public: bytes) -> str:
    """A short name of a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(raw_public).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An Ed25519 private key that signs checkpoints."""

    seed: bytes

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(secrets.token_bytes(32))

    @classmethod
    def from_pem(cls, pem: bytes | str) -> SigningKey:
        """Raises InvalidRequestError unless ``pem`` is an unencrypted PKCS#8 Ed25519 private key."""
        der = _der(pem, "PRIVATE KEY")
        if len(der) != len(_PKCS8_PREFIX) + 32 or not der.startswith(_PKCS8_PREFIX):
            raise InvalidRequestError("the private key is not an unencrypted PKCS#8 Ed25519 key")
        return cls(der[len(_PKCS8_PREFIX) :])

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> SigningKey:
        """Read ``TOKEN_SIGNING_KEY``'s file. Raises ConfigurationError when it cannot be read or parsed."""
        try:
            return cls.from_pem(Path(path).read_bytes())
        except OSError as exc:
            raise ConfigurationError(f"TOKEN_SIGNING_KEY: cannot read {str(path)!r}: {exc.strerror}") from None
        except InvalidRequestError as exc:
            raise ConfigurationError(f"TOKEN_SIGNING_KEY: {str(path)!r}: {exc.message}") from None

    @property
    def public_bytes(self) -> bytes:
        return ed25519.public_key(self.seed)

    @property
    def key_id(self) -> str:
        return key_id(self.public_bytes)

    def private_pem(self) -> str:
        return _pem("PRIVATE KEY", _PKCS8_PREFIX + self.seed)

    def public_pem(self) -> str:
        return public_key_pem(self.public_bytes)

    def sign(self, message: bytes) -> bytes:
        return ed25519.sign(self.seed, message)

    def write(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the private key as PEM, readable by its owner only (mode 0600, set when the file is created).
        Raises ConfigurationError if the file exists and ``overwrite`` is false."""
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            raise ConfigurationError(f"{str(path)!r} exists already; refusing to overwrite a key") from None
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(self.private_pem())
