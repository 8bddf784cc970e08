"""What the trader reads, through the real CLI: every `--help` shows an example and the
top-level list never cuts a summary mid-phrase; a journal URL that names no database is a
clear error for every command that takes --db; a queued order for an unknown symbol is
refused before it is queued, one for a symbol with no price yet waits for it; answers
never say "refused: refused", count nouns right, and a wrong override phrase is not told
that it starts a cooldown. Real `genesis run` processes on the bundled sample, real
SQLite journals."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner
from scenario_helpers import config_copy, edited_copy
from sqlalchemy import create_engine, text

from genesis.cli import cli as genesis_cli
from genesis.engine.feeds import open_feed, sample_paths
from genesis.engine.journal import Journal
from genesis.engine.markets import Markets

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, str(ROOT / "cli.py")]
PHRASE = yaml.safe_load((ROOT / "genesis.yaml").read_text())["safety"]["override_phrase"]
COOLDOWN = yaml.safe_load((ROOT / "genesis.yaml").read_text())["safety"]["override_cooldown"]


def cli(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python cli.py ARGS`; never a traceback, never an internal error."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("GENESIS_DEBUG", None)
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
    out = done.stdout + done.stderr
    assert "Traceback" not in out and "internal error" not in out, out
    return done


def quiet_copy(tmp: Path, equity: float | None = None) -> Path:
    """The shipped configuration, strategies off (only the operator trades), no metrics
    endpoint and no health probe (nothing on the wall clock enters the journal)."""
    root = config_copy(tmp, equity=equity)
    path = root / "genesis.yaml"
    settings = path.read_text()
    for old, new in (("metrics_endpoint: {port: 9464}", "metrics_endpoint: {port: null}"),
                     ("health_probe: {interval: 15s}", "health_probe: {interval: null}")):
        assert old in settings
        settings = settings.replace(old, new)
    path.write_text(settings)
    return root


def rows(db: Path, sql: str, **params) -> list:
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def commands_of(path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    """Every command and subcommand of `genesis` (lazily registered ones loaded), with the
    words that call it."""
    ctx = click.Context(genesis_cli)
    group = genesis_cli
    for word in path:
        group = group.get_command(ctx, word)
    out = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        out.append(((*path, name), command))
        if isinstance(command, click.Group):
            out += commands_of((*path, name))
    return out


def help_text(*words: str) -> str:
    result = CliRunner().invoke(genesis_cli, [*words, "--help"], terminal_width=80, prog_name="genesis")
    assert result.exit_code == 0, result.output
    return result.output


# ----------------------------------------------------------------------------- help
@pytest.mark.parametrize("path", [p for p, _ in commands_of()], ids=" ".join)
def test_every_command_help_shows_an_example_and_fits_80_columns(path):
    shown = help_text(*path)
    assert re.search(r"^  Examples?:$", shown, re.M), shown
    examples = shown.split("xample", 1)[1].split("\n\n", 1)[0]
    assert f"genesis {' '.join(path)}" in examples or path == ("notify",), examples
    assert max(len(line) for line in shown.splitlines()) <= 80, shown


def _first_sentence(command: click.Command) -> str:
    """The first sentence of a command's help, as written (its first paragraph up to '. ')."""
    paragraph = " ".join((command.help or "").split("\n\n", 1)[0].split())
    cut = re.search(r"\.(\s|$)", paragraph)
    return paragraph[:cut.start() + 1] if cut else paragraph


@pytest.mark.parametrize("group", [(), ("notify",)], ids=["genesis", "genesis notify"])
def test_the_command_list_shows_each_summary_whole(group):
    listed = help_text(*group).split("Commands:\n", 1)[1]
    summaries = dict(re.findall(r"^  (\S+) +(.+)$", listed, re.M))
    commands = dict(p for p in commands_of(group) if len(p[0]) == len(group) + 1)
    assert set(summaries) == {p[-1] for p in commands}
    for path, command in commands.items():
        said = summaries[path[-1]]
        assert said == command.short_help or said == _first_sentence(command), (path, said)
        assert not said.endswith(("...", "e.g.", "(e.g.")) and said.count("(") == said.count(")"), (path, said)


# ----------------------------------------------------------------------------- --db
DB_ARGS = {"order": ["buy", "BTCUSDT", "40"], "amend": ["g1", "61000"], "cancel": ["g1"], "override": ["--phrase", "x"],
           "reset": ["--phrase", "x"], "reflect": ["thoughts"], "journal": ["an entry"], "silence": ["--list"],
           "set": ["tier.limits.daily_loss_usd", "20"], "restore": ["latest"], "run": ["--speed", "max"]}
