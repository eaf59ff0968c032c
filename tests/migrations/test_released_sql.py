"""A released migration's SQL never changes: what each one executes is pinned by a hash.

A database upgraded long ago ran these exact statements; a fresh one must run the same. A change to a function
belongs in a new ``.sql`` file read by a new migration (add its hash here when it is released).
"""

from __future__ import annotations

import hashlib

import pytest

from tokenbank.storage.sql.migrations.sqlfile import statements

RELEASED = {
    "0001_initial.sql": (3, "bf3166703b5c5eed4516ef15f463bbd0176ace57d77ae86957a33d070b2fd9e9"),
    "0002_hybrid_sync.sql": (5, "9053026a59cefeb870c7a79476a317b6fc746975e43b5d655fcbda1f322b2b98"),
    "0003_lean_apply.sql": (2, "62348729c7d80e867da3c926989dcc916bd2e3519cc5f04a24015b39862d7064"),
    "0006_hash_chain.sql": (3, "9c2759503b25ca7e931a635063c92ac5235d44a0b3629d29887c70581c5baa99"),
    "0007_lean_replicate.sql": (1, "f934ea3afdffe31e107442120c0a0cb8e610cc8d9f2d8ccede09764db307078e"),
    "0008_account_controls.sql": (4, "ee23b0b26554e973611f3ec834d8d21960682a38cdf226204f77ac8cd15175ff"),
    "0009_spend_totals.sql": (5, "168f616bc4edbc1306af8b2706d126e90ce14b315bc15279fbc7ba23795279a6"),
    "0010_overdraft.sql": (4, "fb739167739930067c3bc78aa8eed17f8bb720ca63f907e51f5d07980cb3b2b5"),
    "0011_overdraft_room.sql": (2, "bac56d29661d8106be6fdc0b929ccaffa5132171959d4953a9f3d3364a2e4c94"),
    "0012_replicate_upsert.sql": (1, "91e07661a0271800296e533546d341e9a2734fd9692223e72728ea5523d0a2c9"),
    "0013_lots.sql": (10, "4bd5a5ce6de24294884514b0d62223b7f0d48466fe2fb3b3fa263eb35df19f07"),
    "0014_lot_spend_order.sql": (2, "e2ddeb994286545006807f1dcb16debc6aaeeccff7d578f4102b317b299e56d1"),
    "0015_hot_accounts.sql": (6, "efe377c045c1ef9dce61f40c213844bfe80e8698bafb0ce53bed81928585703c"),
}


@pytest.mark.parametrize("filename", sorted(RELEASED))
def test_released_migration_sql_is_unchanged(filename: str) -> None:
    found = statements(filename)
    count, digest = RELEASED[filename]
    assert len(found) == count
    assert hashlib.sha256("\x00".join(found).encode()).hexdigest() == digest, (
        f"{filename} executes different SQL than when it was released: put the change in a new migration"
    )


def test_statements_split_outside_quotes_and_comments() -> None:
    from tokenbank.storage.sql.migrations.sqlfile import _split

    text = "-- a; comment\nCREATE f() AS $fn$ BEGIN x; y; END; $fn$;\nSELECT 'a;b' ; -- trailing; note\n"
    assert [p.strip() for p in _split(text)] == [
        "-- a; comment\nCREATE f() AS $fn$ BEGIN x; y; END; $fn$",
        "SELECT 'a;b'",
        "-- trailing; note",
    ]
