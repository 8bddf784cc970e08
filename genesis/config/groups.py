"""Which names and rules are kept per symbol.

Like Prometheus keeps alert state per label set, a rule that reads a per-symbol name is
evaluated, and keeps its `for:` / cooldown / firing state, once per symbol. A name is
per symbol when it is:

- a metric declared `by: symbol`;
- a `baseline` or `percentile` metric of a per-symbol metric (it samples each symbol);
- a derived (`expr`) metric that reads a per-symbol name;
- a flag declared `by: symbol`.

A rule is per symbol when its conditions or its action parameters and messages read a
per-symbol name; every other rule is global (one state for the account).
"""
from __future__ import annotations

SAMPLED = ("baseline", "percentile")


def symbol_names(metrics: dict, flags: dict, metric_order: list) -> frozenset:
    """Every metric and flag name kept per symbol (`metric_order`: dependencies first)."""
    names = {name for name, f in flags.items() if f.by_symbol}
    order = metric_order or list(metrics)
    for _ in range(2 if not metric_order else 1):   # unordered input: a second pass settles chains
        for name in order:
            m = metrics[name]
            if m.spec.get("by") == "symbol":
                names.add(name)
            elif m.primitive in SAMPLED and m.source in names:
                names.add(name)
            elif m.primitive == "expr" and "expr" in m.exprs and m.exprs["expr"].names & names:
                names.add(name)
    return frozenset(names)


def names_read(rule) -> frozenset:
    """Bare names a checked rule reads: conditions, action parameters and message templates."""
    out = set()
    for cond in rule.when:
        out |= cond.names
    for action in (*rule.then, *rule.resolve):
        for checked in action.exprs.values():
            out |= checked.names
        for checked in action.templates:
            if checked is not None:        # None: ${symbol}
                out |= checked.names
    return frozenset(out)


def per_symbol_reads(rule, names: frozenset) -> frozenset:
    """The per-symbol names a rule reads (empty: the rule is global)."""
    return names_read(rule) & names
