"""Redis online store: one hash per record, every write an atomic Lua compare-and-set on the event time.

Key `fs:<group>:<record id>`; fields `_e` (event time), `_x` (expires at, '' = never), `_d` ('1' = soft-deleted
tombstone) and one field per feature (feature names start with a letter or digit, so never clash).
Values: Integral/Fractional as decimal text, String as is, collections as JSON. A record with an expiry also
gets a Redis PEXPIREAT one second later, so expired records are removed physically as well as hidden at read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import orjson
import redis
from pydantic import Field
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from core.schema import Strict
from featurestore.online.base import OnlineStore, StoredRecord
from featurestore.records import ConflictError, Record, RecordError, as_text
from featurestore.spec import FeatureGroupSpec, FeatureType

_LIVE = """
local function live(x, now)
  return (not x) or x == '' or tonumber(x) > tonumber(now)
end
"""

# KEYS: one per record; ARGV: now, then per record: event_time, expires_at|'', n_fields, f1, v1, ...
PUT_MANY = _LIVE + """
local now = ARGV[1]
local i = 2
local applied = 0
for k = 1, #KEYS do
  local et, exp, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local cur = redis.call('HMGET', KEYS[k], '_e', '_x')
  if not (cur[1] and tonumber(et) <= tonumber(cur[1]) and live(cur[2], now)) then
    if cur[1] then redis.call('DEL', KEYS[k]) end
    if n > 0 then
      redis.call('HSET', KEYS[k], '_e', et, '_x', exp, unpack(ARGV, i + 3, i + 2 + 2 * n))
    else
      redis.call('HSET', KEYS[k], '_e', et, '_x', exp)
    end
    if exp ~= '' then redis.call('PEXPIREAT', KEYS[k], math.floor(tonumber(exp) * 1000) + 1000) end
    applied = applied + 1
  end
  i = i + 3 + 2 * n
end
return applied
"""

# KEYS[1]; ARGV: event_time|'' , expires_at|''|'-'(keep), now, n_set, f1, v1, ..., then fields to remove
UPDATE = _LIVE + """
local cur = redis.call('HMGET', KEYS[1], '_e', '_x', '_d')
local present = cur[1] and live(cur[2], ARGV[3])
local et = ARGV[1]
local exp = ARGV[2]
if present and cur[3] ~= '1' then
  if et ~= '' and tonumber(et) < tonumber(cur[1]) then return {-1, cur[1]} end
  if et == '' then et = cur[1] end
  if exp == '-' then exp = cur[2] or '' end
else
  if present and et ~= '' and tonumber(et) <= tonumber(cur[1]) then return {-1, cur[1]} end
  if et == '' then return {-2, ''} end
  if exp == '-' then exp = '' end
  redis.call('DEL', KEYS[1])
end
local n = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], '_e', et, '_x', exp)
redis.call('HDEL', KEYS[1], '_d')
if n > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 5, 4 + 2 * n)) end
if #ARGV > 4 + 2 * n then redis.call('HDEL', KEYS[1], unpack(ARGV, 5 + 2 * n)) end
redis.call('PERSIST', KEYS[1])
if exp ~= '' then redis.call('PEXPIREAT', KEYS[1], math.floor(tonumber(exp) * 1000) + 1000) end
return {1, et}
"""

# KEYS[1]; ARGV: event_time, hard '1'|'0', now
DELETE = _LIVE + """
local cur = redis.call('HMGET', KEYS[1], '_e', '_x')
if cur[1] and tonumber(ARGV[1]) <= tonumber(cur[1]) and live(cur[2], ARGV[3]) then
  if ARGV[2] == '1' then return -1 end
  return 0
