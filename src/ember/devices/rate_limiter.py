"""Firecracker's I/O rate limiter: two token buckets, as a sans-I/O state machine.

A :class:`RateLimiter` holds a ``bandwidth`` bucket (tokens are bytes) and an ``ops``
bucket (tokens are requests). A device asks :meth:`RateLimiter.consume` before serving a
request; when it answers ``False`` the limiter is *blocked*: the device stops serving that
queue, the VMM arms a one-shot timer for :meth:`RateLimiter.time_until_refill_ns` (or at the
absolute :attr:`RateLimiter.deadline_ns` on ``CLOCK_MONOTONIC``), and on expiry calls
:meth:`RateLimiter.event_handler` and lets the device retry. No fds, threads or sleeps live
here: time comes from an injected clock returning integer nanoseconds.

Semantics follow Firecracker's ``src/vmm/src/rate_limiter/mod.rs`` and the ``TokenBucket``
definition of its API description:

* A bucket starts full (``size`` tokens). ``one_time_burst`` is extra credit spent before
  the budget; it never replenishes, and while any of it is left the budget is not touched
  and the refill clock is held at the last use ("the refill process only starts happening
  after the initial burst budget is consumed").
* The budget refills at ``size`` tokens per ``refill_time`` ms, up to ``size``. Refill is
  lazy, as in Firecracker: it is computed only when a request does not fit the budget.
  Whole tokens are credited and the unused fraction of elapsed time is carried over, so
  frequent small requests lose nothing to rounding.
* ``size == 0`` or ``refill_time == 0`` disables a bucket; with both disabled the limiter
  is a no-op.
* A request that does not fit fails and deducts nothing (the refill it triggered stays).
* A request larger than ``size`` (after the burst) is *over-consumption*: Firecracker grants
  it, empties the budget and blocks the limiter for the time the excess takes to refill
  (``excess / size * refill_time``). The excess is not carried as debt: the bucket keeps
  refilling during that block, as in Firecracker. The long-run rate is therefore bounded by
  ``size / refill_time`` plus the initial budget plus the over-consumed excess.
* A failed request blocks the limiter for Firecracker's fixed retry interval of 100 ms,
  whatever the deficit; while blocked every ``consume`` fails, for both buckets.
* ``update`` replaces a bucket with a fresh, full one (burst restored), disables it when
  the new config has a zero ``size`` or ``refill_time``, and leaves it alone when ``None``
  (the field was absent from the PATCH body). A pending block is kept.

Deliberate differences from Firecracker, each invisible to a well-formed configuration:

* Arithmetic is exact integer nanoseconds with Python integers (Firecracker reduces the
  fraction by its gcd to fit u64/u128). A ``refill_time`` above ``u64::MAX / 10**6`` ms
  (584 years) makes Firecracker's ``checked_mul`` fail and silently disables the bucket;
  ember keeps limiting at the configured rate.
* The over-consumption block is computed in whole nanoseconds rounded up, where Firecracker
  truncates ``ratio * refill_time`` through an f64 to whole milliseconds; a result of zero
  would disarm its timerfd and leave the limiter blocked for good. Here the block is never
  shorter than :data:`MIN_TIMER_NS`.
* ``TokenBucketConfig`` rejects unknown fields (Firecracker's serde struct ignores them),
  so a misspelt ``refil_time`` is an error, not a silently unlimited bucket.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Any, NamedTuple

NS_PER_MS = 1_000_000
# Firecracker's REFILL_TIMER_INTERVAL_MS: how long a failed consume blocks the limiter.
REFILL_TIMER_INTERVAL_NS = 100 * NS_PER_MS
# A relative timerfd armed with 0 is disarmed (timerfd_settime(2)); never ask for less.
MIN_TIMER_NS = 1
# The API declares the bucket fields as u64 (serde rejects anything larger).
U64_MAX = 2**64 - 1

Clock = Callable[[], int]

_BUCKET_FIELDS = ("size", "one_time_burst", "refill_time")
_LIMITER_FIELDS = ("bandwidth", "ops")


class RateLimiterConfigError(ValueError):
    """A rate limiter JSON object has the wrong shape or an out-of-range value."""


class SpuriousRateLimiterEvent(RuntimeError):
    """The refill timer fired but the limiter was not blocked: ignore the event."""


class TokenType(enum.Enum):
    """Which bucket a request draws from."""

    BYTES = "bandwidth"
    OPS = "ops"


# --- configuration ----------------------------------------------------------------------


class TokenBucketConfig(NamedTuple):
    """Firecracker's ``TokenBucket`` API object; ``one_time_burst`` is optional."""

    size: int
    refill_time: int
    one_time_burst: int | None = None

    @property
    def enabled(self) -> bool:
        return self.size != 0 and self.refill_time != 0

    @classmethod
    def from_json(cls, obj: Any, where: str = "bucket") -> TokenBucketConfig:
        fields = _object(obj, where, _BUCKET_FIELDS)
        for name in ("size", "refill_time"):
            if fields.get(name) is None:
                raise RateLimiterConfigError(f"missing field `{name}` in `{where}`")
        return cls(
            size=_u64(fields, "size", where),
            refill_time=_u64(fields, "refill_time", where),
            one_time_burst=_optional_u64(fields, "one_time_burst", where),
        )

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "one_time_burst": self.one_time_burst,
                "refill_time": self.refill_time}


