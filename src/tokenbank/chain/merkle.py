"""Merkle trees as RFC 6962 / RFC 9162 define them (Certificate Transparency), over the chain's entry hashes.

Leaves and inner nodes are hashed with different one-byte prefixes (``0x00`` leaf, ``0x01`` node), so an inner
node can never pass for a leaf. A tree of ``n`` leaves splits at the largest power of two below ``n``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of ``leaves`` (the hash of the empty string for no leaves)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = [leaf_hash(leaf) for leaf in leaves]
    return _subtree(level, 0, len(level))


def _subtree(hashed: Sequence[bytes], start: int, end: int) -> bytes:
    if end - start == 1:
        return hashed[start]
    k = _split(end - start)
    return node_hash(_subtree(hashed, start, start + k), _subtree(hashed, start + k, end))


def path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The inclusion (audit) path of leaf ``index``: the sibling hashes from the leaf up to the root."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} is outside a tree of {len(leaves)}")
    hashed = [leaf_hash(leaf) for leaf in leaves]
    out: list[bytes] = []
    start, end = 0, len(hashed)
    siblings: list[bytes] = []
    while end - start > 1:
        k = _split(end - start)
        if index - start < k:
            siblings.append(_subtree(hashed, start + k, end))
            end = start + k
        else:
            siblings.append(_subtree(hashed, start, start + k))
            start += k
    out.extend(reversed(siblings))
    return out


def root_from_path(leaf: bytes, index: int, size: int, siblings: Sequence[bytes]) -> bytes | None:
    """The root that ``siblings`` lead to from ``leaf`` at ``index`` in a tree of ``size`` leaves (RFC 9162,
    section 2.1.3.2), or None when the path cannot belong to such a tree."""
    if not 0 <= index < size:
        return None
    fn, sn = index, size - 1
    r = leaf_hash(leaf)
    for sibling in siblings:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(sibling, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, sibling)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None
