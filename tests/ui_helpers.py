"""A real run for `genesis ui` to show, shared by tests/test_ui.py and the README
screenshot (tests/ui_screenshot.py): a replay of the bundled sample with scripted
operator commands that leave an open position, a resting order, refusals, alerts and a
level-3 tilt lockout waiting for a journal entry.

The tilt rules only record during the 30-day calibration, so the replay runs on a copy
of the shipped configuration in which the trader is past it (as in
tests/test_scenarios_tilt.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from scenario_helpers import edited_copy

ROOT = Path(__file__).resolve().parents[1]
CALIBRATED = {"rules/tilt.yaml": {'expr: "trader_days >= 30"': 'expr: "trader_days >= 0"'}}
REASON = "taking some off if it spikes"


def tilted_session() -> list[dict]:
    """Commands that raise six tilt indicators in the sample's three minutes: config
    thrashing and a rage quit, a loss reaction and revenge, five resting sells cancelled
    at once (quick cancels) and one order moved six times (bargaining). A BTC position
    stays open and a last resting sell is left on the book."""
    commands = [{"after": "5s", "kind": "connect"}]
    commands += [{"after": f"{6 + i}s", "kind": "set", "key": "tier.limits.daily_loss_usd", "value": value}
                 for i, value in enumerate((20, 22, 24, 21))]
    commands += [{"after": f"{s}s", "kind": "disconnect"} for s in (10, 11, 12)]
    for after, side, symbol in ((20, "buy", "BTCUSDT"), (30, "sell", "BTCUSDT"), (31, "buy", "ETHUSDT"),
                                (35, "sell", "ETHUSDT"), (40, "buy", "BTCUSDT")):
        commands.append({"after": f"{after}s", "kind": "order", "side": side, "symbol": symbol, "notional_usd": 40})
    # $15: over BTCUSDT's $10 minimum order at 68,000-70,000 once rounded to its lot size
    resting = {"kind": "order", "side": "sell", "symbol": "BTCUSDT", "notional_usd": 15, "reason": REASON}
    for n, after in zip(range(6, 11), range(50, 60, 2)):        # the five orders above are g1..g5
        commands += [{"after": f"{after}s", **resting, "limit": 70000},
                     {"after": f"{after + 1}s", "kind": "cancel", "client_id": f"g{n}"}]
    commands.append({"after": "60s", **resting, "limit": 70000})
    commands += [{"after": f"{61 + i}s", "kind": "amend", "client_id": "g11", "price": 69900 - 100 * i}
                 for i in range(6)]
    commands.append({"after": "70s", **resting, "limit": 68000})
    return commands


def replay_tilted_session(tmp: Path) -> Path:
    """Replay the bundled sample with the tilted session through `genesis replay` into
    tmp/replay.db; returns that journal."""
    config = edited_copy(tmp, CALIBRATED)
    script = tmp / "session.yaml"
    script.write_text(yaml.safe_dump({"commands": tilted_session()}, sort_keys=False), encoding="utf-8")
    db = tmp / "replay.db"
    done = subprocess.run([sys.executable, "cli.py", "replay", "--tier", "sniper", "--config", str(config),
                           "--commands", str(script), "--db", f"sqlite:///{db}", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["rule_firings"].get("tilt_level_3") == 1, "the session no longer reaches level 3"
    return db


async def loaded(app, pilot) -> None:
    """Wait until a GenesisApp has read its journal once."""
    for _ in range(250):
        if app.view is not None and app.dashboard.view:
            await pilot.pause()
            return
        await pilot.pause(0.02)
    raise AssertionError("the dashboard never read the journal")
