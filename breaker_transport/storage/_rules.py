"""The rules of a circuit, once, for both implementations: ``Circuit`` and the Lua ``SCRIPT``.

``breaker_transport/_circuit.py`` runs these rules in process; the Lua script below runs them
inside Redis, atomically, on state that every worker shares. ``tests/test_redis_rules.py`` drives
both with the same sequences and asserts the same decisions, states, generations, deadlines and
window counts, so the two cannot drift apart silently.

========================  =====================================================================
event                     rule
========================  =====================================================================
admit, mode disabled      pass through, count nothing
admit, CLOSED             admit (a ticket of the current generation)
admit, OPEN, forced       reject, retry after ``inf``
admit, OPEN, now < until  reject, retry after ``until - now``
admit, OPEN, now >= until -> HALF_OPEN ("recovery timeout elapsed"), then as HALF_OPEN
admit, HALF_OPEN          drop probe leases whose deadline (admitted + ``probe_timeout``) has
                          passed; a free slot (< ``half_open_max_calls``) admits a probe, else
                          reject, retry after 0
reject, mode observe      send anyway as a *shadow* call: counted as a rejection only, its
                          outcome moves nothing
settle, probe lease gone  (expired, or the half-open period ended) stale: moves nothing
settle, other generation  stale: counted by the worker, moves nothing
settle, ignored           moves nothing (a probe's slot is freed)
settle probe, failure     -> OPEN ("probe failed"), ``reopens + 1``, honours Retry-After
settle probe, slow        -> OPEN ("probe was slow"), ``reopens + 1``
settle probe, success     ``probe_successes + 1``; at ``success_threshold`` -> CLOSED
settle closed, window     first, record (failed, slow) in the window
settle closed, failure    ``consecutive + 1``; at ``failure_threshold`` -> OPEN
                          ("N consecutive failures"), ``reopens = 0``, honours Retry-After
settle closed, success    ``consecutive = 0``
settle closed, rates      once the window holds ``minimum_calls``:
                          failures / calls >= rate -> OPEN ("failure rate ..."), else
                          slow / calls >= slow rate -> OPEN ("slow call rate ...")
open duration             ``recovery_timeout * recovery_backoff ** reopens`` (the loop stops at
                          the cap), times ``(1 - jitter) + 2 * jitter * u`` for a uniform ``u``,
                          clamped to [recovery_timeout, cap]; a longer Retry-After lengthens it
                          up to the cap
-> HALF_OPEN              probe leases and probe successes cleared
-> CLOSED                 consecutive, reopens, forced and the window cleared
every transition          ``generation + 1``; the reason is stored with the state
force_open                forced; -> OPEN ("forced open") unless already open
reset                     -> CLOSED ("reset") unless already closed; forced, deadline,
                          consecutive, reopens and the window cleared
========================  =====================================================================

Shared-only rules (no in-process counterpart): the clock is Redis ``TIME`` read in the script (the
``now`` argument exists for the tests above); a worker that ran on its own while Redis was away
merges its view at its first admission after (an open circuit stays open until the later of the
two deadlines, a half-open one opens the shared state for a probe, and the consecutive count is the
larger of the two); the policy fingerprint of whoever created or last reset the state is stored
with it and a disagreeing worker is told; keys expire when idle (closed: ``idle_ttl`` after the
last settlement; open: ``idle_ttl`` after its deadline; forced open: never).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .._policy import BreakerPolicy, FailureKind

#: Opcodes of ``SCRIPT`` (its ``ARGV[1]``).
ADMIT, SETTLE, READ, RESET, FORCE, MODE = "admit", "settle", "read", "reset", "force", "mode"

#: Decisions of an admission (the first element of a reply).
D_ADMIT, D_PROBE, D_REJECT, D_DISABLED, D_SHADOW, D_NONE = 0, 1, 2, 3, 4, 5

#: Bits of a reply's flags.
F_POLICY_MISMATCH, F_STALE, F_LEASE_GONE = 1, 2, 4


#: Separates the fields of the script's last argument and of its reply.
SEP = "\x1f"
_INTS = (0, 1, 2, 4, 5, 6, 7, 10, 12, 13, 14)


def parse_reply(raw: bytes) -> list[Any]:
    """The script's reply as a list: decision, state, generation, seconds left open (bytes),
    forced, consecutive, reopens, probe successes, mode, reason, flags, retry after (bytes),
    window calls, failures, slow, Redis time (bytes)."""
    parts: list[Any] = raw.split(b"\x1f")
    for index in _INTS:
        parts[index] = int(parts[index])
    return parts


def pack_policy(policy: BreakerPolicy) -> tuple[str, str]:
    """The policy as the script reads it (a JSON array), and its fingerprint.

    The fingerprint also covers what decides outcomes before the script sees them (status codes,
    exception kinds, the slow-call duration), so workers that would count differently are told.
    """
    fields = [
        policy.failure_threshold or 0,
        float(policy.recovery_timeout),
        policy.half_open_max_calls,
        policy.success_threshold,
        float(policy.probe_timeout),
        -1.0 if policy.failure_rate_threshold is None else float(policy.failure_rate_threshold),
        policy.minimum_calls,
        policy.window_size,
        0.0 if policy.window_duration is None else float(policy.window_duration),
        0 if policy.slow_call_duration is None else 1,
        float(policy.slow_call_rate_threshold),
        float(policy.recovery_backoff),
        policy.effective_max_recovery_timeout,
        float(policy.recovery_jitter),
        policy.mode.value,
    ]
    packed = json.dumps(fields, separators=(",", ":"))
    outcome_rules = json.dumps(
        [
            sorted(policy.failure_status_codes),
            sorted(
                m.value if isinstance(m, FailureKind) else f"{m.__module__}.{m.__qualname__}"
                for m in policy.failure_exceptions
            ),
            policy.slow_call_duration,
            policy.respect_retry_after,
            policy.classify is not None,
        ]
    )
    digest = hashlib.sha1(f"{packed}|{outcome_rules}".encode(), usedforsecurity=False)
    return packed, digest.hexdigest()[:16]


#: KEYS[1] the state hash, KEYS[2] the probe leases (sorted set: member -> deadline),
#: KEYS[3] the count window's ring (one byte per call). All three share the circuit's hash tag.
#: ARGV[1] opcode, ARGV[2] packed policy, ARGV[3] fingerprint, ARGV[4] now ('' = Redis TIME),
#: ARGV[5] idle TTL in ms, ARGV[6] the opcode's own arguments ``A[1..]`` joined by SEP (see each
#: branch). The reply is one string: the fields of ``parse_reply``, joined by SEP.
SCRIPT = r"""
local H, P, R = KEYS[1], KEYS[2], KEYS[3]
local op = ARGV[1]
local FT, RT, HMAX, ST, PT, FRT, MINC, WSIZE, WDUR, SLOW, SRT, BACK, CAP, JIT, PMODE =
  unpack(cjson.decode(ARGV[2]))
