"""Fault injection seen through the real ccxt client: rate limits (429 then 418 with
Retry-After), 5xx and timeouts before or after an order is placed, slow answers,
rejected and partially filled orders."""
from __future__ import annotations

import time
from decimal import Decimal

import ccxt
import pytest

from genesis.simulator import SimulatorThread, ccxt_config
from genesis.simulator.faults import FaultSpec, parse_flags


@pytest.fixture
def sim():
    with SimulatorThread(speed="step", weight_limit=60, ban_after=2, ban_s=90) as s:
        yield s


def client(sim, **kw) -> ccxt.binance:
    ex = ccxt.binance(ccxt_config(sim.rest_url, enableRateLimit=False, **kw))
    ex.load_markets()
    return ex


def orders(sim) -> list:
    return sim.state()["accounts"]["genesis-sim-key"]["orders"]


def test_weight_limit_gives_429_then_418_ban_with_retry_after(sim):
    ex = client(sim)                                  # exchangeInfo: 20
    sim.reset_limits()
    used = []
    for _ in range(12):                               # depth limit 100: weight 5 -> 60 after 12
        ex.fetch_order_book("BTC/USDT", 100)
        used.append(int(ex.last_response_headers["X-MBX-USED-WEIGHT-1M"]))
    assert used == list(range(5, 65, 5))
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        ex.fetch_order_book("BTC/USDT", 100)
    retry = int(ex.last_response_headers["Retry-After"])
    assert 0 < retry <= 60
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        ex.fetch_time()                               # second 429 in the window
    with pytest.raises(ccxt.DDoSProtection, match="418"):
        ex.fetch_time()                               # ignoring Retry-After: banned
    assert ex.last_response_headers["Retry-After"] == "90"
    with pytest.raises(ccxt.DDoSProtection, match="418"):
        ex.fetch_time()                               # still banned
    limits = sim.state()["limits"]
    assert limits["answered_429"] == 2 and limits["answered_418"] == 2 and limits["banned_for_s"] > 80
    sim.reset_limits()
    assert ex.fetch_time() > 0


def test_exchange_info_announces_the_enforced_limit(sim):
    info = client(sim).public_get_exchangeinfo()
    weight = [r for r in info["rateLimits"] if r["rateLimitType"] == "REQUEST_WEIGHT"]
    assert weight == [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 60}]


def test_forced_429_and_418(sim):
    ex = client(sim)
    sim.set_faults(http_429_next=1, http_418_next=1, retry_after_s=7)
    with pytest.raises(ccxt.DDoSProtection, match="418"):
        ex.fetch_time()
    assert ex.last_response_headers["Retry-After"] == "7"
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        ex.fetch_time()
    assert ex.fetch_time() > 0


def test_5xx_after_the_order_was_placed_then_query_by_client_order_id(sim):
    ex = client(sim)
    sim.set_faults(http_error_after_next=1, http_only=["POST /api/v3/order"])
    assert ex.fetch_time() > 0                        # not an order: not faulted
    with pytest.raises(ccxt.RequestTimeout, match="-1007"):     # 503, "execution status unknown"
        ex.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "maybe-1"})
    found = ex.fetch_order(None, "BTC/USDT", {"origClientOrderId": "maybe-1"})
    assert found["status"] == "closed" and found["filled"] == 0.001
    assert [o["clientOrderId"] for o in orders(sim)] == ["maybe-1"]


def test_5xx_before_execution_places_nothing(sim):
    ex = client(sim)
    sim.set_faults(http_error_next=1, http_error_status=500, http_only=["/api/v3/order"])
    with pytest.raises(ccxt.OperationFailed):
        ex.create_order("BTC/USDT", "market", "buy", 0.001, None, {"clientOrderId": "never-1"})
    with pytest.raises(ccxt.OrderNotFound):
        ex.fetch_order(None, "BTC/USDT", {"origClientOrderId": "never-1"})
    assert orders(sim) == []
    sim.set_faults(http_error_next=1, http_error_status=502, http_only=[])
    with pytest.raises(ccxt.ExchangeNotAvailable):
        ex.fetch_balance()
    assert sim.state()["faults"]["fired"]["http_error_next"] == 2


