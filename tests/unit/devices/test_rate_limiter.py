"""Firecracker's token-bucket rate limiter, driven by a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ember.devices.rate_limiter import (
    MIN_TIMER_NS,
    NS_PER_MS,
    REFILL_TIMER_INTERVAL_NS,
    U64_MAX,
    RateLimiter,
    RateLimiterConfig,
    RateLimiterConfigError,
    SpuriousRateLimiterEvent,
    TokenBucket,
    TokenBucketConfig,
    TokenType,
)

BYTES = TokenType.BYTES
OPS = TokenType.OPS
MS = NS_PER_MS


class FakeClock:
    def __init__(self, now: int = 10**12) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, ns: int) -> None:
        self.now += ns


def limiter(bandwidth: tuple[int, int, int] | None = None,
            ops: tuple[int, int, int] | None = None) -> tuple[RateLimiter, FakeClock]:
    """``bandwidth``/``ops`` are (size, one_time_burst, refill_time_ms)."""
    clock = FakeClock()
    config = RateLimiterConfig(_bucket(bandwidth), _bucket(ops))
    return RateLimiter(config, clock=clock), clock


def _bucket(spec: tuple[int, int, int] | None) -> TokenBucketConfig | None:
    if spec is None:
        return None
    size, burst, refill = spec
    return TokenBucketConfig(size=size, refill_time=refill, one_time_burst=burst)


# --- buckets: start full, burst, refill ---------------------------------------------------


def test_bucket_starts_full_and_refuses_beyond_it() -> None:
    rl, _ = limiter(bandwidth=(1000, 0, 1000))
    assert rl.consume(1000, BYTES)
    assert not rl.consume(1, BYTES)


def test_one_time_burst_is_spent_first_and_never_returns() -> None:
    rl, clock = limiter(bandwidth=(1000, 1100, 1000))
    bucket = rl.bandwidth
    assert bucket is not None
    assert rl.consume(1000, BYTES)
    assert (bucket.one_time_burst, bucket.budget) == (100, 1000)
    assert rl.consume(500, BYTES)
    assert (bucket.one_time_burst, bucket.budget) == (0, 600)
    clock.advance(10_000 * MS)
    assert rl.consume(1000, BYTES)
    assert bucket.one_time_burst == 0
    assert not rl.consume(1, BYTES)


def test_refill_starts_only_after_the_burst_is_used_up() -> None:
    bucket = TokenBucket(1000, 100, 1000, now_ns=0)
    assert bucket.reduce(100, 900 * MS).granted  # the burst's last use holds the refill clock
    assert bucket.reduce(1000, 900 * MS).granted
    assert bucket.reduce(500, 1400 * MS).granted  # 500 ms of refill, not 1400
    assert not bucket.reduce(1, 1400 * MS).granted


def test_refill_is_continuous_and_proportional() -> None:
    bucket = TokenBucket(1000, 0, 1000, now_ns=0)
    assert bucket.reduce(1000, 0).granted
    assert bucket.reduce(123, 123 * MS).granted
    assert not bucket.reduce(1, 123 * MS).granted
    assert bucket.reduce(1, 124 * MS).granted


def test_refill_never_exceeds_size() -> None:
    bucket = TokenBucket(1000, 0, 1000, now_ns=0)
    assert bucket.reduce(600, 0).granted
    assert bucket.reduce(401, 10_000 * MS).granted  # ten refills' worth, capped at 1000
    assert bucket.budget == 599


def test_fraction_of_a_token_carries_over_to_the_next_refill() -> None:
    bucket = TokenBucket(2, 0, 3, now_ns=0)  # one token every 1.5 ms
    assert bucket.reduce(2, 0).granted
    assert bucket.reduce(1, 2 * MS).granted  # 1.33 tokens earned: 1 credited, 0.33 kept
    assert bucket.reduce(1, 3 * MS).granted  # 0.33 + 0.67 makes the next one


def test_refusal_deducts_nothing() -> None:
    bucket = TokenBucket(1000, 0, 1000, now_ns=0)
    assert bucket.reduce(900, 0).granted
    assert not bucket.reduce(200, 0).granted
    assert bucket.budget == 100
    assert bucket.reduce(100, 0).granted


# --- disabled buckets ------------------------------------------------------------------


@pytest.mark.parametrize("spec", [(0, 5, 1000), (1000, 5, 0), (0, 0, 0)])
def test_zero_size_or_refill_time_disables_the_bucket(spec: tuple[int, int, int]) -> None:
    rl, _ = limiter(bandwidth=spec, ops=(10, 0, 1000))
    assert rl.bandwidth is None
    assert not rl.is_noop
    assert rl.consume(2**70, BYTES)


def test_limiter_without_buckets_is_a_noop() -> None:
    for rl in (RateLimiter(), limiter((0, 0, 0), (0, 0, 0))[0]):
        assert rl.is_noop
        assert rl.consume(U64_MAX, BYTES) and rl.consume(U64_MAX, OPS)
        assert not rl.is_blocked and rl.time_until_refill_ns() is None


# --- blocking and the refill timer ------------------------------------------------------


def test_refusal_blocks_both_buckets_for_the_fixed_retry_interval() -> None:
    rl, clock = limiter(bandwidth=(1000, 0, 1000), ops=(1000, 0, 1000))
    assert rl.consume(1000, BYTES)
    assert not rl.consume(100, BYTES)
    assert rl.is_blocked
    assert rl.deadline_ns == clock.now + REFILL_TIMER_INTERVAL_NS
    clock.advance(40 * MS)
    assert rl.time_until_refill_ns() == 60 * MS
    assert not rl.consume(1, OPS)  # ops has budget, but the limiter is blocked
    clock.advance(60 * MS)
    rl.event_handler()
    assert not rl.is_blocked
    assert rl.consume(100, BYTES)


def test_timer_request_is_never_zero() -> None:
    rl, clock = limiter(bandwidth=(10, 0, 1000))
    rl.consume(10, BYTES)
    rl.consume(10, BYTES)
    clock.advance(REFILL_TIMER_INTERVAL_NS * 5)
    assert rl.time_until_refill_ns() == MIN_TIMER_NS


def test_spurious_event_raises_and_is_counted() -> None:
    rl, _ = limiter(bandwidth=(1000, 0, 1000))
    with pytest.raises(SpuriousRateLimiterEvent):
        rl.event_handler()
    assert rl.event_count == 1


def test_metrics_count_refusals_and_timer_events() -> None:
    rl, clock = limiter(ops=(1, 0, 1000))
    assert rl.consume(1, OPS)
    assert not rl.consume(1, OPS)
    assert not rl.consume(1, BYTES)  # refused while blocked: counted too
    assert (rl.throttled_events, rl.event_count) == (2, 0)
    clock.advance(REFILL_TIMER_INTERVAL_NS)
    rl.event_handler()
    assert (rl.throttled_events, rl.event_count) == (2, 1)


def test_negative_tokens_are_a_programming_error() -> None:
    rl, _ = limiter(ops=(1, 0, 1000))
    with pytest.raises(ValueError):
        rl.consume(-1, OPS)


def test_manual_replenish_undoes_a_grant_within_limits() -> None:
    rl, _ = limiter(bandwidth=(1000, 0, 1000), ops=(1000, 50, 1000))
    assert rl.consume(123, BYTES)
    rl.manual_replenish(23, BYTES)
    assert rl.bandwidth is not None and rl.bandwidth.budget == 900
    rl.manual_replenish(10**6, BYTES)
    assert rl.bandwidth.budget == 1000
    assert rl.consume(10, OPS)
    rl.manual_replenish(100, OPS)
    assert rl.ops is not None and rl.ops.one_time_burst == 50
    RateLimiter().manual_replenish(5, OPS)  # disabled: nothing to give back to


# --- over-consumption: a request larger than the bucket ----------------------------------


@pytest.mark.parametrize(("tokens", "blocked_ms"), [(2500, 1500), (1500, 500), (1001, 1)])
def test_oversized_request_is_granted_and_blocks_for_the_excess(
        tokens: int, blocked_ms: int) -> None:
    rl, clock = limiter(bandwidth=(1000, 0, 1000))
    assert rl.consume(tokens, BYTES)
    assert rl.bandwidth is not None and rl.bandwidth.budget == 0
    assert rl.time_until_refill_ns() == blocked_ms * MS
    clock.advance(blocked_ms * MS - 1)
    assert not rl.consume(1, BYTES)
    clock.advance(1)
    rl.event_handler()
    assert rl.consume(1, BYTES)  # the bucket refilled while blocked, as in Firecracker


def test_oversized_request_spends_the_burst_first() -> None:
    rl, _ = limiter(bandwidth=(1000, 100, 1000))
    assert rl.consume(1200, BYTES)
    assert rl.bandwidth is not None and rl.bandwidth.one_time_burst == 0
    assert rl.time_until_refill_ns() == 100 * MS


def test_tiny_excess_still_arms_a_timer() -> None:
    rl, _ = limiter(bandwidth=(U64_MAX, 0, 1))
    assert rl.consume(U64_MAX + 1, BYTES)
    assert rl.time_until_refill_ns() == MIN_TIMER_NS


# --- update (PATCH) ---------------------------------------------------------------------


def test_update_replaces_one_bucket_and_keeps_the_other() -> None:
    rl, clock = limiter(bandwidth=(1000, 0, 1000), ops=(100, 10, 1000))
    assert rl.consume(50, OPS) and rl.consume(600, BYTES)
    ops_before = rl.ops
    rl.update(bandwidth=TokenBucketConfig(size=2000, refill_time=500, one_time_burst=7))
    assert rl.ops is ops_before and rl.ops is not None and rl.ops.budget == 60
    assert rl.bandwidth is not None
    assert (rl.bandwidth.budget, rl.bandwidth.one_time_burst) == (2000, 7)
    assert rl.config().bandwidth == TokenBucketConfig(2000, 500, 7)


def test_update_with_zero_size_disables_a_bucket() -> None:
    rl, _ = limiter(bandwidth=(1000, 0, 1000), ops=(100, 0, 1000))
    rl.update(ops=TokenBucketConfig(size=0, refill_time=0))
    assert rl.ops is None and rl.bandwidth is not None
    rl.update(bandwidth=TokenBucketConfig(size=5, refill_time=0))
    assert rl.is_noop


def test_update_enables_a_bucket_on_a_noop_limiter() -> None:
    rl = RateLimiter(clock=FakeClock())
    rl.update(ops=TokenBucketConfig(size=1, refill_time=1000))
    assert rl.consume(1, OPS) and not rl.consume(1, OPS)


def test_update_keeps_a_pending_block() -> None:
    rl, _ = limiter(ops=(1, 0, 1000))
    rl.consume(1, OPS)
    rl.consume(1, OPS)
    rl.update(ops=TokenBucketConfig(size=100, refill_time=1000))
    assert rl.is_blocked and not rl.consume(1, OPS)


# --- JSON -------------------------------------------------------------------------------


def test_from_json_reads_firecracker_fields() -> None:
    cfg = RateLimiterConfig.from_json({
        "bandwidth": {"size": 10485760, "one_time_burst": 104857600, "refill_time": 1000},
        "ops": {"size": 100, "refill_time": 1000},
    })
    assert cfg.bandwidth == TokenBucketConfig(10485760, 1000, 104857600)
    assert cfg.ops == TokenBucketConfig(100, 1000, None)


def test_nulls_read_as_absent() -> None:
    cfg = RateLimiterConfig.from_json(
        {"bandwidth": None, "ops": {"size": 1, "one_time_burst": None, "refill_time": 1}})
    assert cfg == RateLimiterConfig(None, TokenBucketConfig(1, 1))
    assert RateLimiterConfig.from_json({}) == RateLimiterConfig()


@pytest.mark.parametrize(("obj", "message"), [
    ({"bandwith": {}}, "unknown field `bandwith` in `rate_limiter`"),
    ({"ops": {"size": 1, "refill_time": 1, "burst": 3}},
     "unknown field `burst` in `rate_limiter.ops`"),
    ({"ops": {"size": -1, "refill_time": 1}}, "invalid value for `rate_limiter.ops.size`: -1"),
    ({"ops": {"size": 2**64, "refill_time": 1}}, "from 0 to 18446744073709551615"),
    ({"ops": {"size": 1.5, "refill_time": 1}}, "invalid type for `rate_limiter.ops.size`"),
    ({"ops": {"size": 1, "refill_time": True}}, "expected an integer"),
    ({"ops": {"size": "1", "refill_time": 1}}, "expected an integer"),
    ({"ops": {"size": 1, "refill_time": 1, "one_time_burst": -5}}, "one_time_burst`: -5"),
    ({"ops": {"refill_time": 1}}, "missing field `size` in `rate_limiter.ops`"),
    ({"ops": {"size": 1}}, "missing field `refill_time`"),
    ({"ops": [1, 2]}, "invalid type for `rate_limiter.ops`: expected a JSON object"),
    ("fast", "invalid type for `rate_limiter`"),
])
def test_from_json_rejects_bad_input(obj: Any, message: str) -> None:
    with pytest.raises(RateLimiterConfigError, match=message.replace("[", r"\[")):
        RateLimiterConfig.from_json(obj)


def test_config_from_a_live_limiter_reads_like_firecracker() -> None:
    rl, _ = limiter(bandwidth=(1000, 0, 100), ops=(0, 5, 100))
    assert rl.config().to_json() == {
        "bandwidth": {"size": 1000, "one_time_burst": None, "refill_time": 100},
        "ops": None,
    }


def test_huge_refill_time_keeps_limiting() -> None:
    rl, _ = limiter(ops=(1, 0, U64_MAX))  # Firecracker's u64 math would disable this
    assert rl.consume(1, OPS)
    assert not rl.consume(1, OPS)


u64s = st.integers(min_value=0, max_value=U64_MAX)
bucket_configs = st.builds(TokenBucketConfig, size=u64s, refill_time=u64s,
                           one_time_burst=st.none() | u64s)
limiter_configs = st.builds(RateLimiterConfig, st.none() | bucket_configs,
                            st.none() | bucket_configs)


@given(limiter_configs)
def test_json_round_trips(cfg: RateLimiterConfig) -> None:
    assert RateLimiterConfig.from_json(cfg.to_json()) == cfg


@given(limiter_configs)
def test_live_config_round_trips_through_a_limiter(cfg: RateLimiterConfig) -> None:
    live = RateLimiter(cfg, clock=FakeClock()).config()
    assert RateLimiter(live, clock=FakeClock()).config() == live
    for want, got in ((cfg.bandwidth, live.bandwidth), (cfg.ops, live.ops)):
        assert (got is not None) == (want is not None and want.enabled)


# --- properties over arbitrary histories ------------------------------------------------

sizes = st.integers(min_value=1, max_value=10**6) | st.integers(min_value=1, max_value=U64_MAX)
refills = st.integers(min_value=1, max_value=5000)
steps = st.lists(st.tuples(st.sampled_from(["consume", "advance", "timer", "replenish"]),
                           st.integers(min_value=0, max_value=3 * 10**9),
                           st.sampled_from([BYTES, OPS])), max_size=60)


class Run:
    """Replays a history the way a device and its VMM would, checking invariants."""

    def __init__(self, rl: RateLimiter, clock: FakeClock) -> None:
        self.rl, self.clock, self.start = rl, clock, clock.now
        self.granted = dict.fromkeys(TokenType, 0)
        self.blocked_ns = 0

    def step(self, action: str, amount: int, kind: TokenType) -> None:
        if action == "advance":
            self.clock.advance(amount)
        elif action == "timer":
            self._fire_timer()
        elif action == "replenish":
            self.rl.manual_replenish(amount, kind)
        else:
            self._consume(amount, kind)
        self.check_invariants()

    def _fire_timer(self) -> None:
        wait = self.rl.time_until_refill_ns()
        if wait is not None:
            self.clock.advance(wait)
            self.rl.event_handler()

    def _consume(self, tokens: int, kind: TokenType) -> None:
        bucket = self.rl.bandwidth if kind is BYTES else self.rl.ops
        was_blocked = self.rl.is_blocked
        before = None if bucket is None else (bucket.budget, bucket.one_time_burst)
        if self.rl.consume(tokens, kind):
            assert not was_blocked
            self.granted[kind] += tokens
            wait = self.rl.time_until_refill_ns()
            self.blocked_ns += wait or 0
        elif bucket is not None and before is not None:
            assert bucket.one_time_burst == before[1]
            assert bucket.budget >= before[0]

    def check_invariants(self) -> None:
        for bucket in (self.rl.bandwidth, self.rl.ops):
            if bucket is None:
                continue
            assert 0 <= bucket.budget <= bucket.size
            assert 0 <= bucket.one_time_burst <= bucket.initial_one_time_burst
            assert bucket.one_time_burst == 0 or bucket.budget == bucket.size

    def within_rate(self, bucket: TokenBucket, kind: TokenType, slack_ns: int) -> bool:
        elapsed = self.clock.now - self.start + slack_ns
        allowance = ((bucket.initial_one_time_burst + bucket.size) * bucket.refill_time_ms * MS
                     + bucket.size * elapsed)
        return self.granted[kind] * bucket.refill_time_ms * MS <= allowance


@given(sizes, st.integers(0, 10**6), refills, sizes, refills, steps)
def test_invariants_hold_over_any_history(bw_size: int, burst: int, bw_refill: int,
                                          ops_size: int, ops_refill: int,
                                          history: list[tuple[str, int, TokenType]]) -> None:
    rl, clock = limiter(bandwidth=(bw_size, burst, bw_refill), ops=(ops_size, 0, ops_refill))
    run = Run(rl, clock)
    for action, amount, kind in history:
        run.step(action, amount, kind)


@given(sizes, st.integers(0, 10**6), refills, steps)
def test_long_run_rate_is_bounded(size: int, burst: int, refill: int,
                                  history: list[tuple[str, int, TokenType]]) -> None:
    rl, clock = limiter(bandwidth=(size, burst, refill))
    run = Run(rl, clock)
    for action, amount, _ in history:
        if action != "replenish":
            run.step(action, amount, BYTES)
    assert rl.bandwidth is not None
    # An over-consumed excess is repaid by blocking, and the bucket refills meanwhile.
    assert run.within_rate(rl.bandwidth, BYTES, slack_ns=run.blocked_ns)


@given(sizes, st.integers(0, 10**6), refills, steps)
def test_requests_that_fit_the_bucket_never_beat_the_rate(
        size: int, burst: int, refill: int, history: list[tuple[str, int, TokenType]]) -> None:
    rl, clock = limiter(bandwidth=(size, burst, refill))
    run = Run(rl, clock)
    for action, amount, _ in history:
        if action != "replenish":
            run.step(action, min(amount, size), BYTES)
    assert rl.bandwidth is not None
    assert run.within_rate(rl.bandwidth, BYTES, slack_ns=0)


@given(sizes, refills, steps, st.integers(min_value=0))
def test_a_request_that_fits_eventually_succeeds(
        size: int, refill: int, history: list[tuple[str, int, TokenType]], tokens: int) -> None:
    rl, clock = limiter(bandwidth=(size, 0, refill))
    run = Run(rl, clock)
    for action, amount, _ in history:
        run.step(action, amount, BYTES)
    run.step("timer", 0, BYTES)
    clock.advance(refill * MS)
    assert rl.consume(tokens % (size + 1), BYTES)


@given(u64s.filter(bool), u64s.filter(bool), st.integers(min_value=0, max_value=2**90))
def test_refill_is_exact_for_huge_values(size: int, refill_ms: int, elapsed: int) -> None:
    bucket = TokenBucket(size, 0, refill_ms, now_ns=0)
    assert bucket.reduce(size, 0).granted
    earned = min(size, elapsed * size // (refill_ms * MS))
    assert bucket.reduce(earned, elapsed).granted
    assert not bucket.reduce(1, elapsed).granted
