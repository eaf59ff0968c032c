-- decimal.lua: exact arithmetic on decimal strings (amounts, balances, supplies up to 2^63-1 and their sums),
-- which Lua's numbers (doubles) hold exactly only below 2^53; scripts.py prepends it to the scripts that need it.
-- KEYS, ARGV: none (a library).
-- Returns: nothing (defines MAX_UNITS, cmp, add, sub, negative, sadd, ssub, within, overdraft_total).

local MAX_UNITS = '9223372036854775807' -- 2^63-1: the largest amount, balance or supply

-- decimal strings (canonical; non-negative except balances, which an overdraft lets go below zero) ------
local function cmp(a, b)
    if #a ~= #b then return #a < #b and -1 or 1 end
    for i = 1, #a do
        local x, y = string.byte(a, i), string.byte(b, i)
        if x ~= y then return x < y and -1 or 1 end
    end
    return 0
end

local function add(a, b)
    if #a < 16 and #b < 16 then return string.format('%.0f', tonumber(a) + tonumber(b)) end -- exact: < 2^53
    local out, carry, i, j = {}, 0, #a, #b
    while i > 0 or j > 0 or carry > 0 do
        local d = carry + (i > 0 and string.byte(a, i) - 48 or 0) + (j > 0 and string.byte(b, j) - 48 or 0)
        out[#out + 1] = string.char(48 + d % 10)
        carry = d >= 10 and 1 or 0
        i, j = i - 1, j - 1
    end
    return string.reverse(table.concat(out))
end

local function sub(a, b) -- a >= b >= 0
    local out, borrow, i, j = {}, 0, #a, #b
    while i > 0 do
        local d = string.byte(a, i) - 48 - borrow - (j > 0 and string.byte(b, j) - 48 or 0)
        borrow = d < 0 and 1 or 0
        out[#out + 1] = string.char(48 + d + 10 * borrow)
        i, j = i - 1, j - 1
    end
    local s = string.gsub(string.reverse(table.concat(out)), '^0+', '')
    return s == '' and '0' or s
end

local function negative(a) return string.byte(a, 1) == 45 end -- '-'

local function sadd(a, b) -- a + b for a signed (a balance) and b >= 0, signed
    if not negative(a) then return add(a, b) end
    local x = string.sub(a, 2)
    if cmp(b, x) >= 0 then return sub(b, x) end
    return '-' .. sub(x, b)
end

local function ssub(a, b) -- a - b for a signed (a balance) and b >= 0, signed
    if negative(a) then return '-' .. add(string.sub(a, 2), b) end
    if cmp(a, b) >= 0 then return sub(a, b) end
    return '-' .. sub(b, a)
end

local function within(b, od) -- whether balance b (signed) is at or above -od (od nil: zero)
    if not negative(b) then return true end
    return od ~= nil and cmp(string.sub(b, 2), od) <= 0
end

-- Every overdraft limit of a token added up: the token hash's "overdrafts" field, which set_controls.lua keeps;
-- counted once from the controls hash, and stored, for a token that has no field yet (its limits were set before
-- the field was kept, or it never had one): so only the first call reads every account's controls. A mint and a
-- raised limit keep the total supply plus this sum within MAX_UNITS, so no balance or held amount can pass it.
-- Writes: call it from write scripts only.
local function overdraft_total(token_key, ctrl_key)
    local total = redis.call('HGET', token_key, 'overdrafts')
    if total then return total end
    total = '0'
    for _, js in ipairs(redis.call('HVALS', ctrl_key)) do
        local od = cjson.decode(js).od
        if od then total = add(total, od) end
    end
    redis.call('HSET', token_key, 'overdrafts', total)
    return total
end
