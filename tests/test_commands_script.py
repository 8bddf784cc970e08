"""`genesis replay --commands SCRIPT` through the real CLI (python cli.py) on the bundled
sample: the script is checked against schema/commands.schema.json before anything is
replayed (each mistake as file:line:col, exit 1, never an internal error, no journal
opened), and its orders meet the market rules: an order for a symbol without market rules
is a mistake in the script; one for a known symbol that has no price yet waits and is
decided at the symbol's first price."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from genesis.engine.commandscript import ScriptError, read_script
from genesis.engine.markets import Markets

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, str(ROOT / "cli.py")]


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`python cli.py ARGS`; never a traceback, never an internal error."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("GENESIS_DEBUG", None)
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env)
    out = done.stdout + done.stderr
    assert "Traceback" not in out and "internal error" not in out, out
    return done


def line_of(script: str, marker: str) -> int:
    """The 1-based line of `script` that holds `marker`."""
    return next(i for i, line in enumerate(script.splitlines(), 1) if marker in line)


def operator_entries(db: Path) -> list[dict]:
    """The journal's operator entries, in order: ts, kind (rule) and the recorded answer."""
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT ts, rule, data FROM entries WHERE kind = 'operator' ORDER BY seq")).all()
    engine.dispose()
    return [{"ts": ts, "kind": rule, **json.loads(data)} for ts, rule, data in rows]


def entries(db: Path, kind: str) -> list[dict]:
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT ts, rule, symbol, data FROM entries WHERE kind = :k ORDER BY seq"),
                            {"k": kind}).all()
    engine.dispose()
    return [{"ts": ts, "rule": rule, "symbol": symbol, "data": json.loads(data)} for ts, rule, symbol, data in rows]


# ----------------------------------------------------------------------------- mistakes
ORDER = "side: buy, symbol: BTCUSDT, notional_usd: 40"
MISTAKES = {
    "a misspelt kind": (f"commands:\n  - {{after: 10s, kind: ordr, {ORDER}}}  # here\n",
                        "'ordr' is not one of: order, cancel", "(did you mean 'order'?)"),
    "a misspelt field": ("commands:\n  - {after: 10s, kind: order, side: buy, symbl: BTCUSDT, notional_usd: 40}"
                         "  # here\n",
                         "unknown key 'symbl'", "(did you mean 'symbol'?)"),
    "a field of another kind": ("commands:\n  - {after: 10s, kind: cancel, client_id: g1, reason: late}  # here\n",
                                "unknown key 'reason'", "(allowed here: after, client_id, kind)"),
    "a wrong type": ("commands:\n  - {after: 10s, kind: order, side: buy, symbol: BTCUSDT, notional_usd: forty}"
                     "  # here\n",
                     "'notional_usd' must be a number, not text", ""),
    "a missing after": (f"commands:\n  - {{kind: order, {ORDER}}}  # here\n",
                        "missing required key 'after' in item 1 of commands", ""),
    "an after without a unit": (f"commands:\n  - {{after: 90, kind: order, {ORDER}}}  # here\n",
                                "'after' must be a duration with its unit, e.g. 90s or 90m", ""),
    "commands that are a number": ("commands: 5  # here\n", "'commands' must be a list, not a number", ""),
    "an unknown symbol": ("commands:\n  - after: 10s\n    kind: order\n    side: buy\n"
                          "    symbol: DOGEUSDT  # here\n    notional_usd: 40\n",
                          "unknown symbol 'DOGEUSDT': Genesis has market rules for ",
                          ", ".join(sorted(Markets.load().symbols))),
    "a YAML syntax error": (f"commands: [\n  {{after: 10s, kind: order, {ORDER}}},\n  # here\n",
                            "YAML syntax error", ""),
    "an empty file": ("# here: nothing else\n", "the script is empty: write `commands:`", ""),
}


@pytest.mark.parametrize("name", MISTAKES)
def test_a_mistake_in_a_script_is_named_with_its_line_and_nothing_is_replayed(tmp_path, name):
    script, says, hint = MISTAKES[name]
    path = tmp_path / "commands.yaml"
    path.write_text(script, encoding="utf-8")
    db = tmp_path / "journal.db"
    done = cli("replay", "--commands", str(path), "--db", f"sqlite:///{db}")
    assert done.returncode == 1, done.stdout + done.stderr
    first, *rest = done.stderr.splitlines()
    where, message = first.split(": ", 1)
    file, line, col = where.rsplit(":", 2)
    assert file == str(path) and int(col) >= 1
    # a syntax error is found where the parser gives up: at or after the marked line
    marked = line_of(script, "here")
    assert int(line) == marked if name != "a YAML syntax error" else int(line) >= marked
    assert message.startswith(says) and hint in message, message
    assert rest[-2:] == ["1 problem found", "genesis: the --commands script has problems; nothing was replayed "
                                            "(its format: docs/scenarios.md)"]
    assert done.stdout == "" and not db.exists()        # no report, and no journal opened


