"""Tamper evidence for the journal: the per-token hash chain's canonical encoding, RFC 6962 Merkle trees, Ed25519
signed checkpoints and inclusion proofs that anyone verifies offline with :func:`verify_proof`.

This package needs no store and no bank: a proof file and the signer's public key are enough.
"""

from __future__ import annotations

from tokenbank.chain.encoding import GENESIS, EntryFields, canonical_json, chain_hash, encode_entry, entry_hash
from tokenbank.chain.keys import SigningKey, public_key_pem
from tokenbank.chain.proofs import Checkpoint, InclusionProof, verify_checkpoint, verify_proof

__all__ = [
    "GENESIS",
    "Checkpoint",
    "EntryFields",
    "InclusionProof",
    "SigningKey",
    "canonical_json",
    "chain_hash",
    "encode_entry",
    "entry_hash",
    "public_key_pem",
    "verify_checkpoint",
    "verify_proof",
]
