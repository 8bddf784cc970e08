"""Benchmark: the whole pipeline on the real capture with the default configuration
and the journal on (SQLite file, WAL).

    python bench/bench_pipeline.py [--tier sniper] [--limit N]

Uses the full 11-minute capture from ../shared/data when it is there, else the
bundled 3-minute sample. Prints:
- feed parsing cost per message;
- pipeline throughput (events/s) and per-event latency (arrival at the pipeline to
  decision done: median and p99) for Genesis as built (compiled expressions, only
  rules whose inputs changed are evaluated);
- the same for a naive baseline measured in the same run: every expression
  interpreted with simpleeval and every rule evaluated on every event;
- the ratios.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simpleeval import SimpleEval  # noqa: E402

from genesis.config.checks import check_config  # noqa: E402
from genesis.engine.engine import Engine  # noqa: E402
from genesis.engine.feeds import open_feed, sample_paths, shared_data_dir  # noqa: E402
from genesis.engine.journal import Journal  # noqa: E402
from genesis.engine.rules import RuleRunner  # noqa: E402
from genesis.expr.runtime import FUNCTIONS  # noqa: E402


def capture_paths() -> list:
    shared = shared_data_dir()
    if shared is not None:
        raw = shared / "binance_spot_ws_raw"
        files = [raw / f"{s}_{d}.gz" for s in ("btcusdt", "ethusdt") for d in ("20240808", "20240809")]
        if all(f.exists() for f in files):
            return files
    return sample_paths()


class _Naive:
    """A function object that interprets one expression with simpleeval each call."""

    def __init__(self, source: str, tier: dict, event_names=frozenset()):
        self.evaluator = SimpleEval(functions=dict(FUNCTIONS))
        self.tree = self.evaluator.parse(source.strip())
        self.tier = tier
        self.event_names = event_names

    def __call__(self, m, e, o):
        names = dict(m)
        if e is not None:
            names.update(e)
            names["event"] = e
        if o is not None:
            names["order"] = o
        names["tier"] = self.tier
        self.evaluator.names = names
        return self.evaluator.eval("", previously_parsed=self.tree)


class _EverythingRunner(RuleRunner):
    """The naive rule stage: every state rule on every event."""

    def mark_started(self, groups) -> None:
        """Never started: every event evaluates every rule of every stage it visits."""


def make_naive(engine: Engine) -> None:
    """Swap every compiled function of an engine for simpleeval, and evaluate every rule."""
    tier = engine.config.tiers[engine.tier]
    for metric in engine.metrics.metrics:
        for attr in ("where", "value_fn", "while_fn"):
            fn = getattr(metric, attr, None)
            if fn is not None:
                setattr(metric, attr, _Naive(fn.checked.source, tier))
    engine.metrics.derived = [(name, type(expr)(expr.checked, expr.python, _Naive(expr.checked.source, tier)))
                              for name, expr in engine.metrics.derived]
    runner = _EverythingRunner(engine.ruleset)
    for rules in engine.ruleset.rules.values():
        for rule in rules:
            source = " and ".join(f"({c.checked.source})" for c in rule.conditions) or "True"
            naive = _Naive(source, tier)
            rule.check = lambda m, e, o, _n=naive: bool(_n(m, e, o))
    engine.rules = runner


def measure(config, tier: str, events: list, naive: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(f"sqlite:///{tmp}/bench.db")
        journal.open_run(tier, "bench", "bench", [], "bench")
        engine = Engine(config, tier, journal=journal)
        if naive:
            make_naive(engine)
        latencies = []
        clock = time.perf_counter_ns
        gc.collect()
        start = time.perf_counter()
        for event in events:
            t0 = clock()
            engine.process(event)
            latencies.append(clock() - t0)
        engine.finish()
        journal.close()
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {"events_per_s": len(events) / elapsed, "median_us": statistics.median(latencies) / 1000,
            "p99_us": latencies[int(len(latencies) * 0.99)] / 1000, "p999_us": latencies[int(len(latencies) * 0.999)] / 1000,
            "orders": engine.stats.orders, "firings": sum(engine.stats.firings.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="sniper")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N events")
    args = parser.parse_args()
    config = check_config(ROOT)
    paths = capture_paths()

    start = time.perf_counter()
    parsed = sum(1 for _ in open_feed(paths))  # streamed, as `genesis run` consumes it
    parse_s = time.perf_counter() - start
    events = list(open_feed(paths))
    gc.freeze()  # the held event list is not garbage; keep the collector off it
    if args.limit:
        events = events[: args.limit]
    print(f"input: {', '.join(Path(p).name for p in paths)} ({len(events):,} events)")
    print(f"feed parsing: {parse_s / parsed * 1e6:.2f} µs per message ({parsed / parse_s:,.0f} messages/s)")

    fast = measure(config, args.tier, [_copy(e) for e in events], naive=False)
    slow = measure(config, args.tier, [_copy(e) for e in events], naive=True)
    print(f"{'pipeline (journal on)':<36}{'events/s':>12}{'median µs':>11}{'p99 µs':>9}{'p99.9 µs':>10}")
    for label, r in (("Genesis (compiled, incremental)", fast), ("naive (simpleeval, every rule)", slow)):
        print(f"{label:<36}{r['events_per_s']:>12,.0f}{r['median_us']:>11.2f}{r['p99_us']:>9.2f}{r['p999_us']:>10.2f}")
    print(f"ratio: {fast['events_per_s'] / slow['events_per_s']:.1f}x events/s, "
          f"{slow['p99_us'] / fast['p99_us']:.1f}x lower p99")
    both = fast["events_per_s"] * 1 / (1 + fast["events_per_s"] * parse_s / len(events))
    print(f"end to end with parsing: {both:,.0f} events/s; targets: >= 100,000 events/s, p99 < 50 µs")
    print(f"same decisions: {fast['orders']} orders and {fast['firings']} rule firings (naive: {slow['orders']}, "
          f"{slow['firings']})")


def _copy(event):
    """A fresh event (the pipeline may annotate fields)."""
    from genesis.engine.events import Event  # noqa: PLC0415
    return Event(event.kind, event.ts, event.symbol, dict(event.fields))


if __name__ == "__main__":
    main()