def test_every_mistake_of_a_script_is_reported_at_once_in_line_order(tmp_path):
    script = ("commands:\n"
              "  - {after: 3m, kind: cancel, client_id: g1, reason: late}          # third\n"
              f"  - {{after: 1m, kind: ordr, {ORDER}}}                               # first\n"
              "  - {after: 2m, kind: journal, text: fine}\n"
              "  - {after: 2m, kind: order, side: buy, symbol: BTCUSDT, usd: 40}    # second\n")
    path = tmp_path / "many.yaml"
    path.write_text(script, encoding="utf-8")
    done = cli("replay", "--commands", str(path))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    located = [int(line.split(":")[1]) for line in lines if line.startswith(f"{path}:")]
    assert located == sorted(located)
    assert set(located) == {line_of(script, w) for w in ("first", "second", "third")}
    assert f"{len(located)} problems found" in lines


# ----------------------------------------------------------------------------- a valid script
@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """The bundled sample replayed with a script that orders ETH before its first price,
    orders a symbol with market rules that the sample never prices, and sends more."""
    tmp = tmp_path_factory.mktemp("scripted")
    entry = "Took the ETH trade off on plan."
    script = ("commands:\n"
              "  - {after: 0s, kind: order, side: buy, symbol: ethusdt, notional_usd: 40}\n"
              "  - {after: 0s, kind: order, side: buy, symbol: ETHBTC, notional_usd: 20}\n"
              "  - {after: 90s, kind: order, side: sell, symbol: ETHUSDT, notional_usd: 40}\n"
              f"  - {{after: 100s, kind: journal, text: \"{entry}\"}}\n"
              "  - {after: 100s, kind: set, key: tier.limits.daily_loss_usd, value: 20}\n")
    path = tmp / "commands.yaml"
    path.write_text(script, encoding="utf-8")
    db = tmp / "journal.db"
    done = cli("replay", "--tier", "sniper", "--commands", str(path), "--db", f"sqlite:///{db}", "--json")
    assert done.returncode == 0, done.stderr
    return db, path, entry, json.loads(done.stdout)


def test_a_valid_script_is_applied_in_order_with_an_answer_for_each_command(replayed):
    db, path, entry, _ = replayed
    ops = operator_entries(db)
    script, _ = read_script(path)
    assert [o["kind"] for o in ops] == [kind for _, kind, _ in script]
    assert [o["payload"] for o in ops] == [payload for _, _, payload in script]
    journal = next(o for o in ops if o["kind"] == "journal")
    assert journal["status"] == "applied"
    assert journal["result"] == f"journal entry of {len(entry.split())} words recorded"
    assert next(o for o in ops if o["kind"] == "set")["status"] == "applied"


def test_an_order_for_a_symbol_with_no_price_yet_waits_and_is_decided_at_its_first_price(replayed):
    db, *_ = replayed
    ops = operator_entries(db)
    waiting = ops[0]
    assert waiting["status"] == "applied", waiting
    assert waiting["result"] == ("buy ETHUSDT $40.00 waits: ETHUSDT has no price yet; the order is decided as soon as "
                                 "it has one")
    intents = [e for e in entries(db, "intent") if e["rule"] == "operator"]
    eth = [e for e in intents if e["symbol"] == "ETHUSDT" and e["data"]["side"] == "buy"]
    assert len(eth) == 1 and eth[0]["ts"] > waiting["ts"]          # decided later, once, as a manual order
    assert eth[0]["data"]["notional_usd"] == 40 and eth[0]["data"]["reason"] == "manual"
    fills = [e for e in entries(db, "fill") if e["symbol"] == "ETHUSDT" and e["data"]["side"] == "buy"]
    assert fills and fills[0]["ts"] >= eth[0]["ts"]
    # the later sell finds the position the waiting buy opened
    sell = ops[2]
    assert sell["status"] == "applied" and " sent (g" in sell["result"], sell


def test_a_known_symbol_the_input_never_prices_keeps_its_order_waiting(replayed):
    db, *_ = replayed
    ops = operator_entries(db)
    assert ops[1]["status"] == "applied" and ops[1]["result"].startswith("buy ETHBTC $20.00 waits: ETHBTC has no price")
    assert not [e for e in entries(db, "intent") if e["symbol"] == "ETHBTC"]
    assert not [e for e in entries(db, "refused") if e["symbol"] == "ETHBTC"]


def test_the_script_is_read_in_event_time_order_keeping_the_written_order_at_one_time(tmp_path):
    path = tmp_path / "order.yaml"
    path.write_text("commands:\n"
                    "  - {after: 2m, kind: connect}\n"
                    "  - {after: 1m30s, kind: journal, text: first}\n"
                    "  - {after: 90s, kind: journal, text: second}\n"
                    "  - {after: 500ms, kind: set, key: tier.limits.daily_loss_usd, value: 20}\n", encoding="utf-8")
    script, digest = read_script(path)
    assert [(offset, kind) for offset, kind, _ in script] == [(500, "set"), (90_000, "journal"), (90_000, "journal"),
                                                               (120_000, "connect")]
    assert [p.get("text") for _, kind, p in script if kind == "journal"] == ["first", "second"]
    assert script[0][2] == {"key": "tier.limits.daily_loss_usd", "value": 20}
    assert len(digest) == 64


def test_a_script_that_is_not_text_is_a_mistake_not_a_crash(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ScriptError) as caught:
        read_script(path)
    assert str(caught.value).startswith(f"{path}:1:1: the file is not UTF-8 text")