local FP = ARGV[3]
local now
if ARGV[4] ~= '' then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local TTL = tonumber(ARGV[5])
-- The opcode's own arguments arrive as one string, fields separated by \31 (fewer arguments
-- to encode and decode on every call).
local A = {}
do
  local text, first = ARGV[6] or '', 1
  while true do
    local i = string.find(text, '\31', first, true)
    if i == nil then A[#A + 1] = string.sub(text, first); break end
    A[#A + 1] = string.sub(text, first, i - 1)
    first = i + 1
  end
end
local function num(x) return string.format('%.17g', x) end

local raw = redis.call('HGETALL', H)
local h = {}
for i = 1, #raw, 2 do h[raw[i]] = raw[i + 1] end
local s = tonumber(h.s or '0')      -- 0 closed, 1 open, 2 half-open
local g = tonumber(h.g or '0')      -- generation
local u = tonumber(h.u or '0')      -- open until (Redis clock)
local f = tonumber(h.f or '0')      -- forced open
local c = tonumber(h.c or '0')      -- consecutive failures
local r = tonumber(h.r or '0')      -- re-opens in a row
local ps = tonumber(h.p or '0')     -- probe successes in this half-open period
local m = h.m or ''                 -- mode set at run time ('' = the policy's)
local fp = h.fp or ''
local why = h.why or ''
local wn = tonumber(h.wn or '0')    -- window: calls, failures, slow
local wf = tonumber(h.wf or '0')
local ws = tonumber(h.ws or '0')
local flags = 0
local dirty = false
if fp == '' then fp = FP elseif fp ~= FP then flags = flags + 1 end

local function window_clear()
  wn, wf, ws = 0, 0, 0
  redis.call('HDEL', H, 'wp', 'wh', 'tb')
  redis.call('DEL', R)
end

local function transition(new, reason)
  s = new
  g = g + 1
  why = reason
  dirty = true
  redis.call('DEL', P)
  if new == 2 then ps = 0 end
  if new == 0 then
    c, r, f = 0, 0, 0
    window_clear()
  end
end

local function open(reason, hint, reopen, rnd)
  if reopen then r = r + 1 else r = 0 end
  local d = RT
  for _ = 1, r do
    d = d * BACK
    if d >= CAP then d = CAP; break end
  end
  if JIT > 0 then d = d * ((1.0 - JIT) + ((1.0 + JIT) - (1.0 - JIT)) * rnd) end
  d = math.min(math.max(d, RT), CAP)
  if hint ~= nil and hint > d then d = math.min(hint, CAP) end
  u = now + d
  transition(1, reason)
end

-- The time window: 10 buckets of WDUR / 10 seconds, kept as one JSON array of 30 counts.
local function zeros()
  local tb = {}
  for i = 1, 30 do tb[i] = 0 end
  return tb
end

local function time_advance()
  local width = WDUR / 10
  local index = math.floor(now / width)
  local head = tonumber(h.wh or '')
  if head == nil then
    h.wh = index
    redis.call('HSET', H, 'wh', num(index))
    return nil
  end
  local tb = h.tb and cjson.decode(h.tb) or zeros()
  if index > head then
    for step = head + 1, head + math.min(index - head, 10) do
      local base = 3 * (step % 10)
      wn = wn - tb[base + 1]; wf = wf - tb[base + 2]; ws = ws - tb[base + 3]
      tb[base + 1], tb[base + 2], tb[base + 3] = 0, 0, 0
    end
    head = index
    h.wh = head
    dirty = true
    redis.call('HSET', H, 'wh', num(head), 'tb', cjson.encode(tb))
  end
  return tb
end

local function window_record(failed, slow)
  local fb = failed and 1 or 0
  local sb = slow and 1 or 0
  if WDUR > 0 then
    local tb = time_advance() or zeros()
    local base = 3 * (tonumber(h.wh) % 10)
    tb[base + 1] = tb[base + 1] + 1
    tb[base + 2] = tb[base + 2] + fb
    tb[base + 3] = tb[base + 3] + sb
    redis.call('HSET', H, 'tb', cjson.encode(tb))
    wn = wn + 1
  else
    local pos = tonumber(h.wp or '0')
    if wn == WSIZE then
      local old = string.byte(redis.call('GETRANGE', R, pos, pos)) or 0
      wf = wf - (old % 2)
      ws = ws - math.floor(old / 2)
    else
      wn = wn + 1
    end
    redis.call('SETRANGE', R, pos, string.char(fb + 2 * sb))
    pos = pos + 1
    if pos == WSIZE then pos = 0 end
    redis.call('HSET', H, 'wp', pos)
  end
  wf = wf + fb
  ws = ws + sb
  dirty = true
end

local function rate_trip()
  -- divide, never multiply: 0.07 * 100 is 7.000000000000001 (as in Circuit._rate_trip)
  if FRT >= 0 and wf / wn >= FRT then
    return string.format('failure rate %d/%d reached %.0f%%', wf, wn, FRT * 100)
  end
  if SLOW == 1 and ws / wn >= SRT then
    return string.format('slow call rate %d/%d reached %.0f%%', ws, wn, SRT * 100)
  end
  return nil
end

local function mode()
  if m ~= '' then return m end
  return PMODE
end

local function finish(decision, retry)
  if dirty then
    redis.call('HSET', H, 's', s, 'g', g, 'u', num(u), 'f', f, 'c', c, 'r', r, 'p', ps,
      'm', m, 'fp', fp, 'why', why, 'wn', wn, 'wf', wf, 'ws', ws)
  end
  if dirty or op == 'settle' then
    -- Expire when idle: closed, TTL after the last settlement; open, TTL after its deadline;
    -- half-open, TTL after the last lease could end; forced open, never.
    local ttl
    if f == 1 then ttl = nil
    elseif s == 0 then ttl = TTL
    elseif s == 1 then ttl = math.max(math.ceil((u - now) * 1000), 0) + TTL
    else ttl = math.ceil(PT * 1000) + TTL end
    for _, k in ipairs({H, P, R}) do
      if ttl == nil then redis.call('PERSIST', k) else redis.call('PEXPIRE', k, ttl) end
    end
  end
  local rem = ''
  if s == 1 and f == 0 then rem = num(u - now) end
  -- One string, fields separated by \31: a client parses one bulk reply much faster than 16.
  local fields = {decision, s, g, rem, f, c, r, ps, mode(), why, flags, retry or '', wn, wf, ws}
  fields[#fields + 1] = num(now)
  return table.concat(fields, '\31')
end

if op == 'admit' then
  -- A[1] probe member, A[2] default mode for a new state as the worker knows it,
  -- A[3..6] a worker's own view after Redis was away (state, seconds left open, forced,
  -- consecutive) or '', A[7] the key of the run-time default mode, read here for a new state
  -- ('' on Cluster, where it lives in another slot: the worker's A[2] serves instead).
  if #raw == 0 then
    local default = A[2]
    if A[7] ~= '' then default = redis.call('HGET', A[7], 'mode') or '' end
    if default ~= '' then m = default; dirty = true end
  end
  if A[3] ~= '' then
    local ls, lrem = tonumber(A[3]), tonumber(A[4])
    local lf, lc = tonumber(A[5]), tonumber(A[6])
    if ls == 1 then
      if s ~= 1 then
        u = now + lrem
        transition(1, 'open in a worker while Redis was away')
      elseif now + lrem > u then
        u = now + lrem; dirty = true
      end
      if lf == 1 and f == 0 then f = 1; dirty = true end
    elseif ls == 2 and s == 0 then
      u = now
      transition(1, 'half-open in a worker while Redis was away')
    end
    if s == 0 and lc > c then c = lc; dirty = true end
  end
  local md = mode()
  if md == 'disabled' then return finish(3) end
  if s == 0 then return finish(0) end
  local retry = nil
  if s == 1 then
    if f == 1 then retry = 'inf'
    elseif now < u then retry = num(u - now)
    else transition(2, 'recovery timeout elapsed') end
  end
  if retry == nil then
    redis.call('ZREMRANGEBYSCORE', P, '-inf', num(now))
    if redis.call('ZCARD', P) < HMAX then
      redis.call('ZADD', P, num(now + PT), A[1])
      dirty = true
      return finish(1)
    end
    retry = '0'
  end
  if md == 'observe' then return finish(4, retry) end
  return finish(2, retry)
end

if op == 'settle' then
  -- A[1] ticket generation, A[2] probe member or '', A[3] outcome (s/f/i),
  -- A[4] slow (0/1), A[5] Retry-After hint in seconds or '', A[6] uniform random.
  local tg, member, outcome = tonumber(A[1]), A[2], A[3]
  local slow = A[4] == '1'
  local hint = tonumber(A[5])
  local rnd = tonumber(A[6])
  if member ~= '' and redis.call('ZREM', P, member) == 0 then
    flags = flags + 4
    return finish(5)
  end
  if tg ~= g then
    flags = flags + 2
    return finish(5)
  end
  if outcome == 'i' then return finish(5) end
  local failed = outcome == 'f'
  if member ~= '' then
    if failed then open('probe failed', hint, true, rnd)
    elseif slow then open('probe was slow', nil, true, rnd)
    else
      ps = ps + 1
      dirty = true
      if ps >= ST then transition(0, 'probe succeeded') end
    end
    return finish(5)
  end
  local windowed = FRT >= 0 or SLOW == 1
  if windowed then  -- first: the outcome that trips the consecutive rule counts too
    window_record(failed, slow)
  end
  if failed then
    c = c + 1
    dirty = true
    if FT > 0 and c >= FT then
      open(string.format('%d consecutive failures', c), hint, false, rnd)
      return finish(5)
    end
  elseif c ~= 0 then
    c = 0
    dirty = true
  end
  if windowed then
    if wn >= MINC then
      local reason = rate_trip()
      if reason ~= nil then
        if failed then open(reason, hint, false, rnd) else open(reason, nil, false, rnd) end
      end
    end
  end
  return finish(5)
end

if op == 'read' then
  if s == 1 and f == 0 and now >= u then transition(2, 'recovery timeout elapsed') end
  if WDUR > 0 and #raw > 0 then time_advance() end
  return finish(5)
end

if op == 'reset' then
  if s ~= 0 then transition(0, 'reset') end
  f, u, c, r = 0, 0, 0, 0
  fp = FP
  flags = 0
  window_clear()
  redis.call('DEL', P)
  dirty = true
  return finish(5)
end

if op == 'force' then
  f = 1
  if s ~= 1 then
    u = 0
    transition(1, 'forced open')
  end
  dirty = true
  return finish(5)
end

if op == 'mode' then
  -- A[1] the mode to set
  m = A[1]
  dirty = true
  return finish(5)
end

return redis.error_reply('breaker_transport: unknown opcode ' .. tostring(op))
"""
