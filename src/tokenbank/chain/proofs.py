"""Signed checkpoints and inclusion proofs, and their offline verification (no store, no bank: only a proof and a
public key)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tokenbank.chain import ed25519, merkle
from tokenbank.chain.encoding import DOMAIN, EntryFields, canonical_json, entry_hash
from tokenbank.chain.keys import SigningKey, public_key_bytes
from tokenbank.errors import InvalidRequestError

CHECKPOINT_DOMAIN = b"tokenbank.checkpoint.v1\n"
PROOF_VERSION = 1


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement: the entries ``first_seq..seq`` of ``token`` (``size`` of them) have Merkle root
    ``root``, the chain hash at ``seq`` is ``head``, and the checkpoint before this one ended at ``previous_seq``
    (0 for the first). Hashes are lowercase hex; ``signature`` is the hex Ed25519 signature of :meth:`message`."""

    token: str
    seq: int
    root: str
    signature: str
    first_seq: int
    size: int
    head: str
    previous_seq: int
    key_id: str
    created_at: str

    def body(self) -> dict[str, Any]:
        return {
            "token": self.token, "seq": self.seq, "first_seq": self.first_seq, "size": self.size, "root": self.root,
            "head": self.head, "previous_seq": self.previous_seq, "key_id": self.key_id, "created_at": self.created_at,
        }  # fmt: skip

    def message(self) -> bytes:
        """The exact bytes signed: a domain tag and the canonical JSON of every field but the signature."""
        return CHECKPOINT_DOMAIN + canonical_json(self.body())

    def as_dict(self) -> dict[str, Any]:
        return {**self.body(), "signature": self.signature}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        return cls(
            token=str(data["token"]), seq=int(data["seq"]), root=str(data["root"]), signature=str(data["signature"]),
            first_seq=int(data["first_seq"]), size=int(data["size"]), head=str(data["head"]),
            previous_seq=int(data["previous_seq"]), key_id=str(data["key_id"]), created_at=str(data["created_at"]),
        )  # fmt: skip

    @classmethod
    def signed(cls, key: SigningKey, **body: Any) -> Checkpoint:
        unsigned = cls(signature="", key_id=key.key_id, **body)
        return cls(signature=key.sign(unsigned.message()).hex(), key_id=key.key_id, **body)


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """Everything needed to check offline that one transaction is in a signed checkpoint: the entry's fields and
    previous hash (which give ``leaf``, its chain hash), its index in the checkpoint's tree, the audit ``path``
    (sibling hashes, leaf to root) and the checkpoint with its signature."""

    entry: EntryFields
    prev: str
    leaf: str
    index: int
    path: tuple[str, ...]
    checkpoint: Checkpoint

    @property
    def signature(self) -> str:
        return self.checkpoint.signature

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": PROOF_VERSION, "entry": self.entry.as_dict(), "prev": self.prev, "leaf": self.leaf,
            "index": self.index, "path": list(self.path), "checkpoint": self.checkpoint.as_dict(),
        }  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> InclusionProof:
        """Parse a proof. Raises InvalidRequestError for anything that is not a proof of this version."""
        try:
            data = json.loads(text)
            if data.get("version") != PROOF_VERSION:
                raise InvalidRequestError(f"not a version {PROOF_VERSION} inclusion proof")
            return cls(
                entry=EntryFields.from_dict(data["entry"]), prev=str(data["prev"]), leaf=str(data["leaf"]),
                index=int(data["index"]), path=tuple(str(p) for p in data["path"]),
                checkpoint=Checkpoint.from_dict(data["checkpoint"]),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidRequestError(f"malformed inclusion proof: {exc!r}") from None


def verify_checkpoint(checkpoint: Checkpoint, public_key_pem: bytes | str) -> bool:
    """True when the checkpoint's signature is valid under the public key (a PEM Ed25519 key; raises
    InvalidRequestError when the key cannot be read)."""
    public = public_key_bytes(public_key_pem)
    try:
        signature = bytes.fromhex(checkpoint.signature)
    except ValueError:
        return False
    return ed25519.verify(public, checkpoint.message(), signature)


def verify_proof(proof: InclusionProof | str | bytes, public_key_pem: bytes | str) -> bool:
    """Check an inclusion proof with nothing but the proof (object or JSON) and the signer's PEM public key:
    the entry's fields and previous hash give the leaf, the path leads from the leaf to the checkpoint's root, the
    entry lies in the checkpoint's range, and the checkpoint is signed by that key. Returns False for any
    mismatch or malformed proof; raises InvalidRequestError only when the public key cannot be read."""
    public_key_bytes(public_key_pem)  # an unreadable key is the caller's error, not a failed proof
    if not isinstance(proof, InclusionProof):
        try:
            proof = InclusionProof.from_json(proof)
        except InvalidRequestError:
            return False
    cp = proof.checkpoint
    try:
        if entry_hash(proof.prev, proof.entry) != proof.leaf or proof.entry.token != cp.token:
            return False
        if not cp.first_seq <= proof.entry.seq <= cp.seq or not 0 <= proof.index < cp.size:
            return False
        reached = merkle.root_from_path(bytes.fromhex(proof.leaf), proof.index, cp.size,
                                        [bytes.fromhex(p) for p in proof.path])  # fmt: skip
    except (ValueError, TypeError):
        return False
    if reached is None or reached.hex() != cp.root:
        return False
    if proof.index == cp.size - 1 and proof.entry.seq == cp.seq and proof.leaf != cp.head:
        return False
    return verify_checkpoint(cp, public_key_pem)


__all__ = ["DOMAIN", "Checkpoint", "InclusionProof", "verify_checkpoint", "verify_proof"]
