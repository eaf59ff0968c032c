"""Stream entries as the worker reads them: the commit time read off the JSON text without decoding it matches
the decoded field, whatever the strings inside hold; hold entries are decoded; PostgreSQL gets the text as is."""

from __future__ import annotations

import json

import pytest

from tokenbank.storage.hybrid.replicate import Entry, batch_json

BASE = {"type": "transfer", "id": "t1", "seq": "7", "from_user_id": "a", "to_user_id": "b", "amount": "5"}
TRICKY = [
    '"created_at":"1"',
    '{"created_at":"2"}',
    'x\\", \\"created_at\\":\\"3',
    "ends with a backslash \\",
    "hold_id",
    '"hold_id":"h9"',
]


@pytest.mark.parametrize("text", TRICKY)
@pytest.mark.parametrize("field", ["metadata", "reason", "idempotency_key"])
def test_the_commit_time_is_the_field_itself_whatever_a_string_holds(field: str, text: str) -> None:
    for order in (1, -1):  # the key before and after the tricky string
        items = [*BASE.items(), (field, text), ("created_at", "1796620340554487")][::order]
        raw = json.dumps(dict(items), separators=(",", ":"))
        entry = Entry.from_stream("1-0", {"tx": raw})
        assert entry.created_us == 1796620340554487
        assert entry.hold_id is None and entry.text == raw and entry.fields == dict(items)


def test_hold_entries_are_decoded_and_carry_their_hold() -> None:
    raw = json.dumps({**BASE, "type": "hold", "hold_id": "h1", "created_at": "10"})
    entry = Entry.from_stream("1-0", {"tx": raw})
    assert (entry.hold_id, entry.created_us) == ("h1", 10)
    hold = json.dumps({"from_user_id": "a", "to_user_id": "b", "amount": "5", "expires_at": "99"})
    plain = Entry.from_stream("2-0", {"tx": json.dumps({**BASE, "id": "t2", "created_at": "11"})})
    decoded = json.loads(batch_json([entry, plain], {"h1": hold}))
    assert decoded == [{**json.loads(raw), "hold": json.loads(hold)}, json.loads(plain.text)]


def test_a_hold_redis_no_longer_has_is_rebuilt_from_its_entry() -> None:
    entry = Entry.from_stream("1-0", {"tx": json.dumps({**BASE, "type": "hold", "hold_id": "h1", "created_at": "10"})})
    (decoded,) = json.loads(batch_json([entry], {}))
    assert decoded["hold"]["expires_at"] == "10" and decoded["hold"]["amount"] == "5"


def test_entries_of_earlier_versions_carry_their_fields_as_stream_fields() -> None:
    entry = Entry.from_stream("1-0", {**BASE, "created_at": "12", "hold_id": "h2"})
    assert (entry.created_us, entry.hold_id) == (12, "h2")
    assert json.loads(entry.text) == {**BASE, "created_at": "12", "hold_id": "h2"}
