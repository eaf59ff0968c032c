"""Key names of one token in Redis. Every key carries the hash tag ``{<key_prefix>:<symbol>}``, or with a ledger
group (``TOKEN_LEDGER_GROUP``) ``{<key_prefix>:<group>}`` followed by ``:<symbol>``.

One hash tag per token puts all its keys in one cluster slot (each script touches one slot) while different
tokens spread over the cluster; the tokens of one group share a slot, so one script can touch two of them (an
exchange). Account ids only ever appear as hash fields, sorted-set members, or after a fixed segment of a
per-account key (``:h:``, ``:sw:``, ``:lo:``, ``:la:``, behind the hash tag, which is the first ``{...}`` of the
name), so no id can name or reach another key.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from tokenbank.errors import ConfigurationError

HISTORY_RETENTION = 10_000
"""Newest history entries kept per account (older ones are trimmed from the account's index only)."""

STREAM_MAXLEN = 1_000_000
"""Approximate cap of the ledger stream in redis-only mode (the hybrid sync worker trims it itself)."""


def check_key_prefix(prefix: str) -> str:
    """Refuse prefixes that would break the hash tag or be unreadable (raises ConfigurationError)."""
    if not prefix or any(ch in "{}" or ch.isspace() or unicodedata.category(ch) == "Cc" for ch in prefix):
        raise ConfigurationError("TOKEN_KEY_PREFIX: no '{', '}', spaces or control characters allowed")
    return prefix


_FIXED = (
    "token", "seq", "bal", "held", "lb", "tx", "idem", "rev", "holds", "hexp", "stream", "audit", "auditseq", "htrim",
    "chain", "ctrl", "lots", "lotsdone", "lotexp",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TokenKeys:
    """All key names of one token (see docs/redis.md for their types and contents)."""

    tag: str
    """What every key name of the token starts with: the hash tag, and with a group the symbol after it."""
    token: str
    seq: str
    bal: str
    held: str
    lb: str
    tx: str
    idem: str
    rev: str
    holds: str
    hexp: str
    stream: str
    audit: str
    auditseq: str
    htrim: str
    chain: str
    ctrl: str
    lots: str
    """Lot id -> JSON of an open credit lot (remaining > 0) with its account id (lua/lots.lua); each account's
    open lots are indexed by :meth:`lot_order` and :meth:`lot_avail`."""
    lotsdone: str
    """Lot id -> JSON of a lot with nothing left (with its account id), which a void or reversal may refill."""
    lotexp: str
    """Sorted set of the open lots with an expiry: ``<lot id>:<account id>``, score = ``expires_at`` (us)."""
    history_prefix: str

    @classmethod
    def for_token(cls, prefix: str, symbol: str, group: str | None = None) -> TokenKeys:
        check_key_prefix(prefix)
        tag = "{" + prefix + ":" + symbol + "}" if group is None else "{" + prefix + ":" + group + "}:" + symbol
        names = {name: f"{tag}:{name}" for name in _FIXED}
        return cls(tag=tag, history_prefix=f"{tag}:h:", **names)

    @property
    def chain_hashes(self) -> str:
        """The chain hash of each entry of ``chain``, at the same position (appended by the sealer)."""
        return self.tag + ":chainhash"

    @property
    def checkpoints(self) -> str:
        """The signed checkpoints, a list of JSON objects in seq order."""
        return self.tag + ":checkpoints"

    @property
    def sync_lease(self) -> str:
        """The hybrid sync worker's lease: names the active worker of the token (not a ledger key)."""
        return self.tag + ":sync:lease"

    @property
    def events_prefix(self) -> str:
        """The prefix of the durable event state's keys (consumer cursors, leases, webhooks, deliveries,
        monitors; see storage/redis/event_state.py): not ledger keys, never touched by the write scripts."""
        return self.tag + ":ev:"

    def history(self, user_id: str) -> str:
        """The history index of one account (the id is data after a fixed segment, never a pattern)."""
        return self.history_prefix + user_id

    def spends(self, user_id: str) -> str:
        """The debits one account's spend window counts: a list of ``time:amount`` entries (microseconds) in time
        order (the id is data after a fixed segment)."""
        return self.tag + ":sw:" + user_id

    def lot_order(self, user_id: str) -> str:
        """One account's open credit lots in spend order: a sorted set of lot ids, score = ``expires_at`` (us) or
        ``+inf`` for none, equal scores in id byte order (the id is data after a fixed segment)."""
        return self.tag + ":lo:" + user_id

    def lot_avail(self, user_id: str) -> str:
        """One account's open credit lots that have an ``available_at``: a sorted set of lot ids scored by it (us),
        so the pending ones are one range read (the id is data after a fixed segment)."""
        return self.tag + ":la:" + user_id

    @property
    def window(self) -> str:
        """Each account's spend window state (a hash): ``total:oldest:newest``, the running total of its spend list
        and the times of the list's first and last entries (empty: none), kept by the write scripts."""
        return self.tag + ":window"

    @property
    def old_spends_prefix(self) -> str:
        """Where earlier builds kept each account's spends (a sorted set per account), until :meth:`old_spent`'s
        accounts are moved to the list layout on open."""
        return self.tag + ":sp:"

    @property
    def old_spent(self) -> str:
        """The spend window state of earlier builds (``total:oldest`` or a bare total per account); its presence
        means some windows are still in the sorted-set layout."""
        return self.tag + ":spent"

    def write_keys(self) -> list[str]:
        """KEYS of the write scripts, in the order lib.lua expects."""
        return [getattr(self, name) for name in _FIXED]

    @property
    def scan_pattern(self) -> str:
        """A SCAN MATCH pattern for every key of this token (glob characters of the prefix escaped)."""
        return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in self.tag) + ":*"
