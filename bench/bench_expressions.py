"""Benchmark: the compiled default rule set against simpleeval evaluating the same
expressions, measured in the same run.

    python bench/bench_expressions.py [--tier sniper] [--rounds 2000]

Prints, per evaluation of the whole rule set (every derived metric and every rule
condition of the tier), the cost of: simpleeval (the naive baseline), one compiled
function per expression, and one generated function per stage; and the ratios.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simpleeval import SimpleEval  # noqa: E402

from genesis import vocabulary as voc  # noqa: E402
from genesis.config.checks import check_config  # noqa: E402
from genesis.config.ruleset import compile_ruleset  # noqa: E402
from genesis.expr.runtime import FUNCTIONS  # noqa: E402


def sample_inputs(config, rng: random.Random):
    """Plausible metric, flag, event and order values for every name the rules read."""
    metrics = {name: rng.uniform(0, 100) for name in [*config.metrics, *voc.ACCOUNT_METRICS]}
    for name, flag in config.flags.items():
        metrics[name] = flag.values[0] if flag.values else flag.default
    event = {}
    for kind in voc.EVENTS:
        for field, (ftype, _) in voc.event_fields(kind).items():
            event[field] = "stop_loss" if ftype == voc.TEXT else rng.uniform(-50, 50)
    order = {f: (True if t == voc.BOOL else "x" if t == voc.TEXT else rng.uniform(1, 200))
             for f, (t, _) in voc.ORDER_FIELDS.items()}
    return metrics, event, order


def time_per_call(fn, rounds: int, repeats: int = 7) -> float:
    """Median seconds per call of fn() over several repeats."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        samples.append((time.perf_counter() - start) / rounds)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="sniper")
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()

    config = check_config(ROOT)
    if not config.ok:
        sys.exit("the shipped configuration does not validate; run `genesis validate`")
    rs = compile_ruleset(config, args.tier)
    m, e, o = sample_inputs(config, random.Random(7))

    sources = [expr.checked.source for _, expr in rs.derived]
    rule_fns = [fn for _, fn in rs.derived]
    for rules in rs.rules.values():
        for rule in rules:
            sources.append(" and ".join(f"({c.checked.source})" for c in rule.conditions) or "True")
            rule_fns.append(rule.check)
    stage_fns = [fn for _, fn in rs.derived] + list(rs.stage_functions.values())

    evaluator = SimpleEval(names={**m, "tier": config.tiers[args.tier], "event": e, "order": o},
                           functions=dict(FUNCTIONS))
    parsed = [evaluator.parse(s) for s in sources]  # parse once: the baseline gets its best case

    def naive():
        for tree in parsed:
            evaluator.eval("", previously_parsed=tree)

    def per_expression():
        for fn in rule_fns:
            fn(m, e, o)

    def per_stage():
        for fn in stage_fns:
            fn(m, e, o)

    # the three must agree before we time them
    reference = [bool(evaluator.eval("", previously_parsed=t)) for t in parsed]
    compiled = [bool(fn(m, e, o)) for fn in rule_fns]
    assert reference == compiled, "compiled and simpleeval results differ"

    naive_s = time_per_call(naive, max(args.rounds // 10, 50))
    expr_s = time_per_call(per_expression, args.rounds)
    stage_s = time_per_call(per_stage, args.rounds)
    n = len(sources)
    print(f"tier {args.tier}: {n} expressions ({len(rs.derived)} derived metrics, {rs.rule_count()} rules)")
    print(f"{'evaluator':<34}{'µs / full set':>14}{'µs / expr':>11}{'speed-up':>10}")
    for label, secs in (("simpleeval (baseline, pre-parsed)", naive_s),
                        ("compiled, one function per expr", expr_s),
                        ("compiled, one function per stage", stage_s)):
        print(f"{label:<34}{secs * 1e6:>14.2f}{secs * 1e6 / n:>11.3f}{naive_s / secs:>9.1f}x")


if __name__ == "__main__":
    main()
