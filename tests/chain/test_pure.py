"""The pure chain package: Ed25519 against RFC 8032's vectors, RFC 6962 Merkle paths, keys, proofs offline."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tokenbank.chain import (
    GENESIS,
    Checkpoint,
    EntryFields,
    InclusionProof,
    SigningKey,
    ed25519,
    entry_hash,
    merkle,
    verify_proof,
)
from tokenbank.errors import ConfigurationError, InvalidRequestError

# RFC 8032, section 7.1, tests 1 and 2.
VECTORS = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
]  # fmt: skip


@pytest.mark.parametrize(("seed", "public", "message", "signature"), VECTORS)
def test_ed25519_rfc8032_vectors(seed: str, public: str, message: str, signature: str) -> None:
    assert ed25519.public_key(bytes.fromhex(seed)).hex() == public
    assert ed25519.sign(bytes.fromhex(seed), bytes.fromhex(message)).hex() == signature
    assert ed25519.verify(bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature))
    assert not ed25519.verify(bytes.fromhex(public), b"other", bytes.fromhex(signature))


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962's definition, written recursively as the RFC states it."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31])
def test_merkle_root_and_every_path(size: int) -> None:
    leaves = [hashlib.sha256(str(i).encode()).digest() for i in range(size)]
    root = merkle.root(leaves)
    assert root == _mth(leaves)
    for index in range(size):
        path = merkle.path(leaves, index)
        assert merkle.root_from_path(leaves[index], index, size, path) == root
        if size > 1:
            assert merkle.root_from_path(leaves[(index + 1) % size], index, size, path) != root
        if path:
            forged = [path[0][:-1] + bytes([path[0][-1] ^ 1]), *path[1:]]
            assert merkle.root_from_path(leaves[index], index, size, forged) != root
            assert merkle.root_from_path(leaves[index], index, size, path[:-1]) != root
    assert merkle.root([]) == hashlib.sha256(b"").digest()


def test_leaf_and_node_are_domain_separated() -> None:
    a, b = hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()
    # A two-leaf tree's root must not equal the leaf hash of the concatenated children.
    assert merkle.root([a, b]) != merkle.leaf_hash(merkle.leaf_hash(a) + merkle.leaf_hash(b))
    assert merkle.leaf_hash(a) == hashlib.sha256(b"\x00" + a).digest()


def _entry(seq: int, **changes: object) -> EntryFields:
    base = EntryFields(
        token="GLD", seq=seq, id=f"tx-{seq}", type="transfer", from_user_id="alice", to_user_id="bob",
        amount=1250, timestamp="2026-01-02T03:04:05.000006Z", metadata={"b": 1, "a": "é"}, idempotency_key=None,
        reason=None, hold_id=None, reverses_id=None,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def test_canonical_encoding_is_documented_bytes() -> None:
    entry = _entry(7)
    expected = (
        b'tokenbank.chain.v1\n{"amount":"1250","from":"alice","hold_id":null,"id":"tx-7","idempotency_key":null,'
        b'"metadata":{"a":"\xc3\xa9","b":1},"prev":"' + GENESIS.encode() + b'","reason":null,"reverses_id":null,'
        b'"seq":7,"timestamp":"2026-01-02T03:04:05.000006Z","to":"bob","token":"GLD","type":"transfer"}'
    )
    assert entry_hash(GENESIS, entry) == hashlib.sha256(expected).hexdigest()
    # Every field is covered.
    assert entry_hash(GENESIS, _entry(8)) != entry_hash(GENESIS, entry)
    for change in ({"amount": 1251}, {"metadata": {"b": 2, "a": "é"}}, {"reason": "x"},
                   {"to_user_id": "carol"}, {"timestamp": "2026-01-02T03:04:05.000007Z"}, {"type": "mint"},
                   {"hold_id": "h"}, {"reverses_id": "r"}, {"idempotency_key": "k"}, {"token": "SLV"}):  # fmt: skip
        assert entry_hash(GENESIS, _entry(7, **change)) != entry_hash(GENESIS, entry), change
    assert entry_hash("1" * 64, entry) != entry_hash(GENESIS, entry)


def test_lot_fields_are_covered_only_where_present() -> None:
    """Lot moves and a grant's terms join the encoding of the entries that have them; an entry without lots hashes
    exactly as before they existed (the bytes above), so chains sealed then stay valid."""
    entry = _entry(7, lots=(("lot-1", 1000), ("lot-2", -250)), expires_at="2027-01-01T00:00:00.000000Z",
                   category="promo")  # fmt: skip
    expected = (
        b'tokenbank.chain.v1\n{"amount":"1250","category":"promo","expires_at":"2027-01-01T00:00:00.000000Z",'
        b'"from":"alice","hold_id":null,"id":"tx-7","idempotency_key":null,"lots":[["lot-1","1000"],["lot-2","-250"]],'
        b'"metadata":{"a":"\xc3\xa9","b":1},"prev":"' + GENESIS.encode() + b'","reason":null,"reverses_id":null,'
        b'"seq":7,"timestamp":"2026-01-02T03:04:05.000006Z","to":"bob","token":"GLD","type":"transfer"}'
    )
    assert entry_hash(GENESIS, entry) == hashlib.sha256(expected).hexdigest()
    assert entry_hash(GENESIS, entry) != entry_hash(GENESIS, _entry(7))
    for change in ({"lots": (("lot-1", 1001), ("lot-2", -250))}, {"lots": (("lot-2", -250), ("lot-1", 1000))},
                   {"lots": (("lot-9", 1000), ("lot-2", -250))}, {"lots": ()}, {"expires_at": None},
                   {"available_at": "2026-06-01T00:00:00.000000Z"}, {"category": "bonus"}):  # fmt: skip
        assert entry_hash(GENESIS, replace(entry, **change)) != entry_hash(GENESIS, entry), change
    assert EntryFields.from_dict(json.loads(json.dumps(entry.as_dict()))) == entry


def test_entry_fields_of_a_record_uses_utc_microseconds() -> None:
    class Row:
        seq, id, type, from_user_id, to_user_id, amount = 3, "i", "grant", None, "bob", 5
        timestamp = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
        metadata, idempotency_key, reason, hold_id, reverses_id = '{"k":[1,2]}', None, "r", None, None
        lots = (("l", 5),)
        expires_at, available_at, category = datetime(2027, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))), None, "c"

    fields = EntryFields.of("GLD", Row())
    assert fields.timestamp == "2026-01-02T03:04:05.000006Z"
    assert fields.metadata == {"k": [1, 2]}
    assert fields.lots == (("l", 5),) and fields.expires_at == "2027-01-01T00:00:00.000000Z"
    assert EntryFields.from_dict(fields.as_dict()) == fields


def test_keys_roundtrip_and_file_mode(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "signing.pem"
    key.write(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert SigningKey.from_file(path) == key
    with pytest.raises(ConfigurationError, match="exists already"):
        key.write(path)
    with pytest.raises(ConfigurationError, match="TOKEN_SIGNING_KEY"):
        SigningKey.from_file(tmp_path / "missing.pem")
    (tmp_path / "bad.pem").write_text("hello")
    with pytest.raises(ConfigurationError, match="not a PEM"):
        SigningKey.from_file(tmp_path / "bad.pem")


def test_pem_matches_openssl_layout() -> None:
    key = SigningKey(bytes.fromhex(VECTORS[0][0]))
    # The DER of an Ed25519 PKCS#8 key and SPKI public key (as openssl writes them).
    assert "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v" in key.private_pem()
    assert key.public_pem().splitlines()[1] == "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="


def _proof(key: SigningKey, size: int = 5, target: int = 2) -> InclusionProof:
    prev, leaves, entries, prevs = GENESIS, [], [], []
    for seq in range(10, 10 + size):
        entry = _entry(seq)
        prevs.append(prev)
        prev = entry_hash(prev, entry)
        entries.append(entry)
        leaves.append(bytes.fromhex(prev))
    cp = Checkpoint.signed(
        key, token="GLD", seq=10 + size - 1, root=merkle.root(leaves).hex(), first_seq=10, size=size, head=prev,
        previous_seq=0, created_at="2026-01-02T03:04:05.000000Z",
    )  # fmt: skip
    return InclusionProof(
        entry=entries[target], prev=prevs[target], leaf=leaves[target].hex(), index=target,
        path=tuple(p.hex() for p in merkle.path(leaves, target)), checkpoint=cp,
    )  # fmt: skip


def test_proof_verifies_and_forgeries_fail() -> None:
    key = SigningKey.generate()
    pem = key.public_pem()
    proof = _proof(key)
    assert verify_proof(proof, pem)
    assert verify_proof(proof.to_json(), pem.encode())
    assert InclusionProof.from_json(proof.to_json()) == proof
    flipped = ("0" if proof.leaf[0] != "0" else "1") + proof.leaf[1:]
    forged = [
        replace(proof, leaf=flipped),
        replace(proof, entry=replace(proof.entry, amount=proof.entry.amount + 1)),
        replace(proof, prev="1" * 64),
        replace(proof, path=(proof.path[0][::-1], *proof.path[1:])),
        replace(proof, path=proof.path[:-1]),
        replace(proof, index=proof.index + 1),
        replace(proof, checkpoint=replace(proof.checkpoint, root="0" * 64)),
        replace(proof, checkpoint=replace(proof.checkpoint, seq=proof.checkpoint.seq + 1)),
        replace(proof, checkpoint=replace(proof.checkpoint, signature="00" * 64)),
        replace(proof, checkpoint=replace(proof.checkpoint, signature="zz")),
    ]
    for bad in forged:
        assert not verify_proof(bad, pem), bad
    assert not verify_proof(proof, SigningKey.generate().public_pem())  # another key
    assert not verify_proof("{not json", pem)
    assert not verify_proof(json.dumps({"version": 99}), pem)
    with pytest.raises(InvalidRequestError, match="not a PEM public key"):
        verify_proof(proof, "not a key")
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(InvalidRequestError, match="not an Ed25519 key"):
        verify_proof(proof, ec_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))


def test_proof_verifies_in_a_fresh_process_with_only_json_and_pem(tmp_path: Path) -> None:
    key = SigningKey.generate()
    proof_file, key_file = tmp_path / "proof.json", tmp_path / "pub.pem"
    proof_file.write_text(_proof(key, size=9, target=8).to_json())
    key_file.write_text(key.public_pem())
    code = (
        "import sys; from tokenbank.chain import verify_proof; "
        "print(verify_proof(open(sys.argv[1]).read(), open(sys.argv[2], 'rb').read()))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(proof_file), str(key_file)], capture_output=True,
                         text=True, cwd=tmp_path, check=True)  # fmt: skip
    assert out.stdout.strip() == "True"
    tampered = json.loads(proof_file.read_text())
    tampered["entry"]["amount"] = "999999"
    proof_file.write_text(json.dumps(tampered))
    out = subprocess.run([sys.executable, "-c", code, str(proof_file), str(key_file)], capture_output=True,
                         text=True, cwd=tmp_path, check=True)  # fmt: skip
    assert out.stdout.strip() == "False"
