"""Exit protocols that wait for the operator: a typed reset (`require: {kind:
confirmation}`) and a written reflection (`require: {kind: reflection}`).

- `genesis reset` types the phrase a firing rule declared; it lifts that rule's halt
  and locks only (not the emergency override: no cooldown, not an override attempt)
  and raises `halt_reset` with the rule id, which rules may act on.
- A promotion whose rule requires a reflection waits for it: the tier changes when
  `genesis reflect` brings one long enough, if the promotion still stands (its rule has
  not resolved and the tier has not changed meanwhile). A demotion applies at once and
  asks for its reflection afterwards; at the lowest tier (where a demotion halts
  instead) the reflection lifts that halt.

Waiting changes live in `engine.state.requirements` (rule id -> plain dict), so the
journal's state snapshots and `genesis tier` show them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from genesis.engine.events import Event
from genesis.words import counted

if TYPE_CHECKING:
    from genesis.engine.engine import Engine

ENDS_WITH_RESOLVE = ("reason", "journal_entry")  # what a rule asks for only while it fires


def _asked(engine: Engine, rid: str, kind: str) -> dict | None:
    """The argument of the rule's `require` of this kind, or None."""
    rule = engine.rules.by_id.get(rid)
    for compiled in rule.then if rule is not None else ():
        if compiled.action.name == "require" and compiled.action.arg.get("kind") == kind:
            return compiled.action.arg
    return None


def neighbour_tier(engine: Engine, step: int) -> str | None:
    """The tier `step` ranks above (+) or below (-) the current one, or None."""
    ranks = {d["rank"]: name for name, d in engine.config.tiers.items()}
    return ranks.get(engine.config.tiers[engine.tier]["rank"] + step)


def tier_change(engine: Engine, step: int, rid: str) -> dict:
    """A rule's `promote` (+1) or `demote` (-1); returns the action's journal detail."""
    asked = _asked(engine, rid, "reflection")
    target = neighbour_tier(engine, step)
    words = asked["min_words"] if asked is not None else 0
    if step > 0 and asked is not None and target is not None:
        engine.change_state("require", rid, rule=rid, requirement={"kind": "reflection", "min_words": words,
                                                                   "waits": "promote", "from": engine.tier,
                                                                   "to": target})
        return {"tier": engine.tier, "to": target, "waits_for": "reflection", "min_words": words}
    before = engine.tier
    detail = engine.change_tier(step, rid)
    if asked is not None and step < 0:
        entry = {"kind": "reflection", "min_words": words, "after": "demote", "from": before, "to": engine.tier}
        if engine.tier == before:
            entry["halted"] = True   # the lowest tier halts instead; the reflection lifts it
        engine.change_state("require", rid, rule=rid, requirement=entry)
    if engine.tier != before:
        _withdraw(engine, lambda req: req.get("from") != engine.tier, "the tier changed meanwhile")
    return detail


def _withdraw(engine: Engine, which, why: str) -> None:
    """Drop waiting promotions that no longer stand, journaled."""
    for rid, req in list(engine.state.requirements.items()):
        if req.get("waits") == "promote" and which(req):
            engine.change_state("drop_requirement", rid, rule=rid)
            engine.note("action", rid, "", {"action": "promote", "to": req["to"], "withdrawn": why})


def on_resolve(engine: Engine, rid: str) -> None:
    """A rule stopped firing: what it asked for only while firing ends, and a promotion
    still waiting for its reflection is withdrawn (its gates no longer hold). A typed
    reset or a reflection after a demotion is still awaited."""
    req = engine.state.requirements.get(rid)
    if req is None:
        return
    if req.get("kind") in ENDS_WITH_RESOLVE:
        engine.change_state("drop_requirement", rid, rule=rid)
    elif req.get("waits") == "promote":
        _withdraw(engine, lambda r: r is req, "its conditions no longer hold")


def reset(engine: Engine, phrase: str, rule: str = "") -> tuple[str, str]:
    """`genesis reset`: lift the halt of the rule whose confirmation phrase was typed."""
    waiting = {rid: req for rid, req in engine.state.requirements.items() if req.get("kind") == "confirmation"}
    if not waiting:
        return "refused", "nothing waits for a reset"
    if rule:
        if rule not in waiting:
            return "refused", f"{rule} does not wait for a reset (waiting: {', '.join(sorted(waiting))})"
        waiting = {rule: waiting[rule]}
    typed = " ".join(phrase.split())
    matched = [rid for rid, req in waiting.items() if " ".join(str(req.get("phrase") or "").split()) == typed]
    if not matched:
        asked = "; ".join(f'{rid}: "{req.get("phrase")}"' for rid, req in sorted(waiting.items()))
        return "refused", f"the phrase does not match the one the halt asks for ({asked}); nothing was changed"
    for rid in matched:   # its requirement, hold and locks end; rules may act on `halt_reset`
        engine.change_state("reset", "reset", rule=rid)
        engine.process(Event("halt_reset", engine.now, "", {"rule": rid}), at_now=True)
    return "applied", f"reset of {', '.join(matched)} accepted; trading state is {engine.state.mode}"


def reflect(engine: Engine, text: str) -> tuple[str, str]:
    """`genesis reflect`: a written reflection; applies the tier change waiting for it."""
    words = len(text.split())
    waiting = {rid: req for rid, req in engine.state.requirements.items() if req.get("kind") == "reflection"}
    answered = [rid for rid, req in waiting.items() if words >= req["min_words"]]
    if waiting and not answered:
        need = max(req["min_words"] for req in waiting.values())
        return "refused", (f"the reflection has {counted(words, 'word')} and at least {need:,} are asked for "
                           f"({describe(waiting)[0]}); nothing was recorded")
    engine.process(Event("reflection", engine.now, "", {"words": words}), at_now=True)
    done = []
    for rid in answered:
        req = engine.state.requirements.get(rid)
        if req is None:
            continue
        engine.change_state("drop_requirement", "reflection", rule=rid)
        if req.get("waits") == "promote":
            if req["from"] != engine.tier:
                continue
            detail = engine.change_tier(+1, rid)
            engine.note("action", rid, "", {"action": "promote", "reflection_words": words, **detail})
            done.append(f"promoted to {detail['tier']}")
        elif req.get("halted"):
            engine.change_state("release", "reflection", rule=rid)
            done.append(f"the halt of {rid} is lifted")
        else:
            done.append(f"{rid}'s request is answered")
    return "applied", f"reflection of {counted(words, 'word')} recorded" + (f": {'; '.join(done)}" if done else
                                                                 "; nothing waited for one")


def describe(requirements: dict) -> list[str]:
    """One line per awaited reset or reflection, for `genesis tier` and answers."""
    out = []
    for rid, req in sorted(requirements.items()):
        kind, words = req.get("kind"), req["min_words"]
        if kind == "reflection" and req.get("waits") == "promote":
            out.append(f"promotion to {req['to']} ({rid}) waits for a written reflection of at least {words} words "
                       "(genesis reflect)")
        elif kind == "reflection" and req.get("halted"):
            out.append(f"{rid} halted trading at the lowest tier until a written reflection of at least {words} "
                       "words (genesis reflect)")
        elif kind == "reflection":
            out.append(f"a written reflection of at least {words} words is awaited after the demotion from "
                       f"{req.get('from', '?')} to {req.get('to', '?')} ({rid}) (genesis reflect)")
        elif kind == "confirmation":
            out.append(f'{rid} waits for a typed reset: genesis reset --phrase "{req.get("phrase")}"')
    return out
