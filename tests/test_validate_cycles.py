"""`genesis validate` proves that chains of actions end: rules whose `set` / `scale_size`
actions wake each other within one event without end are refused, each rule of the
cycle named by file:line; a chain without a cycle, or a cycle broken by `for:` or
`cooldown:`, is valid.

Each test adds one rule book, rules/chain.yaml, to a private copy of the shipped
configuration and runs the real checker (and once the real CLI).
"""
from __future__ import annotations

from pathlib import Path

from test_validate_config import config, listing, locate, problems, run_cli  # noqa: F401 - `config` is a fixture

BOOK = "rules/chain.yaml"


def write_book(root: Path, flags: list[str], rules: str, metrics: str = "") -> None:
    """rules/chain.yaml with numeric flags (default 0), optional metrics, and `rules`."""
    text = "description: Chains of actions.\n" + ("flags:\n" if flags else "")
    text += "".join(f"  {name}: {{description: A step of the chain., default: 0}}\n" for name in flags)
    text += f"metrics:\n{metrics}" if metrics else ""
    (root / BOOK).write_text(text + "rules:\n" + rules, encoding="utf-8")


def rule(rid: str, when: str, then: str, resolve: str = "", extra: str = "") -> str:
    """One rule of the signals stage, as YAML."""
    text = f"  - id: {rid}\n    stage: signals\n    when: \"{when}\"\n{extra}    then:\n      - {then}\n"
    return text + (f"    resolve:\n      - {resolve}\n" if resolve else "")


def where(root: Path, rid: str) -> str:
    """'rules/chain.yaml:LINE' of a rule's id."""
    return f"{BOOK}:{locate(root, BOOK, f'- id: {rid}')[0]}"


FIVE_STEPS = "".join([rule("step_1", "equity_usd > 0", "set: {c1: 1}")]
                     + [rule(f"step_{k}", f"c{k - 1} == 1", f"set: {{c{k}: 1}}") for k in range(2, 6)])
PING_PONG = (rule("ping", "pong == 0", "set: {ping: 1}", resolve="set: {ping: 0}")
             + rule("pong", "ping == 1", "set: {pong: 1}", resolve="set: {pong: 0}"))
FLIP = rule("flip", "flip == 0", "set: {flip: 1}", resolve="set: {flip: 0}")


def test_five_step_chain_of_set_rules_is_valid(config):
    write_book(config, ["c1", "c2", "c3", "c4", "c5"], FIVE_STEPS)
    assert problems(config) == [], listing(problems(config))


def test_two_rule_cycle_names_both_rules_in_order(config):
    write_book(config, ["ping", "pong"], PING_PONG)
    found = problems(config)
    assert len(found) == 1, listing(found)
    p = found[0]
    assert (p.file, p.line) == (BOOK, locate(config, BOOK, "- id: ping")[0])
    assert p.col == locate(config, BOOK, "- id: ping", "ping")[1]
    assert p.message.startswith(f"rules set each other in a cycle: ping ({where(config, 'ping')}) -> "
                                f"pong ({where(config, 'pong')}) -> ping;"), p.message


def test_cycle_is_found_when_a_then_action_wakes_the_other_rule(config):
    """Writes by `then` count as much as writes by `resolve` between two rules."""
    write_book(config, ["ping", "pong"], rule("ping", "pong == 0", "set: {ping: 1}")
               + rule("pong", "ping == 1", "set: {pong: 1}"))
    p = problems(config)
    assert len(p) == 1 and "ping" in p[0].message and "pong" in p[0].message, listing(p)


def test_rule_whose_resolve_makes_it_fire_again_is_a_cycle(config):
    write_book(config, ["flip"], FLIP)
    found = problems(config)
    assert len(found) == 1, listing(found)
    p = found[0]
    assert (p.file, p.line) == (BOOK, locate(config, BOOK, "- id: flip")[0])
    assert p.message.startswith(f"rule fires again from its own resolve, in a cycle: flip ({where(config, 'flip')})"
                                " -> flip"), p.message


def test_rule_setting_what_it_reads_only_when_it_fires_is_valid(config):
    """Fire -> set -> the condition turns false -> resolve (which sets nothing): the chain ends."""
    write_book(config, ["once"], rule("once", "once == 0", "set: {once: 1}"))
    assert problems(config) == [], listing(problems(config))


def test_scale_size_wakes_a_rule_reading_size_factor_through_a_derived_metric(config):
    metrics = '  sized_at: {description: The size factor in use., expr: "size_factor * 1"}\n'
    write_book(config, [], rule("shrink", "sized_at > 0.5", "scale_size: {slot: shrink, factor: 0.5}",
                                resolve="scale_size: {slot: shrink, factor: 1.0}"), metrics)
    p = problems(config)
    assert len(p) == 1 and p[0].message.startswith(
        f"rule fires again from its own resolve, in a cycle: shrink ({where(config, 'shrink')})"), listing(p)


def test_three_rule_cycle_lists_every_rule_once_in_order(config):
    write_book(config, ["a", "b", "c"], rule("r_a", "c == 0", "set: {a: 1}") + rule("r_b", "a == 1", "set: {b: 1}")
               + rule("r_c", "b == 1", "set: {c: 1}"))
    p = problems(config)
    assert len(p) == 1, listing(p)
    chain = " -> ".join(f"{r} ({where(config, r)})" for r in ("r_a", "r_b", "r_c"))
    assert p[0].message.startswith(f"rules set each other in a cycle: {chain} -> r_a;"), p[0].message


def test_cycle_broken_by_for_is_valid(config):
    write_book(config, ["ping", "pong"], PING_PONG.replace("  - id: pong\n", "  - id: pong\n    for: 1s\n"))
    assert problems(config) == [], listing(problems(config))


def test_self_cycle_broken_by_cooldown_is_valid(config):
    write_book(config, ["flip"], FLIP.replace("    then:", "    cooldown: 10m\n    then:"))
    assert problems(config) == [], listing(problems(config))


def test_event_rule_is_not_woken_by_a_set(config):
    """A rule with `on:` runs once per event, so it cannot close a cycle."""
    book = PING_PONG.replace('  - id: pong\n    stage: signals\n    when: "ping == 1"\n',
                             '  - id: pong\n    stage: signals\n    on: fill\n    when: "ping == 1"\n')
    write_book(config, ["ping", "pong"], book.replace("    resolve:\n      - set: {pong: 0}\n", ""))
    assert problems(config) == [], listing(problems(config))


def test_rules_of_different_tiers_do_not_form_a_cycle(config):
    book = PING_PONG.replace("  - id: ping\n", "  - id: ping\n    tiers: [sniper]\n")
    write_book(config, ["ping", "pong"], book.replace("  - id: pong\n", "  - id: pong\n    tiers: [hunter]\n"))
    assert problems(config) == [], listing(problems(config))


def test_cli_refuses_a_cycle_and_accepts_the_shipped_rule_books(config):
    assert run_cli("--config", str(config)).returncode == 0
    write_book(config, ["ping", "pong"], PING_PONG)
    proc = run_cli("--config", str(config))
    assert proc.returncode == 1
    assert f"{where(config, 'ping')}:" in proc.stdout and where(config, "pong") in proc.stdout
    assert "1 problem found" in proc.stdout
