"""The action graph: which rules' actions change what other rules read, in the same event.

Within one event the engine applies the actions of the rules that fire, then evaluates
again the rules that read what those actions changed, until nothing changes (a fixed
point). That ends only if the graph from rules to the rules their actions wake holds
no cycle; `genesis validate` proves it, and refuses a configuration with a cycle.

- What an action writes (`action_writes`): `set` writes its flags; `scale_size` writes
  `size_factor`. Every other action changes nothing a rule reads within the event:
  orders, cancels and position closes come back as new events (fills, cancels), locks
  and the trading state are not names, and `promote` / `demote` recompile the rule set
  for another tier (they also restart `days_at_tier`), so they end the chain rather
  than continue it and are left out of the graph.
- What a rule reads (`condition_inputs`): the names of its `when` conditions and of its
  action parameter expressions, and through derived (`expr`) metrics the names those
  read, transitively.
- An edge R -> S means R's `then` or `resolve` actions write a name S reads, and S can
  fire again in the same instant: S has no `for:`, no `cooldown:`, no `on:` (an event
  rule runs once per event) and is not a `pre_trade` rule (those run per order intent).
  R -> R counts only when R's `resolve` actions write a name R reads: it fires, its
  actions make its condition false, it resolves, and its resolve makes it true again.
"""
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from genesis.config.checks import ActionDef, MetricDef, RuleDef

SIZE_FACTOR = "size_factor"


def action_writes(action: ActionDef) -> frozenset:
    """Names an action changes at once, within the event that fired its rule."""
    if action.name == "set" and isinstance(action.arg, dict):
        return frozenset(action.arg)
    if action.name == "scale_size":
        return frozenset({SIZE_FACTOR})
    return frozenset()


def derived_reads(metrics: dict) -> dict:
    """For every derived (`expr`) metric, the names its expression reads."""
    return {name: m.exprs["expr"].names for name, m in metrics.items()
            if m.primitive == "expr" and "expr" in m.exprs}


def condition_inputs(rule: RuleDef, derived: dict) -> frozenset:
    """Every name a rule reads, through derived metrics (see `derived_reads`) too."""
    todo = [n for checked in rule.when for n in checked.names]
    todo += [n for action in (*rule.then, *rule.resolve) for checked in action.exprs.values() for n in checked.names]
    seen: set = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(derived.get(name, ()))
    return frozenset(seen)


def refires_at_once(rule: RuleDef) -> bool:
    """True when a change of what the rule reads can make it fire again in the same event."""
    return not rule.on and rule.stage != "pre_trade" and not rule.for_s and not rule.cooldown_s


def action_edges(rules: list, metrics: dict) -> dict:
    """rule index -> sorted indexes of the rules its actions may fire again (see module doc)."""
    derived = derived_reads(metrics)
    reads = [condition_inputs(r, derived) for r in rules]
    writes = [frozenset().union(*(action_writes(a) for a in (*r.then, *r.resolve))) for r in rules]
    resolve_writes = [frozenset().union(*(action_writes(a) for a in r.resolve)) for r in rules]
    edges: dict = {}
    for i in range(len(rules)):
        edges[i] = [j for j, target in enumerate(rules) if refires_at_once(target)
                    and ((writes[i] & reads[j]) if i != j else (resolve_writes[i] & reads[i]))]
    return edges


def _components(edges: dict) -> list[list[int]]:
    """Strongly connected components (Tarjan, without recursion)."""
    index: dict = {}
    low: dict = {}
    on_stack: set = set()
    stack: list = []
    found = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    found.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(edges[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def _cycle_through(start: int, members: set, edges: dict) -> list[int]:
    """A shortest cycle from `start` back to it, inside one component."""
    previous = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in edges[node]:
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return path[::-1]
            if child in members and child not in previous:
                previous[child] = node
                queue.append(child)
    return [start]


def rule_cycles(rules: list, metrics: dict, tiers: Iterable = ()) -> list[tuple[list, list]]:
    """Every cycle of the action graph, checked tier by tier among the rules active in
    that tier (all rules when `tiers` is empty): (the rules of one cycle in order,
    starting at the first in file order; other rules of the same tangle)."""
    found, seen = [], set()
    for tier in sorted(tiers) or [None]:
        active = [r for r in rules if tier is None or r.tiers is None or tier in r.tiers]
        edges = action_edges(active, metrics)
        for component in _components(edges):
            if len(component) == 1 and component[0] not in edges[component[0]]:
                continue
            key = frozenset(id(active[i]) for i in component)
            if key in seen:
                continue
            seen.add(key)
            members = set(component)
            start = min(component, key=lambda i: rule_location(active[i]))
            cycle = _cycle_through(start, members, edges)
            rest = sorted(members - set(cycle), key=lambda i: rule_location(active[i]))
            found.append(([active[i] for i in cycle], [active[i] for i in rest]))
    return found


def rule_location(rule: RuleDef) -> tuple[str, int]:
    """(file, line) of a rule's id."""
    return rule.doc.file, rule.doc.mark(rule.path + ("id",)).line


def describe_cycle(cycle: list, rest: list) -> str:
    """The problem message for one cycle of the action graph."""
    def named(rule) -> str:
        file, line = rule_location(rule)
        return f"{rule.id} ({file}:{line})"
    if len(cycle) == 1 and not rest:
        return (f"rule fires again from its own resolve, in a cycle: {named(cycle[0])} -> {cycle[0].id} "
                "(its resolve actions set what its condition reads); give it `for:` or `cooldown:` so that "
                "the chain ends")
    text = "rules set each other in a cycle: " + " -> ".join(map(named, cycle)) + f" -> {cycle[0].id}"
    if rest:
        text += "; also in the same tangle: " + ", ".join(map(named, rest))
    return text + "; give one of them `for:` or `cooldown:` so that the chain ends"
