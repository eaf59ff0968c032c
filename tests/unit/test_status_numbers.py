"""Status numbers have one source, :class:`tokenbank.status.Status`; every copy in SQL and Lua is checked.

- Lua reads them as ``ST_<NAME>`` constants from ``lua/status.lua``, generated from ``Status``: the file must be
  up to date, every ``ST_`` name used must be a ``Status`` member, and no status number may be written as a
  literal in a script that answers op statuses (one that writes an ``"s"`` field).
- The PL/pgSQL functions of released migrations cannot change, so their literals stay; each one is listed
  below by its place (the line before it and its own line, numbers blanked) with the ``Status`` it must be.
  A literal that is not listed, or whose number differs from its ``Status``, fails.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import tokenbank
from tokenbank.status import Status
from tokenbank.storage.redis.scripts import Scripts, source, status_lua

SRC = Path(tokenbank.__file__).parent
LUA = SRC / "storage" / "redis" / "lua"

# A status in SQL: a json "s" field built by json(b)_build_object or written as JSON text, or a comparison
# against the "s" field of a result.
SQL_STATUS = re.compile(r"""'s',\s*(\d+)|"s":\s*(\d+)|->>'s'\)::int\s*[<>=]+\s*(\d+)|\bv_s\s*:=\s*(\d+)""")
# A status in Lua: the same JSON field, or a number returned/compared where a status is.
LUA_STATUS = re.compile(
    r""""s":\s*\d|\breturn[ \t]+\d+[ \t]*(?:,|$|\bend\b)|\bstatus\s*[<>=~]=?\s*\d|\bstored\(\s*\d""", re.M
)

# (line before, line) with each status number replaced by "#" -> the Status of each "#", in order.
SQL_SITES: dict[tuple[str, str], tuple[Status, ...]] = {
    # tb_apply: the token does not exist -> every op
    ("IF v_token.symbol IS NULL THEN",
     "SELECT jsonb_agg(jsonb_build_object('s', #)) INTO v_results FROM jsonb_array_elements(p_ops);"):
        (Status.TOKEN_NOT_INITIALIZED,),
    ("IF NOT FOUND THEN",
     "SELECT json_agg(json_build_object('s', #)) INTO v_results FROM jsonb_array_elements(p_ops);"):
        (Status.TOKEN_NOT_INITIALIZED,),
    ("IF v_token.symbol IS NULL THEN",
     "SELECT json_agg(json_build_object('s', #)) INTO v_results FROM jsonb_array_elements(p_ops);"):
        (Status.TOKEN_NOT_INITIALIZED,),
    # tb_apply, atomic: a status above REPLAYED (the last success) fails the batch; the others report aborted
    ("v_res := tb_apply_one(p_token, v_op);", "IF (v_res->>'s')::int > # THEN"): (Status.REPLAYED,),
    ("SELECT jsonb_agg(CASE WHEN n - 1 = (v_detail->>'idx')::int THEN v_detail->'res'",
     "ELSE jsonb_build_object('s', #) END ORDER BY n)"): (Status.BATCH_ABORTED,),
    ("SELECT json_agg(CASE WHEN n - 1 = (v_detail->>'idx')::int THEN (v_detail->'res')::json",
     "ELSE json_build_object('s', #) END ORDER BY n)"): (Status.BATCH_ABORTED,),
    # tb_apply_one: replays and resends
    ("IF v_tx.request_hash IS DISTINCT FROM p_op->>'hash' THEN", "RETURN jsonb_build_object('s', #);"):
        (Status.IDEMPOTENCY_CONFLICT,),
    ("SELECT * INTO v_hold FROM tb_holds WHERE id = v_tx.hold_id;",
     "RETURN jsonb_build_object('s', #, 't', jsonb_build_array(to_jsonb(v_tx)),"): (Status.REPLAYED,),
    ("IF p_op ? 'ts' THEN", "RETURN jsonb_build_object('s', #);"): (Status.DUPLICATE_TRANSACTION,),
    # tb_apply_one: debits that the balance does not cover (transfer, burn, hold; reversal below)
    ("WHERE token = p_token AND user_id = p_op->>'from' AND balance >= v_amount RETURNING balance INTO v_from_bal;",
     "IF NOT FOUND THEN RETURN jsonb_build_object('s', #); END IF;"): (Status.INSUFFICIENT_BALANCE,),
    ("> COALESCE(v_token.max_supply, 9223372036854775807)::numeric THEN", "RETURN jsonb_build_object('s', #);"):
        (Status.SUPPLY_CAP_EXCEEDED,),
    # tb_apply_one: capture / void
    ("SELECT * INTO v_hold FROM tb_holds WHERE id = p_op->>'hold_id' AND token = p_token FOR UPDATE;",
     "IF NOT FOUND THEN RETURN jsonb_build_object('s', #); END IF;"): (Status.HOLD_NOT_FOUND,),
    ("IF NOT FOUND THEN RETURN jsonb_build_object('s', #); END IF;",
     "IF v_hold.status <> 'pending' THEN RETURN jsonb_build_object('s', #); END IF;"): (Status.HOLD_NOT_PENDING,),
    ("IF v_kind = 'capture' THEN", "IF v_hold.expires_at <= v_now THEN RETURN jsonb_build_object('s', #); END IF;"):
        (Status.HOLD_EXPIRED,),
    ("v_amount := COALESCE(v_amount, v_hold.amount);",
     "IF v_amount > v_hold.amount THEN RETURN jsonb_build_object('s', #); END IF;"): (Status.CAPTURE_EXCEEDS_HOLD,),
    # tb_apply_one: reversal
    ("SELECT * INTO v_tx2 FROM tb_transactions WHERE id = p_op->>'reverses_id' AND token = p_token;",
     "IF NOT FOUND THEN RETURN jsonb_build_object('s', #); END IF;"): (Status.TRANSACTION_NOT_FOUND,),
    ("IF NOT FOUND THEN RETURN jsonb_build_object('s', #); END IF;",
     "IF v_tx2.type <> 'transfer' THEN RETURN jsonb_build_object('s', #); END IF;"): (Status.NOT_REVERSIBLE,),
    ("IF EXISTS (SELECT 1 FROM tb_transactions WHERE token = p_token AND reverses_id = v_tx2.id) THEN",
     "RETURN jsonb_build_object('s', #);"): (Status.ALREADY_REVERSED,),
    ("RETURNING balance INTO v_from_bal;", "IF NOT FOUND THEN RETURN jsonb_build_object('s', #); END IF;"):
        (Status.INSUFFICIENT_BALANCE,),
    # tb_apply_one: the op applied
    ("RETURN jsonb_build_object(", "'s', #,"): (Status.OK,),
    # tb_apply_transfers: an atomic call failed at v_fail; a non-atomic op without a journal row was not covered
    ("IF v_fail IS NOT NULL THEN",
     """SELECT json_agg(CASE WHEN n = v_fail THEN '{"s": #}'::json ELSE '{"s": #}'::json END ORDER BY n)"""):
        (Status.INSUFFICIENT_BALANCE, Status.BATCH_ABORTED),
    (")", """SELECT (SELECT json_agg(CASE WHEN ins.id IS NULL THEN '{"s": #}'::json"""):
        (Status.INSUFFICIENT_BALANCE,),
    ("""SELECT (SELECT json_agg(CASE WHEN ins.id IS NULL THEN '{"s": #}'::json""",
     "ELSE json_build_object('s', #, 't', json_build_array(row_to_json(ins)), 'h', NULL)"): (Status.OK,),
    # tb_controls_refusal (0008): the refusals of account controls, in the order they are checked
    ("AND user_id IN (v_debit, v_credit)) THEN", "RETURN jsonb_build_object('s', #);"): (Status.ACCOUNT_CLOSED,),
    ("IF FOUND AND c.debits_frozen AND (c.frozen_until IS NULL OR c.frozen_until > p_now) THEN",
     "RETURN jsonb_build_object('s', #);"): (Status.DEBITS_FROZEN,),
    ("IF FOUND AND c.credits_frozen AND (c.frozen_until IS NULL OR c.frozen_until > p_now) THEN",
     "RETURN jsonb_build_object('s', #);"): (Status.CREDITS_FROZEN,),
    ("IF v_spent + v_amount > c.window_amount THEN", "RETURN jsonb_build_object('s', #);"):
        (Status.SPEND_LIMIT_EXCEEDED,),
    ("IF COALESCE(v_balance, 0)::numeric + v_amount > c.max_balance THEN", "RETURN jsonb_build_object('s', #);"):
        (Status.MAX_BALANCE_EXCEEDED,),
    # tb_apply_controlled: a debit written (OK) is counted in its sender's spend window
    ("v_res := tb_apply_one(p_token, p_op);",
     "IF (v_res->>'s')::int = # AND p_op->>'kind' IN ('transfer', 'burn', 'hold') THEN"): (Status.OK,),
    # tb_apply (0008), atomic: as in 0001/0003, with the controlled path
    ("v_res := CASE WHEN v_controlled THEN tb_apply_controlled(p_token, v_op) ELSE tb_apply_one(p_token, v_op) END;",
     "IF (v_res->>'s')::int > # THEN"): (Status.REPLAYED,),
    # tb_apply_transfers (0008): an op's refusal, controls first (in tb_controls_refusal's order), then balance
    ("IF v_ctl THEN", "IF c_closed[v_f] OR c_closed[v_t] THEN v_s := #;"): (Status.ACCOUNT_CLOSED,),
    ("IF c_closed[v_f] OR c_closed[v_t] THEN v_s := #;", "ELSIF c_df[v_f] THEN v_s := #;"): (Status.DEBITS_FROZEN,),
    ("ELSIF c_df[v_f] THEN v_s := #;", "ELSIF c_cf[v_t] THEN v_s := #;"): (Status.CREDITS_FROZEN,),
    ("ELSIF c_cf[v_t] THEN v_s := #;",
     "ELSIF c_wa[v_f] IS NOT NULL AND c_spent[v_f] + v_a > c_wa[v_f] THEN v_s := #;"): (Status.SPEND_LIMIT_EXCEEDED,),
    ("ELSIF c_wa[v_f] IS NOT NULL AND c_spent[v_f] + v_a > c_wa[v_f] THEN v_s := #;",
     "ELSIF c_max[v_t] IS NOT NULL AND v_bal[v_t]::numeric + v_a > c_max[v_t] THEN v_s := #;"):
        (Status.MAX_BALANCE_EXCEEDED,),
    ("END IF;", "IF v_s IS NULL AND v_bal[v_f] < v_a THEN v_s := #; END IF;"): (Status.INSUFFICIENT_BALANCE,),
    # 0010: the same two places, with the overdraft (tb_apply_controlled's mark, tb_apply_transfers' floor)
    ("v_res := tb_apply_one(p_token, p_op || '{\"ctl\": true}');",
     "IF (v_res->>'s')::int = # AND p_op->>'kind' IN ('transfer', 'burn', 'hold') THEN"): (Status.OK,),
    ("END IF;",
     "IF v_s IS NULL AND v_bal[v_f] < v_a - COALESCE(c_od[v_f], 0) THEN v_s := #; END IF;"):
        (Status.INSUFFICIENT_BALANCE,),
    ("IF v_fail IS NOT NULL THEN",
     """SELECT json_agg(CASE WHEN n = v_fail THEN json_build_object('s', v_st[n]) ELSE '{"s": #}'::json END"""):
        (Status.BATCH_ABORTED,),
    # 0011: the mint's cap leaves room for every overdraft limit
    ("9223372036854775807 - tb_overdraft_total(p_token)) THEN", "RETURN jsonb_build_object('s', #);"):
        (Status.SUPPLY_CAP_EXCEEDED,),
    ("SELECT (SELECT json_agg(CASE WHEN ins.id IS NULL THEN json_build_object('s', v_st[e.n])",
     "ELSE json_build_object('s', #, 't', json_build_array(row_to_json(ins)), 'h', NULL)"): (Status.OK,),
    # 0013 (lots): every debit reads has_lots with its balance; an expiry with nothing to do is OK without a
    # transaction; a funded grant counts in its funder's spend window; the set-based path leaves the locked part out
    ("RETURNING balance, has_lots INTO v_from_bal, v_has;",
     "IF NOT FOUND THEN RETURN jsonb_build_object('s', #); END IF;"): (Status.INSUFFICIENT_BALANCE,),
    ("OR v_lot.expires_at IS NULL OR v_lot.expires_at > v_now THEN", "RETURN jsonb_build_object('s', #);"):
        (Status.OK,),
    ("v_res := tb_apply_one(p_token, p_op || '{\"ctl\": true}');",
     "IF (v_res->>'s')::int = # AND (p_op->>'kind' IN ('transfer', 'burn', 'hold')"): (Status.OK,),
    ("END IF;",
     "IF v_s IS NULL AND v_bal[v_f] - v_locked < v_a - COALESCE(c_od[v_f], 0) THEN v_s := #; END IF;"):
        (Status.INSUFFICIENT_BALANCE,),
}  # fmt: skip


def _numbers(match: re.Match[str]) -> int:
    return int(next(group for group in match.groups() if group is not None))


def _blank(code: str) -> str:
    return SQL_STATUS.sub(lambda m: m.group(0).replace(str(_numbers(m)), "#"), code).strip()


def _sql_sources() -> list[tuple[str, str]]:
    """Every SQL text of the package: .sql files, and SQL written inside Python under migrations/."""
    found = [(str(path.relative_to(SRC)), path.read_text()) for path in sorted(SRC.rglob("*.sql"))]
    found += [(str(path.relative_to(SRC)), path.read_text()) for path in sorted(SRC.rglob("migrations/**/*.py"))]
    return found


def test_every_status_literal_in_sql_is_the_status_of_its_place() -> None:
    seen = 0
    problems = []
    for name, text in _sql_sources():
        before = ""
        for number, line in enumerate(text.splitlines(), 1):
            code = line.split("--")[0] if name.endswith(".sql") else line.split("#")[0]
            matches = list(SQL_STATUS.finditer(code))
            if matches:
                seen += len(matches)
                expected = SQL_SITES.get((_blank(before), _blank(code)))
                found = tuple(_numbers(m) for m in matches)
                if expected is None:
                    problems.append(f"{name}:{number}: status literal at an unlisted place: {code.strip()}")
                elif found != tuple(int(status) for status in expected):
                    names = ", ".join(status.name for status in expected)
                    problems.append(f"{name}:{number}: {found} should be {names}: {code.strip()}")
            if code.strip():
                before = code
    assert not problems, "\n".join(problems)
    assert seen >= 28  # the scan found the functions (a moved file would make this pass vacuously)


def _lua_code(path: Path) -> str:
    return "\n".join(line.split("--")[0] for line in path.read_text().splitlines())


def test_status_lua_is_generated_from_status() -> None:
    assert (LUA / "status.lua").read_text() == status_lua(), (
        "lua/status.lua is out of date: run .venv/bin/python -m tokenbank.storage.redis.scripts"
    )


@pytest.mark.parametrize("path", sorted(LUA.glob("*.lua")), ids=lambda p: p.name)
def test_lua_names_statuses_instead_of_writing_numbers(path: Path) -> None:
    if path.name == "status.lua":
        return
    code = _lua_code(path)
    literals = [m.group(0) for m in LUA_STATUS.finditer(code)]
    if '"s"' not in path.read_text():  # answers no op status: its numbers (0/1 flags, cmp's -1/0/1) are not statuses
        literals = [literal for literal in literals if '"s"' in literal]
    assert literals == [], f"{path.name}: write ST_<NAME> (status.lua) instead of {literals}"
    for name in re.findall(r"\bST_([A-Z_]+)", code):
        assert name in Status.__members__, f"{path.name}: ST_{name} is not a Status"


@pytest.mark.parametrize("name", list(Scripts.__dataclass_fields__))
def test_scripts_that_name_statuses_get_status_lua(name: str) -> None:
    text = source(f"{name}.lua")
    if re.search(r"\bST_[A-Z]", text.replace("local ST_", "")):
        assert "\nlocal ST_OK = " in text, f"{name}.lua uses ST_ names but status.lua is not prepended"