TAKES_DB = [path for path, command in commands_of() if any(p.name == "db" for p in command.params)]


def test_the_commands_that_take_a_journal_url_are_known():
    assert len(TAKES_DB) >= 15 and ("order",) in TAKES_DB and ("replay",) in TAKES_DB


@pytest.mark.parametrize("url", ["nonsense", "journal.db", "foo://bar"])
@pytest.mark.parametrize("path", TAKES_DB, ids=" ".join)
def test_a_db_that_is_not_a_database_url_is_a_clear_error(path, url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(genesis_cli, [*path, *DB_ARGS.get(path[-1], []), "--db", url, "--config", str(ROOT)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (result.output, result.exception)
    assert result.stderr.startswith("genesis: ") and "is not a database URL" in result.stderr, result.stderr
    assert "internal error" not in result.output and list(tmp_path.iterdir()) == []   # nothing was created


def test_a_bare_file_name_is_told_how_to_write_it_as_a_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(genesis_cli, ["tier", "--db", "journal.db"])
    assert result.exit_code == 1 and "for a SQLite file write sqlite:///journal.db" in result.stderr


def test_a_password_in_a_url_that_cannot_be_read_is_never_shown():
    result = CliRunner().invoke(genesis_cli, ["order", "buy", "BTCUSDT", "40", "--db", "postgres//me:s3cret@db/x"])
    assert result.exit_code == 1 and "is not a database URL" in result.stderr and "s3cret" not in result.output


def test_storage_url_that_names_no_database_is_a_clear_error(tmp_path):
    root = config_copy(tmp_path)
    path = root / "genesis.yaml"
    path.write_text(path.read_text().replace("url: sqlite:///genesis.db", "url: genesis.db"))
    for args in (["tier"], ["order", "buy", "BTCUSDT", "40"], ["report"]):
        done = cli(*args, "--config", str(root), cwd=tmp_path)
        assert done.returncode == 1 and done.stderr.startswith("genesis: storage.url in genesis.yaml: 'genesis.db' is "
                                                               "not a database URL"), done.stderr


@pytest.mark.parametrize("args", [["order", "buy", "BTCUSDT", "40"], ["report"], ["tier"], ["silence", "--list"],
                                  ["set", "tier.limits.daily_loss_usd", "20"], ["replay"], ["run", "--speed", "max"]],
                         ids=lambda a: a[0])
def test_a_db_that_is_a_file_of_another_kind_is_refused_and_left_alone(args, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a journal\n")
    done = cli(*args, "--db", f"sqlite:///{notes}", "--config", str(quiet_copy(tmp_path)), cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.startswith("genesis: "), done.stdout + done.stderr
    assert "is not a readable SQLite database" in done.stderr or "no journal" in done.stderr, done.stderr
    assert notes.read_text() == "not a journal\n"


# ----------------------------------------------------------------------------- queued orders
def test_a_queued_order_for_an_unknown_symbol_is_refused_before_it_is_queued(tmp_path):
    db = tmp_path / "journal.db"
    Journal(f"sqlite:///{db}").engine.dispose()                     # an existing, empty journal
    done = cli("order", "buy", "dogeusdt", "40", "--db", f"sqlite:///{db}")
    known = ", ".join(sorted(Markets.load().symbols))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (f"genesis: unknown symbol DOGEUSDT: Genesis has market rules for {known}; "
                           "nothing was queued\n")
    assert rows(db, "SELECT id FROM commands") == []


def test_a_queued_order_for_a_configured_symbol_the_bundled_rules_lack_is_queued(tmp_path):
    """A live run trades genesis.yaml's symbols by the rules the exchange announces, so
    `genesis order` queues an order for one of them (the engine decides it); a symbol
    neither known nor configured is still refused, and named with the configured ones."""
    db = tmp_path / "journal.db"
    config = edited_copy(tmp_path, {"genesis.yaml": {"symbols: [BTCUSDT, ETHUSDT]": "symbols: [BTCUSDT, ETHUSDT, SOLUSDT]"}})
    queued = cli("order", "buy", "solusdt", "40", "--db", f"sqlite:///{db}", "--config", str(config))
    assert queued.returncode == 0 and queued.stdout.startswith("queued (#1): "), queued.stdout + queued.stderr
    assert rows(db, "SELECT kind FROM commands") == [("order",)]
    refused = cli("order", "buy", "dogeusdt", "40", "--db", f"sqlite:///{db}", "--config", str(config))
    known = ", ".join(sorted({*Markets.load().symbols, "SOLUSDT"}))
    assert refused.returncode == 1 and refused.stderr == (
        f"genesis: unknown symbol DOGEUSDT: Genesis has market rules for {known}; nothing was queued\n")
    assert rows(db, "SELECT kind FROM commands") == [("order",)]


def test_a_queued_order_for_a_symbol_with_no_price_yet_waits_for_its_first_price(tmp_path):
    """Queued with no engine running, the order is applied right after the run's first
    event (a BTCUSDT one): ETHUSDT has no price then. It waits, and is decided as soon as
    ETHUSDT has one, instead of being refused."""
    db, config = tmp_path / "journal.db", quiet_copy(tmp_path)
    queued = cli("order", "buy", "ETHUSDT", "40", "--db", f"sqlite:///{db}", "--config", str(config))
    assert queued.returncode == 0 and queued.stdout.startswith("queued (#1): no engine is running on this journal")
    run = cli("run", "--tier", "sniper", "--speed", "max", "--db", f"sqlite:///{db}", "--config", str(config),
              cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    [(status, result, at_event)] = rows(db, "SELECT status, result, at_event FROM commands WHERE kind = 'order'")
    assert (status, at_event) == ("applied", 1)
    assert result == "buy ETHUSDT $40.00 waits: ETHUSDT has no price yet; the order is decided as soon as it has one"
    assert f"operator order: {result}" in run.stdout
    [(asked_at,)] = rows(db, "SELECT ts FROM entries WHERE kind = 'operator' AND rule = 'order'")
    intents = rows(db, "SELECT ts, data FROM entries WHERE kind = 'intent' AND rule = 'operator' "
                       "AND symbol = 'ETHUSDT'")
    assert len(intents) == 1 and intents[0][0] > asked_at
    assert json.loads(intents[0][1])["notional_usd"] == 40
    assert rows(db, "SELECT count(*) FROM entries WHERE kind = 'fill' AND symbol = 'ETHUSDT'")[0][0] >= 1


# ----------------------------------------------------------------------------- answers of a running engine
@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """A real `genesis run --speed 1` on the bundled sample (3 minutes of event time),
    strategies off; yields the journal URL and its configuration; stopped with Ctrl-C."""
    tmp = tmp_path_factory.mktemp("running")
    config, db = quiet_copy(tmp), tmp / "journal.db"
    url = f"sqlite:///{db}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*CLI, "run", "--tier", "sniper", "--speed", "1", "--db", url, "--config", str(config)],
                            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if db.exists():
                journal = Journal(url, create=False)
                try:
                    if time.time() * 1000 - journal.last_beat() < 2000:
                        break
                finally:
                    journal.engine.dispose()
            time.sleep(0.2)
        else:
            pytest.fail("the engine did not start beating")
        time.sleep(1.0)   # the first prices are in
        yield url, config, db
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ask(engine, *args: str) -> subprocess.CompletedProcess:
    url, config, _ = engine
    return cli(*args, "--db", url, "--config", str(config))


def test_a_refused_order_says_refused_once(engine):
    done = ask(engine, "order", "buy", "BTCUSDT", "400")
    assert done.returncode == 1 and done.stdout.startswith("refused: buy BTCUSDT $400.00: "), done.stdout
    assert "refused: refused" not in done.stdout and done.stdout.count("refused") == 1


def test_an_applied_order_counts_the_orders_it_sent(engine):
    done = ask(engine, "order", "buy", "BTCUSDT", "40")
    assert done.returncode == 0, done.stdout
    m = re.fullmatch(r"applied: buy BTCUSDT \$40\.00: (\d+) (orders?) sent \(([^)]*)\)\n", done.stdout)
    assert m, done.stdout
    count, noun, ids = int(m.group(1)), m.group(2), m.group(3).split(", ")
    assert count == len(ids) and noun == ("order" if count == 1 else "orders")


def test_a_journal_entry_of_one_word_is_one_word(engine):
    done = ask(engine, "journal", "calm")
    assert done.returncode == 0 and done.stdout == "applied: journal entry of 1 word recorded\n", done.stdout


def test_a_cancel_of_an_unknown_order_is_refused_plainly(engine):
    done = ask(engine, "cancel", "g999")
    assert done.returncode == 1 and done.stdout == "refused: no open order 'g999'\n"


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def test_a_wrong_override_phrase_changes_nothing_and_starts_no_cooldown(engine):
    _, _, db = engine
    wrong = ask(engine, "override", "--phrase", "let me trade")
    assert wrong.returncode == 1 and "does not match" in wrong.stdout and "nothing was changed" in wrong.stdout
    assert "cooldown" not in wrong.stdout
    accepted = ask(engine, "override", "--phrase", PHRASE)             # the wrong one started no cooldown
    assert accepted.returncode == 0, accepted.stdout
    at = rows(db, "SELECT ts FROM entries WHERE kind = 'operator' AND rule = 'override' ORDER BY seq")[-1][0]
    cooldown_ms = {"h": 3_600_000, "m": 60_000}[COOLDOWN[-1]] * int(COOLDOWN[:-1])
    assert accepted.stdout == (f"applied: override accepted: every halt and lock is lifted; the next override is "
                               f"possible after {COOLDOWN} (at {_utc(at + cooldown_ms)})\n")
    again = ask(engine, "override", "--phrase", PHRASE)
    assert again.returncode == 1 and f"the next is possible at {_utc(at + cooldown_ms)}" in again.stdout
    # the notifications of the attempts: only the accepted one speaks of a cooldown
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        notes = [json.loads(d)["text"] for (d,) in rows(db, "SELECT data FROM entries WHERE kind = 'action' AND "
                                                            "rule = 'override_attempt_logged' ORDER BY seq")]
        if len(notes) >= 3:
            break
        time.sleep(0.2)
    assert len(notes) == 3, notes
    assert "cooldown" not in notes[0] and "refused" in notes[0]
    assert "cooldown" in notes[1] and "accepted" in notes[1]
    assert "cooldown" not in notes[2] and "refused" in notes[2]


# ----------------------------------------------------------------------------- counted nouns in a scripted replay
def test_answers_count_their_nouns_and_name_the_position_limit_in_words_that_fit_one(tmp_path):
    config = quiet_copy(tmp_path, equity=20_000)         # 5% of $20,000: a $600 order passes and is sliced
    script = tmp_path / "commands.yaml"
    script.write_text("commands:\n"
                      "  - {after: 30s, kind: order, side: buy, symbol: BTCUSDT, notional_usd: 600}\n"
                      "  - {after: 40s, kind: order, side: buy, symbol: ETHUSDT, notional_usd: 40}\n"
                      "  - {after: 50s, kind: journal, text: calm}\n"
                      "  - {after: 50s, kind: reflect, text: patient}\n"
                      "  - {after: 50s, kind: life, days: 1}\n", encoding="utf-8")
    db = tmp_path / "journal.db"
    done = cli("replay", "--tier", "sniper", "--config", str(config), "--commands", str(script),
               "--db", f"sqlite:///{db}", "--json")
    assert done.returncode == 0, done.stderr
    answers = [json.loads(d) for (d,) in rows(db, "SELECT data FROM entries WHERE kind = 'operator' ORDER BY seq")]
    sliced, eth, journal, reflect, life = (a["result"] for a in answers)
    for count, noun, ids in re.findall(r"(\d+) (orders?|slices?) (?:sent|scheduled) \(([^)]*)\)", sliced):
        assert int(count) == len(ids.split(", ")) and noun.endswith("s") == (int(count) != 1), sliced
    assert "scheduled" in sliced and "(s)" not in sliced
    limit = yaml.safe_load((config / "tiers" / "sniper.yaml").read_text())["limits"]["max_open_positions"]
    rule = next(r for r in yaml.safe_load((config / "rules" / "risk.yaml").read_text())["rules"]
                if r["id"] == "max_open_positions")
    template = next(a["reject"] for a in rule["then"] if "reject" in a)
    assert eth == "buy ETHUSDT $40.00: " + template.replace("${tier.limits.max_open_positions}", str(limit))
    assert f"{limit} open positions" not in eth
    assert journal == "journal entry of 1 word recorded"
    assert reflect == "reflection of 1 word recorded; nothing waited for one"
    assert life == "life event recorded: tilt thresholds are one higher for 1 day"


# ----------------------------------------------------------------------------- the README's numbers
def test_the_readme_states_what_validate_prints_and_the_sample_it_bundles():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"^OK: (\d+) files, (\d+) tiers, (\d+) metrics, (\d+) rules compiled", readme, re.M)
    result = CliRunner().invoke(genesis_cli, ["validate", "--config", str(ROOT)], prog_name="genesis")
    printed = re.search(r"^OK: (\d+) files, (\d+) tiers, (\d+) metrics, (\d+) rules compiled", result.stdout, re.M)
    assert stated and printed and stated.groups() == printed.groups(), (stated, result.stdout)
    times = [event.ts for event in open_feed(sample_paths())]
    minutes = round((max(times) - min(times)) / 60_000)
    assert f"trades a {minutes}-minute sample of a real Binance capture" in " ".join(readme.split())
