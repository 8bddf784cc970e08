"""A symbol's values that move while another symbol's event is handled (a window
expiring, a sample falling due): its per-symbol rules look at the move, once, with the
moment's other changes of that symbol (README, "How rules are evaluated, exactly")."""
from __future__ import annotations

from tests.test_engine_actions import BTC, ETH, S, T0, make_engine, ticker
from tests.test_rule_semantics import PRICES, fires

QUIET = """\
rules:
  - id: t_quiet
    stage: market_state
    when: "ticks_10s < 2"
    then: [{notify: "${symbol} quiet"}]
  - id: t_silent
    stage: market_state
    when: "ticks_10s < 1"
    then: [{notify: "${symbol} silent"}]
"""


def test_a_move_to_the_value_the_symbol_in_view_shows_is_still_a_move(tmp_path):
    """ETHUSDT's count falls from 2 to 1 during a BTCUSDT event whose own count is 1:
    the same number, yet ETHUSDT's rule must see its own change."""
    engine = make_engine(tmp_path, QUIET, header=PRICES)
    engine.process(ticker(T0, ETH, 50))                  # ETH 1: quiet
    engine.process(ticker(T0 + 200, BTC, 200))           # BTC 1: quiet
    engine.process(ticker(T0 + S, ETH, 50))              # ETH 2: not quiet any more
    assert fires(engine, "t_quiet") == [("fire", ETH), ("fire", BTC), ("resolve", ETH)]
    engine.process(ticker(T0 + 10 * S + 500, BTC, 200))  # ETH's first tick left its window: ETH 1; BTC 1
    assert fires(engine, "t_quiet") == [("fire", ETH), ("fire", BTC), ("resolve", ETH), ("fire", ETH)]
    assert engine.metrics.by_name["ticks_10s"].value(ETH, engine.now) == 1


def test_a_symbols_moves_of_one_moment_are_seen_together(tmp_path):
    """ETHUSDT's tick leaves its window exactly when a BTCUSDT event and then an
    ETHUSDT event of the same moment arrive: the expiry and the new tick are one
    moment's changes, the count never shows 0 to ETHUSDT's rules."""
    engine = make_engine(tmp_path, QUIET, header=PRICES)
    engine.process(ticker(T0, ETH, 50))
    engine.process(ticker(T0 + 200, BTC, 200))
    engine.process(ticker(T0 + 10 * S, BTC, 200))        # ETH's tick expires now: ETH 0, held for this moment
    assert engine.metrics.by_name["ticks_10s"].value(ETH, engine.now) == 0   # the value itself is exact
    engine.process(ticker(T0 + 10 * S, ETH, 50))         # ETH's own event of the same moment: ETH 1
    assert (("fire", ETH)) not in fires(engine, "t_silent")


def test_a_held_move_is_seen_once_the_clock_moves_on(tmp_path):
    """When no event of the symbol follows in the same moment, its rules see the move
    on the next later event."""
    engine = make_engine(tmp_path, QUIET, header=PRICES)
    engine.process(ticker(T0, ETH, 50))
    engine.process(ticker(T0 + 200, BTC, 200))
    engine.process(ticker(T0 + 10 * S, BTC, 200))        # ETH's tick expires now; no ETH event follows
    assert ("fire", ETH) not in fires(engine, "t_silent")
    engine.process(ticker(T0 + 11 * S, BTC, 200))
    assert ("fire", ETH) in fires(engine, "t_silent")
    fired = [e for e in engine.notifications if e.text == f"{ETH} silent"]
    assert len(fired) == 1