def test_retry_of_a_resting_order_after_a_timeout_is_refused_as_duplicate(sim):
    ex = client(sim, timeout=400)
    price = float(Decimal(ex.public_get_depth({"symbol": "BTCUSDT"})["bids"][0][0]) - 200)
    sim.set_faults(http_timeout_after_next=1, http_timeout_s=3, http_only=["POST /api/v3/order"])
    started = time.monotonic()
    with pytest.raises(ccxt.RequestTimeout):
        ex.create_order("BTC/USDT", "limit", "buy", 0.001, price, {"clientOrderId": "retry-1"})
    assert time.monotonic() - started < 2
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):     # the retry is idempotent
        ex.create_order("BTC/USDT", "limit", "buy", 0.001, price, {"clientOrderId": "retry-1"})
    assert [(o["clientOrderId"], o["status"]) for o in orders(sim)] == [("retry-1", "NEW")]


def test_timeout_before_execution_and_slow_answers(sim):
    ex = client(sim, timeout=300)
    sim.set_faults(http_timeout_next=1, http_timeout_s=2)
    with pytest.raises(ccxt.RequestTimeout):
        ex.create_order("BTC/USDT", "market", "buy", 0.001)
    assert orders(sim) == []
    sim.set_faults(http_delay_ms=150)
    started = time.monotonic()
    ex.fetch_time()
    assert time.monotonic() - started >= 0.15
    sim.set_faults(http_delay_ms=400)
    with pytest.raises(ccxt.RequestTimeout):
        ex.fetch_time()
    sim.set_faults(reset=True)
    assert ex.fetch_time() > 0


def test_rejected_orders(sim):
    ex = client(sim)
    sim.set_faults(reject_next=2)
    for _ in range(2):
        with pytest.raises(ccxt.InvalidOrder, match="-2010"):
            ex.create_order("BTC/USDT", "market", "buy", 0.001)
    assert ex.create_order("BTC/USDT", "market", "buy", 0.001)["status"] == "closed"
    assert len(orders(sim)) == 1


def test_partial_fill_then_the_rest_later(sim):
    ex = client(sim)
    sim.set_faults(partial_next=1, partial_ratio=0.25, partial_rest="later")
    o = ex.create_order("BTC/USDT", "market", "buy", 0.004, None, {"clientOrderId": "p-1"})
    assert o["info"]["status"] == "PARTIALLY_FILLED" and Decimal(o["info"]["executedQty"]) == Decimal("0.001")
    assert [x["clientOrderId"] for x in ex.fetch_open_orders("BTC/USDT")] == ["p-1"]
    sim.step(until_fill=True)
    done = ex.fetch_order(o["id"], "BTC/USDT")
    assert done["status"] == "closed" and done["filled"] == 0.004
    trades = ex.fetch_my_trades("BTC/USDT")
    assert sum(Decimal(t["info"]["qty"]) for t in trades) == Decimal("0.004")


def test_partial_fill_then_expired(sim):
    ex = client(sim)
    bid = Decimal(ex.public_get_depth({"symbol": "BTCUSDT"})["asks"][0][0])
    sim.set_faults(partial_next=1, partial_ratio=0.5, partial_rest="expire")
    o = ex.create_order("BTC/USDT", "limit", "buy", 0.002, float(bid))   # crosses: taker
    assert o["info"]["status"] == "EXPIRED" and Decimal(o["info"]["executedQty"]) == Decimal("0.001")
    bal = sim.state()["accounts"]["genesis-sim-key"]["balances"]["USDT"]
    assert Decimal(bal["locked"]) == 0 and Decimal(bal["free"]) == Decimal(10000) - bid * Decimal("0.001")


def test_fault_spec_parsing_and_validation():
    spec = FaultSpec.from_mapping(parse_flags(["http_error_next=2", "ws_targets=market,user", "reject_rate=0.5"]))
    assert (spec.http_error_next, spec.ws_targets, spec.reject_rate) == (2, ["market", "user"], 0.5)
    with pytest.raises(ValueError, match="unknown fault"):
        FaultSpec.from_mapping({"http_eror_next": 1})
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultSpec.from_mapping({"reject_rate": 2})
    with pytest.raises(ValueError, match="partial_rest"):
        FaultSpec.from_mapping({"partial_rest": "never"})


def test_rate_faults_are_reproducible_with_a_seed():
    def run(seed):
        with SimulatorThread(speed="step", faults={"seed": seed, "http_error_rate": 0.5}) as s:
            ex = ccxt.binance(ccxt_config(s.rest_url, enableRateLimit=False))
            out = []
            for _ in range(16):
                try:
                    ex.fetch_time()
                    out.append(1)
                except ccxt.BaseError:
                    out.append(0)
            return out

    a, b = run(7), run(7)
    assert a == b and 0 < sum(a) < 16
