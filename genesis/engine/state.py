"""One trading state that every order intent passes through.

Modelled on NautilusTrader's risk engine: ACTIVE, REDUCING (only exposure-reducing
orders pass) and HALTED (no new orders; cancels pass). A mode is held by the rules
that asked for it: the state is HALTED while any rule holds a halt, so one rule's
`resume` never lifts another's halt. Locks are time-boxed per symbol or for all (like
Freqtrade's pair locks) and may also wait for a journal entry; size multipliers live
in named slots and multiply together.

Each method that changes the state returns the `Transition`s it made; the engine calls
them only through `Engine.change_state`, which journals each one (STATE_CHANGES names them).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from genesis.engine.events import MS_PER_DAY

ACTIVE, REDUCING, HALTED = "ACTIVE", "REDUCING", "HALTED"
# the methods below that change the state: called only by Engine.change_state
STATE_CHANGES = ("hold", "release", "scale", "lock", "expire_locks", "journal_written", "require",
                 "drop_requirement", "reset", "lift_all")


@dataclass
class Lock:
    """New orders are blocked for `symbol` ('' = all) until `until` (ms)."""

    rule: str
    symbol: str
    until: int
    reason: str
    needs_journal_words: int = 0   # > 0: also needs a journal entry this long

    def to_dict(self) -> dict:
        """Plain form for the journal and status."""
        return {"rule": self.rule, "symbol": self.symbol, "until": self.until, "reason": self.reason,
                "needs_journal_words": self.needs_journal_words}


@dataclass
class Transition:
    """One change of the trading state: what changed, for which rule and symbol, and
    its details (journaled as a `state` entry by `Engine.change_state`)."""

    change: str
    rule: str = ""
    symbol: str = ""
    data: dict = field(default_factory=dict)


def _released(lock: Lock) -> Transition:
    return Transition("lock_released", lock.rule, lock.symbol, {"lock_released": lock.to_dict()})


@dataclass
class Admission:
    """What the state says about one order intent."""

    allowed: bool
    reason: str = ""
    size_factor: float = 1.0


@dataclass
class TradingState:
    """Mode holds, locks, size multipliers and operator requirements."""

    holds: dict = field(default_factory=dict)         # rule -> 'halt' | 'reduce_only'
    locks: list = field(default_factory=list)
    sizes: dict = field(default_factory=dict)         # slot -> (factor, expires ms or None)
    symbol_sizes: dict = field(default_factory=dict)  # symbol -> {slot -> (factor, expires)}: per-symbol rules
    requirements: dict = field(default_factory=dict)  # rule -> {'kind', 'min_words', 'phrase'}
    fire_log: dict = field(default_factory=dict)      # rule -> [fire times] (lock escalation)

    @property
    def mode(self) -> str:
        """ACTIVE, REDUCING or HALTED."""
        if not self.holds:
            return ACTIVE
        kinds = set(self.holds.values())
        return HALTED if "halt" in kinds else REDUCING if "reduce_only" in kinds else ACTIVE

    def hold(self, rule: str, kind: str) -> list:
        """A rule asks for HALTED ('halt') or REDUCING ('reduce_only'); a halt is not
        weakened by the same rule's later reduce_only."""
        if self.holds.get(rule) in ("halt", kind):
            return []
        self.holds[rule] = kind
        return [Transition("hold", rule, "", {"hold": kind})]

    def release(self, rule: str) -> list:
        """Lift only what `rule` held (its own `resume`, a reset, a reflection)."""
        kind = self.holds.pop(rule, None)
        return [Transition("release", rule, "", {"released": kind})] if kind else []

    def size_factor(self, now: int, symbol: str = "") -> float:
        """Product of every active account-wide size multiplier, and of `symbol`'s own."""
        factor = 1.0
        for value, expires in self.sizes.values():
            if expires is None or now < expires:
                factor *= value
        for value, expires in self.symbol_sizes.get(symbol, {}).values() if symbol else ():
            if expires is None or now < expires:
                factor *= value
        return factor

    def zero_slots(self, symbol: str, now: int) -> list:
        """Names of the active size multipliers at 0 for an order of `symbol`."""
        slots = [(slot, v) for slot, v in self.sizes.items()]
        slots += [(f"{slot} of {symbol}", v) for slot, v in self.symbol_sizes.get(symbol, {}).items()]
        return [slot for slot, (value, expires) in slots if value == 0 and (expires is None or now < expires)]

    def scale(self, slot: str, factor: float, expires: int | None, symbol: str = "") -> list:
        """Set one size multiplier (1.0 removes the cut); with `symbol`, that symbol's own slot."""
        sizes = self.symbol_sizes.setdefault(symbol, {}) if symbol else self.sizes
        before = sizes.get(slot)
        if factor == 1.0 and expires is None:
            sizes.pop(slot, None)
            if symbol and not sizes:
                del self.symbol_sizes[symbol]
            after = None
        else:
            after = sizes[slot] = (factor, expires)
        if after == before:
            return []
        return [Transition("size", "", symbol, {"slot": slot, "factor": factor, "expires": expires})]

    def lock(self, rule: str, symbol: str, until: int, reason: str, journal_words: int = 0) -> list:
        """Add a lock."""
        lock = Lock(rule, symbol, until, reason, journal_words)
        self.locks.append(lock)
        return [Transition("lock", rule, symbol, {"lock": lock.to_dict()})]

    def active_locks(self, now: int) -> list:
        """Locks in force at `now`."""
        return [lk for lk in self.locks if now < lk.until or lk.needs_journal_words]

    def expire_locks(self, now: int) -> list:
        """Remove the locks that have ended."""
        ended = [lk for lk in self.locks if now >= lk.until and not lk.needs_journal_words]
        if ended:
            self.locks = [lk for lk in self.locks if lk not in ended]
        return [_released(lk) for lk in ended]

    def journal_written(self, words: int) -> list:
        """A journal entry lifts the journal condition of locks it is long enough for."""
        freed = []
        for lk in self.locks:
            if lk.needs_journal_words and words >= lk.needs_journal_words:
                lk.needs_journal_words = 0
                freed.append(Transition("journal_entry_accepted", lk.rule, lk.symbol,
                                        {"journal_entry_accepted": lk.to_dict()}))
        return freed

    def require(self, rule: str, requirement: dict) -> list:
        """What `rule` waits for from the operator (a reason, a journal entry, a typed
        reset, a reflection); a journal entry is also asked of the rule's locks."""
        self.requirements[rule] = requirement
        if requirement.get("kind") == "journal_entry":
            for lk in self.locks:
                if lk.rule == rule:
                    lk.needs_journal_words = requirement["min_words"]
        return [Transition("require", rule, "", {"requirement": dict(requirement)})]

    def drop_requirement(self, rule: str) -> list:
        """`rule` waits for nothing any more (answered, or no longer standing)."""
        requirement = self.requirements.pop(rule, None)
        return [] if requirement is None else [Transition("requirement_dropped", rule, "",
                                                          {"requirement": requirement})]

    def reset(self, rule: str) -> list:
        """A typed reset of `rule`'s halt: its requirement, hold and locks end."""
        ended = [lk for lk in self.locks if lk.rule == rule]
        self.locks = [lk for lk in self.locks if lk.rule != rule]
        return self.drop_requirement(rule) + self.release(rule) + [_released(lk) for lk in ended]

    def lift_all(self) -> list:
        """The emergency override: every hold and lock ends, and with them the typed
        resets the halts waited for."""
        done = []
        for rule in list(self.holds):
            done += self.release(rule)
        for rule in [r for r, req in self.requirements.items() if req.get("kind") == "confirmation"]:
            done += self.drop_requirement(rule)
        ended, self.locks = self.locks, []
        return done + [_released(lk) for lk in ended]

    def escalation(self, rule: str, now: int, window_ms: int) -> int:
        """How many times `rule` fired within the window before now (for escalating locks)."""
        times = [t for t in self.fire_log.get(rule, []) if now - t < window_ms]
        self.fire_log[rule] = times + [now]
        return len(times)

    def admit(self, symbol: str, opens_position: bool, now: int) -> Admission:
        """May an order for `symbol` go out now, and at what size factor?"""
        mode = self.mode
        if mode == HALTED:
            return Admission(False, "trading is halted")
        if opens_position:
            if mode == REDUCING:
                return Admission(False, "only exposure-reducing orders pass (reduce-only)")
            for lk in self.active_locks(now):
                if lk.symbol in ("", symbol):
                    return Admission(False, f"locked: {lk.reason}")
        return Admission(True, size_factor=self.size_factor(now, symbol) if opens_position else 1.0)

    def snapshot(self) -> dict:
        """Plain form for the journal and `genesis status`."""
        return {"mode": self.mode, "holds": dict(self.holds), "locks": [lk.to_dict() for lk in self.locks],
                "sizes": {k: list(v) for k, v in self.sizes.items()},
                "symbol_sizes": {sym: {k: list(v) for k, v in slots.items()} for sym, slots in self.symbol_sizes.items()},
                "requirements": dict(self.requirements)}


def next_utc_midnight(now: int) -> int:
    """The next 00:00 UTC after `now` (ms)."""
    return (now // MS_PER_DAY + 1) * MS_PER_DAY