end
redis.call('DEL', KEYS[1])
if ARGV[2] ~= '1' then redis.call('HSET', KEYS[1], '_e', ARGV[1], '_d', '1') end
return 1
"""

# read many records in one command (one reply to parse instead of one per key)
HGETALL_MANY = """
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGETALL', KEYS[i]) end
return out
"""
HMGET_MANY = """
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HMGET', KEYS[i], unpack(ARGV)) end
return out
"""

_PIPELINE = 1000
_PUT_CHUNK = 500  # records per atomic PUT_MANY call


def _encoder(ftype: FeatureType, collection: Any) -> Callable[[Any], str]:
    if collection is not None:
        return lambda v: orjson.dumps(v).decode()
    if ftype is FeatureType.FRACTIONAL:
        return repr
    return str


def _decoder(ftype: FeatureType, collection: Any) -> Callable[[str], Any]:
    if collection is not None:
        return orjson.loads
    return {FeatureType.INTEGRAL: int, FeatureType.FRACTIONAL: float, FeatureType.STRING: lambda s: s}[ftype]


def _text(stored: str) -> str:
    return stored


def _collection_text(stored: str) -> list[str]:
    return as_text(orjson.loads(stored))


class _Codec:
    def __init__(self, spec: FeatureGroupSpec):
        self.enc = {f.name: _encoder(f.type, f.collection) for f in spec.features}
        self.dec = {f.name: _decoder(f.type, f.collection) for f in spec.features}
        # stored scalars already are SageMaker's text (repr of a float, decimal int): only collections are decoded
        self.text = {f.name: _text if f.collection is None else _collection_text for f in spec.features}
        self.prefix = f"fs:{spec.name}:"


class RedisConfig(Strict):
    """A Redis server (ferry.yaml's `redis` section selects it)."""

    type: Literal["redis"] = "redis"
    url: str = Field("redis://127.0.0.1:6379/0", description="redis:// or rediss:// URL")
    timeout_s: float = Field(10.0, gt=0, description="socket timeout of one command")


class RedisOnlineStore(OnlineStore):
    config_class = RedisConfig
    unavailable_errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", timeout: float = 10.0):
        self.config = RedisConfig(url=url, timeout_s=timeout)
        self.url = url
        # few, quick retries: a store that is down must surface (503, or the ingest worker pauses), not hang
        self.r = redis.Redis.from_url(url, decode_responses=True, socket_timeout=timeout,
                                      socket_connect_timeout=min(timeout, 5.0),
                                      retry=Retry(ExponentialWithJitterBackoff(cap=0.5, base=0.05), 2))
        self._put = self.r.register_script(PUT_MANY)
        self._update = self.r.register_script(UPDATE)
        self._delete = self.r.register_script(DELETE)
        self._hgetall_many = self.r.register_script(HGETALL_MANY)
        self._hmget_many = self.r.register_script(HMGET_MANY)
        self._codecs: dict[str, tuple[FeatureGroupSpec, _Codec]] = {}

    @classmethod
    def from_config(cls, config: RedisConfig, data_dir: Path) -> "RedisOnlineStore":
        return cls(config.url, config.timeout_s)

    def _codec(self, spec: FeatureGroupSpec) -> _Codec:
        hit = self._codecs.get(spec.name)
        if hit is None or hit[0] is not spec:
            hit = (spec, _Codec(spec))
            self._codecs[spec.name] = hit
        return hit[1]

    def create_group(self, spec: FeatureGroupSpec) -> None:
        self._codec(spec)

    def drop_group(self, spec: FeatureGroupSpec) -> None:
        keys = list(self.r.scan_iter(match=f"fs:{spec.name}:*", count=1000))
        for i in range(0, len(keys), _PIPELINE):
            self.r.unlink(*keys[i:i + _PIPELINE])

    def put_many(self, spec: FeatureGroupSpec, records: Sequence[Record], now: float) -> int:
        codec = self._codec(spec)
        enc = codec.enc
        prefix = codec.prefix
        applied = 0
        pipe = self.r.pipeline(transaction=False)
        for i in range(0, len(records), _PUT_CHUNK):
            keys: list[str] = []
            args: list[Any] = [repr(now)]
            for r in records[i:i + _PUT_CHUNK]:
                keys.append(prefix + r.record_id)
                fields = [(k, enc[k](v)) for k, v in r.values.items() if v is not None]
                args += (repr(r.event_time), "" if r.expires_at is None else repr(r.expires_at), len(fields))
                for kv in fields:
                    args += kv
            self._put(keys=keys, args=args, client=pipe)
        applied += sum(pipe.execute())
        return applied

    def update(self, spec: FeatureGroupSpec, record: Record, expires_at: float | None, now: float) -> None:
        codec = self._codec(spec)
        sets = [(k, codec.enc[k](v)) for k, v in record.values.items() if v is not None]
        dels = [k for k, v in record.values.items() if v is None]
        if expires_at is None:
            exp = ""
        else:
            exp = "-" if math.isnan(expires_at) else repr(expires_at)
        et = "" if math.isnan(record.event_time) else repr(record.event_time)
        args = [et, exp, repr(now), len(sets)] + [x for kv in sets for x in kv] + dels
        code, stored = self._update(keys=[codec.prefix + record.record_id], args=args)
        if code == -1:
            raise ConflictError(f"EventTime is not newer than the stored record's ({stored})")
        if code == -2:
            raise RecordError(spec.event_time, "EventTime is required to update a record that does not exist")

    def delete(self, spec: FeatureGroupSpec, record_id: str, event_time: float, hard: bool, now: float) -> bool:
        code = self._delete(keys=[self._codec(spec).prefix + record_id],
                            args=[repr(event_time), "1" if hard else "0", repr(now)])
        if code == -1:
            raise RecordError("EventTime", "HardDelete needs an EventTime newer than the stored record's")
        return code == 1

    def get_many(self, spec: FeatureGroupSpec, record_ids: Sequence[str], now: float,
                 names: Sequence[str] | None = None) -> list[StoredRecord | None]:
        return self._get(spec, record_ids, now, names, self._codec(spec).dec)

    def get_text(self, spec: FeatureGroupSpec, record_ids: Sequence[str], now: float,
                 names: Sequence[str] | None = None) -> list[StoredRecord | None]:
        return self._get(spec, record_ids, now, names, self._codec(spec).text)

    def _get(self, spec: FeatureGroupSpec, record_ids: Sequence[str], now: float, names: Sequence[str] | None,
             dec: dict[str, Callable[[str], Any]]) -> list[StoredRecord | None]:
        """Live records, each stored field turned into a value by `dec` (typed values, or text)."""
        prefix = self._codec(spec).prefix
        out: list[StoredRecord | None] = []
        fields = None if names is None else ["_e", "_x", "_d", *names]
        for i in range(0, len(record_ids), _PIPELINE):
            keys = [prefix + rid for rid in record_ids[i:i + _PIPELINE]]
            if len(keys) == 1 and names is None:
                rows = [self.r.hgetall(keys[0])]
            elif names is None:
                rows = [dict(zip(h[::2], h[1::2])) for h in self._hgetall_many(keys=keys)]
            elif len(keys) == 1:
                rows = [self.r.hmget(keys[0], fields)]
            else:
                rows = self._hmget_many(keys=keys, args=fields)
            for h in rows:
                if names is not None:
                    h = dict(zip(fields, h))
                e = h.get("_e")
                if e is None or h.get("_d") == "1":
                    out.append(None)
                    continue
                x = h.get("_x")
                exp = float(x) if x else None
                if exp is not None and exp <= now:
                    out.append(None)
                    continue
                if names is None:
                    values = {k: dec[k](v) for k, v in h.items() if k[0] != "_"}
                else:
                    values = {n: (None if h[n] is None else dec[n](h[n])) for n in names}
                out.append(StoredRecord(float(e), exp, values))
        return out

    def get_matrix(self, spec: FeatureGroupSpec, record_ids: Sequence[str], names: Sequence[str],
                   now: float) -> tuple[np.ndarray, np.ndarray]:
        prefix = self._codec(spec).prefix
        rows: list[list[Any]] = []
        for i in range(0, len(record_ids), _PIPELINE):
            rows += self._hmget_many(keys=[prefix + rid for rid in record_ids[i:i + _PIPELINE]],
                                     args=["_e", "_x", "_d", *names])
        raw = np.array(rows, dtype=object).reshape(len(record_ids), 3 + len(names))
        exp = raw[:, 1]
        exp = np.where((exp == None) | (exp == ""), "inf", exp).astype(np.float64)  # noqa: E711
        found = (raw[:, 0] != None) & (raw[:, 2] != "1") & (exp > now)  # noqa: E711
        vals = raw[:, 3:]
        vals = np.where(vals == None, "nan", vals).astype(np.float64)  # noqa: E711
        vals[~found] = np.nan
        return vals, found

    def ping(self) -> None:
        self.r.ping()

    def close(self) -> None:
        self.r.close()
