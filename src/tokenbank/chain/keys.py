"""Ed25519 keys as PEM files: PKCS#8 for the private key (``TOKEN_SIGNING_KEY``), SubjectPublicKeyInfo for the
public one, the files ``openssl genpkey -algorithm ed25519`` writes; read and written by ``cryptography``."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from tokenbank.chain import ed25519
from tokenbank.errors import ConfigurationError, InvalidRequestError


def _as_bytes(pem: bytes | str) -> bytes:
    return pem.encode() if isinstance(pem, str) else pem


def public_key_bytes(public_key_pem: bytes | str) -> bytes:
    """The 32 raw bytes of a PEM Ed25519 public key. Raises InvalidRequestError for anything else."""
    try:
        key = load_pem_public_key(_as_bytes(public_key_pem))
    except ValueError:
        raise InvalidRequestError("not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidRequestError("the public key is not an Ed25519 key")
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key_pem(raw: bytes) -> str:
    key = Ed25519PublicKey.from_public_bytes(raw)
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


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
        try:
            key = load_pem_private_key(_as_bytes(pem), password=None)
        except (ValueError, TypeError):
            raise InvalidRequestError("not a PEM private key (unencrypted PKCS#8)") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidRequestError("the private key is not an Ed25519 key")
        return cls(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

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
        key = Ed25519PrivateKey.from_private_bytes(self.seed)
        return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()

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