class RateLimiterConfig(NamedTuple):
    """Firecracker's ``RateLimiter`` API object; an absent bucket is ``None``."""

    bandwidth: TokenBucketConfig | None = None
    ops: TokenBucketConfig | None = None

    @classmethod
    def from_json(cls, obj: Any, where: str = "rate_limiter") -> RateLimiterConfig:
        fields = _object(obj, where, _LIMITER_FIELDS)
        return cls(bandwidth=_optional_bucket(fields, "bandwidth", where),
                   ops=_optional_bucket(fields, "ops", where))

    def to_json(self) -> dict[str, Any]:
        return {"bandwidth": None if self.bandwidth is None else self.bandwidth.to_json(),
                "ops": None if self.ops is None else self.ops.to_json()}


def _object(obj: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise RateLimiterConfigError(f"invalid type for `{where}`: expected a JSON object")
    for key in obj:
        if key not in allowed:
            expected = ", ".join(f"`{name}`" for name in allowed)
            raise RateLimiterConfigError(
                f"unknown field `{key}` in `{where}`, expected one of {expected}")
    return obj


def _u64(fields: dict[str, Any], name: str, where: str) -> int:
    value = fields[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise RateLimiterConfigError(
            f"invalid type for `{where}.{name}`: {value!r}, expected an integer")
    if not 0 <= value <= U64_MAX:
        raise RateLimiterConfigError(
            f"invalid value for `{where}.{name}`: {value}, expected an integer "
            f"from 0 to {U64_MAX}")
    return value


def _optional_u64(fields: dict[str, Any], name: str, where: str) -> int | None:
    return None if fields.get(name) is None else _u64(fields, name, where)


def _optional_bucket(fields: dict[str, Any], name: str, where: str) -> TokenBucketConfig | None:
    value = fields.get(name)
    return None if value is None else TokenBucketConfig.from_json(value, f"{where}.{name}")


# --- one bucket -------------------------------------------------------------------------


class Reduction(NamedTuple):
    """What a :meth:`TokenBucket.reduce` did: ``granted``, and for how long the grant
    overdrew the bucket (``block_ns`` > 0 only for over-consumption)."""

    granted: bool
    block_ns: int = 0


_GRANTED = Reduction(True)
_REFUSED = Reduction(False)


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


class TokenBucket:
    """One enabled bucket; time is passed in as ``now_ns`` on every call."""

    def __init__(self, size: int, one_time_burst: int, refill_time_ms: int, now_ns: int) -> None:
        if size <= 0 or refill_time_ms <= 0 or one_time_burst < 0:
            raise ValueError("a token bucket needs size > 0, refill_time > 0, burst >= 0")
        self.size = size
        self.refill_time_ms = refill_time_ms
        self.initial_one_time_burst = one_time_burst
        self.one_time_burst = one_time_burst
        self.budget = size
        self._refill_ns = refill_time_ms * NS_PER_MS
        self._last_update_ns = now_ns

    @classmethod
    def from_config(cls, config: TokenBucketConfig, now_ns: int) -> TokenBucket | None:
        """A fresh, full bucket, or ``None`` when ``config`` disables limiting."""
        if not config.enabled:
            return None
        return cls(config.size, config.one_time_burst or 0, config.refill_time, now_ns)

    def config(self) -> TokenBucketConfig:
        """The configuration, as Firecracker reports it (a zero burst reads as absent)."""
        return TokenBucketConfig(self.size, self.refill_time_ms,
                                 self.initial_one_time_burst or None)

    def reduce(self, tokens: int, now_ns: int) -> Reduction:
        """Take ``tokens``: burst credit first, then the budget, refilling if short."""
        if self.one_time_burst > 0:
            if self.one_time_burst >= tokens:
                self.one_time_burst -= tokens
                self._last_update_ns = now_ns
                return _GRANTED
            # While burst is left the budget is full, so the rest either fits or overdraws.
            tokens -= self.one_time_burst
            self.one_time_burst = 0
        if tokens > self.budget:
            self._auto_replenish(now_ns)
            if tokens > self.size:
                return self._over_consume(tokens)
            if tokens > self.budget:
                return _REFUSED
        self.budget -= tokens
        return _GRANTED

    def force_replenish(self, tokens: int) -> None:
        """Give ``tokens`` back (to undo a grant), capped at the configured amounts."""
        if self.one_time_burst > 0:
            self.one_time_burst = min(self.one_time_burst + tokens, self.initial_one_time_burst)
        else:
            self.budget = min(self.budget + tokens, self.size)

    def _auto_replenish(self, now_ns: int) -> None:
        elapsed = max(0, now_ns - self._last_update_ns)
        if elapsed >= self._refill_ns:
            self.budget = self.size
            self._last_update_ns = now_ns
            return
        earned = elapsed * self.size // self._refill_ns
        # Advance the clock only by the time those whole tokens took (rounded up, so no
        # nanosecond is spent twice); the fraction of a token carries to the next refill.
        self._last_update_ns += _ceil_div(earned * self._refill_ns, self.size)
        self.budget = min(self.budget + earned, self.size)

    def _over_consume(self, tokens: int) -> Reduction:
        excess = tokens - self.budget
        self.budget = 0
        block_ns = _ceil_div(excess * self._refill_ns, self.size)
        return Reduction(True, max(MIN_TIMER_NS, block_ns))


# --- the limiter ------------------------------------------------------------------------


class RateLimiter:
    """Bandwidth and ops buckets behind one refill timer, with Firecracker's metrics.

    ``throttled_events`` counts refused requests (Firecracker's
    ``rate_limiter_throttled_events``; a device that drops a queue notification because
    :attr:`is_blocked` adds to it too) and ``event_count`` counts refill-timer events
    (``rate_limiter_event_count``).
    """

    def __init__(self, config: RateLimiterConfig | None = None, *,
                 clock: Clock = time.monotonic_ns) -> None:
        self._clock = clock
        self.bandwidth: TokenBucket | None = None
        self.ops: TokenBucket | None = None
        self.deadline_ns: int | None = None
        self.throttled_events = 0
        self.event_count = 0
        if config is not None:
            self.update(bandwidth=config.bandwidth, ops=config.ops)

    @property
    def is_noop(self) -> bool:
        """True when neither bucket limits anything."""
        return self.bandwidth is None and self.ops is None

    @property
    def is_blocked(self) -> bool:
        """True from a refusal or over-consumption until the refill timer event."""
        return self.deadline_ns is not None

    def time_until_refill_ns(self) -> int | None:
        """How long to arm the refill timer for, or ``None`` when not blocked."""
        if self.deadline_ns is None:
            return None
        return max(MIN_TIMER_NS, self.deadline_ns - self._clock())

    def consume(self, tokens: int, kind: TokenType) -> bool:
        """Take ``tokens`` from ``kind``'s bucket; ``False`` means stop and wait."""
        if tokens < 0:
            raise ValueError(f"cannot consume a negative number of tokens: {tokens}")
        if self.is_blocked:
            return self._refuse()
        bucket = self._bucket(kind)
        if bucket is None:
            return True
        now = self._clock()
        result = bucket.reduce(tokens, now)
        if not result.granted:
            self.deadline_ns = now + REFILL_TIMER_INTERVAL_NS
            return self._refuse()
        if result.block_ns:
            self.deadline_ns = now + result.block_ns
        return True

    def manual_replenish(self, tokens: int, kind: TokenType) -> None:
        """Undo (part of) a grant, e.g. the op of a request whose bytes were refused."""
        bucket = self._bucket(kind)
        if bucket is not None:
            bucket.force_replenish(tokens)

    def event_handler(self) -> None:
        """The refill timer fired: unblock. Raises :class:`SpuriousRateLimiterEvent`
        when the limiter was not blocked."""
        self.event_count += 1
        if self.deadline_ns is None:
            raise SpuriousRateLimiterEvent(
                "Rate limiter event handler called without a present timer")
        self.deadline_ns = None

    def update(self, *, bandwidth: TokenBucketConfig | None = None,
               ops: TokenBucketConfig | None = None) -> None:
        """PATCH semantics: ``None`` keeps a bucket, a disabled config removes it, any
        other config replaces it with a fresh, full bucket."""
        now = self._clock()
        if bandwidth is not None:
            self.bandwidth = TokenBucket.from_config(bandwidth, now)
        if ops is not None:
            self.ops = TokenBucket.from_config(ops, now)

    def config(self) -> RateLimiterConfig:
        """The live configuration, as ``GET /vm/config`` reports it."""
        return RateLimiterConfig(
            bandwidth=None if self.bandwidth is None else self.bandwidth.config(),
            ops=None if self.ops is None else self.ops.config())

    def _bucket(self, kind: TokenType) -> TokenBucket | None:
        return self.bandwidth if kind is TokenType.BYTES else self.ops

    def _refuse(self) -> bool:
        self.throttled_events += 1
        return False
