-- status.lua: GENERATED from tokenbank.status.Status; do not edit. Regenerate with
--   .venv/bin/python -m tokenbank.storage.redis.scripts
-- The outcome number of each op, as the write scripts answer it ({"s": status, ...}).
local ST_OK = 0
local ST_REPLAYED = 1
local ST_INSUFFICIENT_BALANCE = 2
local ST_SUPPLY_CAP_EXCEEDED = 3
local ST_IDEMPOTENCY_CONFLICT = 4
local ST_HOLD_NOT_FOUND = 5
local ST_HOLD_NOT_PENDING = 6
local ST_HOLD_EXPIRED = 7
local ST_CAPTURE_EXCEEDS_HOLD = 8
local ST_TRANSACTION_NOT_FOUND = 9
local ST_NOT_REVERSIBLE = 10
local ST_ALREADY_REVERSED = 11
local ST_TOKEN_NOT_INITIALIZED = 12
local ST_DUPLICATE_TRANSACTION = 13
local ST_BATCH_ABORTED = 14
local ST_DEBITS_FROZEN = 15
local ST_CREDITS_FROZEN = 16
local ST_ACCOUNT_CLOSED = 17
local ST_MAX_BALANCE_EXCEEDED = 18
local ST_SPEND_LIMIT_EXCEEDED = 19
local ST_ACCOUNT_NOT_EMPTY = 20
local ST_OVERDRAFT_IN_USE = 21
local ST_OVERDRAFT_TOO_LARGE = 22
