"""The `genesis` command."""
from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import click

from genesis import __version__
from genesis.paths import SETTINGS_FILE, default_config_dir


def _config_dir(value: str | None) -> Path:
    path = Path(value) if value else default_config_dir()
    if not path.is_dir():
        raise click.UsageError(f"--config {path}: no such folder")
    if not (path / SETTINGS_FILE).is_file() and value is None:
        raise click.UsageError(f"no {SETTINGS_FILE} in {path}; name a configuration folder with --config DIR")
    return path


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="genesis")
def cli() -> None:
    """Genesis: trading rules engine for one disciplined Binance spot trader."""


@cli.command()
@click.option("--config", "config", metavar="DIR", help="Configuration folder (default: $GENESIS_CONFIG, the "
              "current folder if it holds genesis.yaml, else the bundled defaults).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Output format; json is for CI.")
def validate(config: str | None, fmt: str) -> None:
    """Check every configuration file: YAML, schemas, expressions, references, ladders.

    Prints each problem as file:line:col: message. Exits 0 when valid, 1 when not,
    2 on usage errors.
    """
    from genesis.config.checks import check_config  # noqa: PLC0415 - keep `genesis --help` fast
    from genesis.config.problems import format_json, format_text  # noqa: PLC0415
    from genesis.config.ruleset import compile_ruleset  # noqa: PLC0415

    root = _config_dir(config)
    started = time.perf_counter()
    result = check_config(root)
    rules = 0
    if result.ok:
        for tier in result.tiers:
            rules = max(rules, compile_ruleset(result, tier).rule_count())
    elapsed = time.perf_counter() - started
    files = result.files.files_checked
    if fmt == "text":
        for warning in result.warnings:
            click.echo(f"warning: {warning}", err=True)
    if fmt == "json":
        click.echo(format_json(result.problems, files))
    elif result.problems:
        click.echo(format_text(result.problems), err=False)
    else:
        click.echo(f"OK: {files} files, {len(result.tiers)} tiers, {len(result.metrics)} metrics, "
                   f"{len(result.rules)} rules compiled for every tier in {elapsed:.2f} s ({root})")
    sys.exit(0 if result.ok else 1)


@cli.command()
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
def docs(output: str | None) -> None:
    """Print the configuration reference (every key, unit and default) as Markdown."""
    from genesis.reference import render_reference  # noqa: PLC0415

    text = render_reference()
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


def _load_config(config: str | None):
    from genesis.config.checks import check_config  # noqa: PLC0415
    from genesis.config.problems import format_text  # noqa: PLC0415

    root = _config_dir(config)
    result = check_config(root)
    if not result.ok:
        click.echo(format_text(result.problems), err=True)
        click.echo("genesis: the configuration has problems; fix them (genesis validate) before trading", err=True)
        sys.exit(1)
    return root, result


def journal_url(settings: dict, db: str | None = None) -> str:
    """`--db`, else storage.url, with the password from storage.password_env (see
    genesis.engine.journal.journal_url; imported here only when a command needs it)."""
    from genesis.engine.journal import journal_url as url  # noqa: PLC0415

    return url(settings, db)


def _tier(result, tier: str | None) -> str:
    tier = tier or result.files.settings.data["tier"]
    if tier not in result.tiers:
        raise click.BadParameter(f"unknown tier '{tier}' (known: {', '.join(sorted(result.tiers))})",
                                 param_hint="--tier")
    return tier


def _open_feed(paths):
    from genesis.engine.feeds import open_feed, sample_paths  # noqa: PLC0415

    chosen = list(paths) or sample_paths()
    for p in chosen:
        if not Path(p).is_file():
            raise click.BadParameter(f"{p}: no such file", param_hint="--feed")
    return open_feed(chosen)


def _session(root, result, tier, feed, db, mode, notify=None, script=None):
    from genesis.engine.journal import JournalError  # noqa: PLC0415
    from genesis.engine.runner import open_session  # noqa: PLC0415

    from genesis.engine.recovery import describe  # noqa: PLC0415

    try:
        session = open_session(root, result, tier, feed, db, mode, notify=notify, script_path=script)
        if describe(session.restored):
            click.echo(describe(session.restored), err=True)
        return session
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--commands") from None
    except JournalError as exc:
        click.echo(f"genesis: {exc}", err=True)
        sys.exit(1)


def _speed(value: str) -> float | None:
    if value == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        raise click.BadParameter("give a number (1 = real time) or max", param_hint="--speed") from None
    if speed <= 0:
        raise click.BadParameter("must be above 0", param_hint="--speed")
    return speed


def _status_line(engine, catching_up: bool) -> None:
    m = engine.metrics.m
    line = (f"{'catching up  ' if catching_up else ''}equity ${m['equity_usd']:,.2f}  "
            f"P&L today ${m['daily_pnl_usd']:+,.2f}  drawdown ${m['drawdown_usd']:,.2f}  "
            f"state {engine.state.mode}  tilt {int(m.get('tilt_level', 0))}  "
            f"last: {engine.stats.last_decision or '-'}")
    click.echo("\r" + line[:150].ljust(150), nl=False)


@cli.command()
@click.option("--tier", help="Tier to trade (default: genesis.yaml `tier`).")
@click.option("--feed", "feeds", multiple=True, type=click.Path(dir_okay=False),
              help="Recorded feed file(s) (capture or candles); default: the bundled sample. Repeatable.")
@click.option("--speed", default="1", show_default=True, help="Event time per wall time: 1 = real time, 10, or max.")
@click.option("--db", help="Journal URL (default: genesis.yaml storage.url).")
@click.option("--config", "config", metavar="DIR", help="Configuration folder.")
@click.option("--mode", type=click.Choice(["paper", "dry-run", "live"]), default=None,
              help="paper: recorded data (default: genesis.yaml exchange.mode); dry-run: the exchange's live "
              "market data, orders filled on paper (no keys, nothing sent); live: real orders.")
@click.option("--rest-url", help="Live and dry-run: exchange REST base URL (default: genesis.yaml "
              "exchange.rest_url, else https://api.binance.com).")
@click.option("--ws-url", help="Live and dry-run: websocket base URL (default: genesis.yaml exchange.ws_url, "
              "else wss://stream.binance.com:9443).")
@click.option("--confirm", help="Live: the word 'live', to start without the interactive question.")
def run(tier, feeds, speed, db, config, mode, rest_url, ws_url, confirm) -> None:
    """Paper-trade a feed at real-time speed with a live status line; Ctrl-C stops
    cleanly and the same command resumes from the journal. `--mode dry-run` paper-trades
    the exchange's live market data instead (no API keys; no order is ever sent).
    `--mode live` trades on the exchange with the keys in GENESIS_API_KEY /
    GENESIS_API_SECRET."""
    if mode is None:
        mode = _load_config(config)[1].files.settings.data["exchange"]["mode"]
    if mode in ("live", "dry-run"):
        _run_live(tier, db, config, rest_url, ws_url, confirm, dry_run=mode == "dry-run")
        return
    from genesis.engine.journal import JournalError  # noqa: PLC0415
    from genesis.engine.report import format_report  # noqa: PLC0415
    from genesis.engine.runner import run as run_feed  # noqa: PLC0415

    root, result = _load_config(config)
    tier = _tier(result, tier)
    pace = _speed(speed)
    feed = _open_feed(feeds)
    db = journal_url(result.files.settings.data, db)

    dispatcher, notify = _notifier(root, result, db)
    session = _session(root, result, tier, feed, db, "paper", notify)
    click.echo(("resuming" if session.resumed else "starting") + f" paper trading on tier {tier} "
               f"({', '.join(Path(p).name for p in feed.sources)}); Ctrl-C stops")
    from genesis.observe.loopwatch import LoopWatch  # noqa: PLC0415

    watch = LoopWatch()
    endpoint = _metrics_endpoint(result, watch)
    watch.slowest_write = session.journal.take_slowest_write_ms
    probe = _health_probe(result, db, watch)
    backups = _backup_schedule(result, db)
    stopped_by = _stop_on_signals()
    try:
        report = run_feed(session, pace, root, status=_status_with(endpoint, dispatcher, probe, backups),
                          say=lambda t: click.echo("\n" + t), watch=watch)
    except KeyboardInterrupt:
        from genesis.engine.runner import disconnect  # noqa: PLC0415

        _close_helpers(probe, None, endpoint, backups=backups)
        disconnect(session)
        session.engine.finish()
        session.journal.close()
        _close_helpers(None, dispatcher, None, db)
        click.echo("\nstopped; the journal is saved: run the same command to resume")
        sys.exit(128 + stopped_by[0])
    except JournalError as exc:   # the feed is a file: what was not journaled is processed again on resume
        _close_helpers(probe, dispatcher, endpoint, db, backups)
        click.echo(f"\ngenesis: {exc}; trading stopped so that nothing goes unrecorded. The journal keeps "
                   "everything written before: fix the cause and run the same command to resume", err=True)
        sys.exit(1)
    _close_helpers(probe, dispatcher, endpoint, db, backups)
    click.echo("")
    click.echo(format_report(report))


def _notifier(root, result, db: str | None = None):
    """The started dispatcher of genesis.yaml's channels and the engine's notify callback
    that queues each notification for its routed channels."""
    from genesis.notify.channels import Message  # noqa: PLC0415
    from genesis.notify.dispatcher import dispatcher_for  # noqa: PLC0415

    dispatcher = dispatcher_for(result.files.settings.data["notifications"], Path.cwd(), db).start()

    def notify(note):
        dispatcher.submit(Message.of(note), note.channels)

    return dispatcher, notify


def _health_probe(result, db: str, watch):
    """The health probe of genesis.yaml `health_probe` on the journal `db` (started by the
    first status tick, once the journal is open), reading the run loop's `watch` (and
    its journal's slowest write); None when switched off."""
    from genesis.observe.health import health_probe_for  # noqa: PLC0415

    return health_probe_for(result.files.settings.data, db, Path.cwd(), watch)


def _backup_schedule(result, db: str):
    """The scheduled backups of genesis.yaml `backup` on the journal `db` (started by the
    first status tick, once the journal is open); None when switched off."""
    from genesis.backup import schedule_for  # noqa: PLC0415

    return schedule_for(result.files.settings.data, db, Path.cwd(), say=lambda t: click.echo("\n" + t, err=True))


def _close_helpers(probe, dispatcher, endpoint, db: str | None = None, backups=None) -> None:
    """Stop what runs beside the engine (those given); with the journal `db`, drop the
    readings they queued that the engine did not apply: a later run must not take a
    stale reading as new."""
    if backups is not None:
        backups.close()   # waits for a backup under way
    if probe is not None:
        probe.close()
    if dispatcher is not None:
        _close_notifier(dispatcher)
    if endpoint is not None:
        endpoint.close()
    if db is not None:
        from genesis.engine.journal import Journal  # noqa: PLC0415
        from genesis.engine.runner import MEASUREMENT_KINDS  # noqa: PLC0415

        try:
            journal = Journal(db, create=False)
        except Exception:   # noqa: BLE001 - a journal that cannot be opened holds nothing queued by this run
            return
        try:
            journal.drop_queued(MEASUREMENT_KINDS, "queued as the run stopped")
        except Exception as exc:   # noqa: BLE001 - at exit: say it, never a traceback
            click.echo(f"genesis: readings queued at exit were left in the journal ({type(exc).__name__})", err=True)
        finally:
            journal.close()


def _stop_on_signals() -> list[int]:
    """Make Ctrl-C (SIGINT) and a service manager's stop (SIGTERM, `docker stop`) both
    end a paper run cleanly, even when started with SIGINT ignored (a background job of a
    script); returns a list that receives the signal's number (SIGINT until one comes).
    Once one has come, more are ignored until the journal is saved (the cleanup is bounded)."""
    import signal  # noqa: PLC0415

    received = [int(signal.SIGINT)]

    def stop(signum, _frame):
        received[0] = signum
        for each in (signal.SIGINT, signal.SIGTERM):   # a second one must not cut the save short
            signal.signal(each, signal.SIG_IGN)
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    return received


def _metrics_endpoint(result, watch=None):
    """The Prometheus endpoint of genesis.yaml `metrics_endpoint` (with the run loop's
    `watch`), serving; None when switched off or when its port is taken (said once,
    trading goes on)."""
    from genesis.observe.prometheus import MetricsEndpoint  # noqa: PLC0415

    where = result.files.settings.data["metrics_endpoint"]
    if where["port"] is None:
        return None
    endpoint = MetricsEndpoint(watch)
    try:
        endpoint.serve(where["host"], where["port"])
    except OSError as exc:
        click.echo(f"genesis: no metrics endpoint: {where['host']}:{where['port']} is not free "
                   f"({exc.strerror or exc}); set metrics_endpoint.port in genesis.yaml", err=True)
        return None
    click.echo(f"metrics on http://{where['host']}:{endpoint.port}/metrics")
    return endpoint


def _status_with(endpoint, dispatcher, probe=None, backups=None):
    """The status-line callback, also starting the health probe and the backup schedule
    (the journal is open by the first tick) and bringing the metrics endpoint up to date."""
    def status(engine, catching_up):
        if probe is not None:
            probe.start()   # idempotent
        if backups is not None:
            backups.start()   # idempotent
        _status_line(engine, catching_up)
        if endpoint is not None:
            endpoint.update(engine, dispatcher, probe)

    return status


def _close_notifier(dispatcher) -> None:
    """Deliver what is queued, then say what could not be delivered."""
    if not dispatcher.close(timeout_s=15.0):
        click.echo("genesis: some notifications were still being delivered at exit", err=True)
    for failure in dispatcher.failures:
        where = f"; sent to {failure.fallback} instead" if failure.fallback else ""
        click.echo(f"genesis: notification from {failure.rule or '?'} not delivered: {failure.error} "
                   f"(after {failure.attempts} attempt{'s' if failure.attempts != 1 else ''}){where}", err=True)


def _run_live(tier, db, config, rest_url, ws_url, confirm, dry_run: bool = False) -> None:
    """`genesis run --mode live`, or with `dry_run` `--mode dry-run`: the same session on
    the exchange's market data with orders filled on paper, needing no keys and no
    confirmation (genesis/live/dryrun.py)."""
    from genesis.engine.journal import JournalError  # noqa: PLC0415
    from genesis.live.credentials import MissingCredentials, from_environment  # noqa: PLC0415
    from genesis.live.launch import LaunchRefused, check_confirmation, endpoints, run_live  # noqa: PLC0415

    root, result = _load_config(config)
    tier = _tier(result, tier)
    settings = result.files.settings.data
    exchange = settings["exchange"]
    env_names = {"GENESIS_API_KEY": exchange["api_key_env"], "GENESIS_API_SECRET": exchange["api_secret_env"]}
    rest, ws = endpoints(settings, rest_url, ws_url)
    creds = None   # a dry run reads no keys: market data is public
    if not dry_run:
        try:
            creds = from_environment({k: os.environ.get(v, "") for k, v in env_names.items()})
        except MissingCredentials:
            missing = [v for k, v in env_names.items() if not os.environ.get(v, "").strip()]
            click.echo(f"genesis: live mode needs {' and '.join(missing)} in the environment (the API key pair); "
                       "nothing was started", err=True)
            sys.exit(2)
        ask = (lambda text: click.prompt(text, default="", show_default=False)) if sys.stdin.isatty() else None
        try:
            check_confirmation(confirm, rest, ask)
        except LaunchRefused as exc:
            click.echo(f"genesis: {exc}", err=True)
            sys.exit(2)
    db = journal_url(settings, db)

    dispatcher, notify = _notifier(root, result, db)
    if dry_run:
        click.echo(f"dry run on tier {tier}: market data from {ws}, orders filled on paper (none is sent); "
                   "Ctrl-C stops (the same command resumes)")
    else:
        click.echo(f"live trading on tier {tier} against {rest}; Ctrl-C stops (the same command resumes)")
    from genesis.observe.loopwatch import LoopWatch  # noqa: PLC0415

    watch = LoopWatch()
    endpoint = _metrics_endpoint(result, watch)
    probe = _health_probe(result, db, watch)   # the live session tells the watch its journal
    backups = _backup_schedule(result, db)
    try:
        stopped_by = run_live(root, result, tier, db, creds, rest, ws, say=lambda t: click.echo("\n" + t),
                 status=_status_with(endpoint, dispatcher, probe, backups), notify=notify, watch=watch,
                 dry_run=dry_run)
    except LaunchRefused as exc:
        click.echo(f"\ngenesis: {exc}", err=True)
        sys.exit(1)
    except JournalError as exc:
        click.echo(f"\ngenesis: {exc}", err=True)
        sys.exit(1)
    finally:
        _close_helpers(probe, dispatcher, endpoint, db, backups)
    click.echo("\nstopped; the journal and the input log are saved: run the same command to resume")
    if stopped_by == 15:   # SIGTERM, a service manager's stop: 128 + 15, as a shell reports it
        sys.exit(128 + stopped_by)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("run_args", nargs=-1, type=click.UNPROCESSED)
def supervise(run_args) -> None:
    """Run `genesis run RUN_ARGS` and start it again when it ends unexpectedly (a crash, a
    kill), with backoff; give up and page when it keeps crashing (genesis.yaml
    `supervisor`). Each restart reaches the engine as an engine_restart event. Ctrl-C or
    SIGTERM stops the engine cleanly and ends supervising."""
    import signal  # noqa: PLC0415

    from genesis.supervise import Policy, Supervisor  # noqa: PLC0415

    config, db = _option(run_args, "--config"), _option(run_args, "--db")
    root, result = _load_config(config)
    settings = result.files.settings.data
    db = journal_url(settings, db)
    supervisor = Supervisor([sys.executable, "-m", "genesis", "run", *run_args], Policy.of(settings["supervisor"]),
                            _restart_recorder(db), _pager(result), say=click.echo)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda n, _frame: supervisor.stop(n))
    sys.exit(supervisor.run())


def _option(args, name: str) -> str | None:
    """The value of option `name` among command-line `args` (`--name V` or `--name=V`)."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _restart_recorder(db: str):
    """Queue an engine_restart observation in the journal `db`, for the restarted engine."""
    def record(exit_code: int) -> None:
        from genesis.engine.journal import Journal  # noqa: PLC0415

        journal = Journal(db, create=False)
        try:
            journal.queue_command("observe", {"event": "engine_restart", "fields": {"exit_code": exit_code}})
        finally:
            journal.close()
    return record


def _pager(result):
    """Send a text to the channels alerts.yaml routes critical messages to; raises when one failed."""
    def page(text: str) -> None:
        from genesis.notify.channels import Message  # noqa: PLC0415
        from genesis.notify.dispatcher import dispatcher_for  # noqa: PLC0415

        dispatcher = dispatcher_for(result.files.settings.data["notifications"], Path.cwd())
        channels = [c for c in result.files.routing().get("critical", []) if c in dispatcher.channels]
        failures = dispatcher.deliver(Message(int(time.time() * 1000), "critical", "supervisor", text), channels)
        if failures:
            raise RuntimeError("; ".join(f.error for f in failures))
    return page


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--tier", help="Tier (default: genesis.yaml `tier`).")
@click.option("--db", default="sqlite://", show_default=True, help="Journal URL (default: in memory).")
@click.option("--config", "config", metavar="DIR", help="Configuration folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--commands", "script", type=click.Path(exists=True, dir_okay=False),
              help="YAML of scripted operator commands at event-time offsets (scenarios).")
@click.option("--notify", "send_notifications", is_flag=True,
              help="Deliver the replay's notifications to their channels (by default nothing is sent).")
def replay(paths, tier, db, config, as_json, script, send_notifications) -> None:
    """Run recorded feed files through the same pipeline as fast as possible and report."""
    import json  # noqa: PLC0415

    from rich.progress import Progress  # noqa: PLC0415

    from genesis.engine.report import format_report  # noqa: PLC0415
    from genesis.engine.runner import replay as replay_feed  # noqa: PLC0415

    root, result = _load_config(config)
    tier = _tier(result, tier)
    feed = _open_feed(paths)
    dispatcher, notify = _notifier(root, result) if send_notifications else (None, None)
    session = _session(root, result, tier, feed, db, "replay", notify, script=script)
    session.writes_files = False   # a replay never changes the configuration folder
    if as_json or not sys.stderr.isatty():
        report = replay_feed(session)
    else:
        with Progress(transient=True) as bar:
            task = bar.add_task("replaying", total=None)
            report = replay_feed(session, on_progress=lambda n: bar.update(task, completed=n))
    if session.journal is not None:
        session.journal.close()
    if dispatcher is not None:
        _close_notifier(dispatcher)
    for issue in feed.issues[:20]:
        click.echo(f"{issue.source}:{issue.line}: {issue.problem}", err=True)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


@cli.command()
@click.option("--db", help="Journal URL (default: genesis.yaml storage.url).")
@click.option("--config", "config", metavar="DIR", help="Configuration folder.")
@click.option("--alive", is_flag=True, help="Only say whether an engine is running on this journal (a heartbeat "
              "within 3 s): exit 0 if so, 1 if not. For health checks (the Docker image's HEALTHCHECK).")
def status(db, config, alive) -> None:
    """Show tier, equity, drawdown, trading state, locks, open orders and positions from the journal."""
    from genesis.engine.journal import JournalError  # noqa: PLC0415
    from genesis.engine.status import read_status  # noqa: PLC0415

    if db is None:
        _, result = _load_config(config)
        db = journal_url(result.files.settings.data)
    if alive:
        _say_alive(db)
    try:
        click.echo(read_status(db))
    except JournalError as exc:
        click.echo(f"genesis: {exc}", err=True)
        sys.exit(1)


def _say_alive(db: str) -> None:
    """`genesis status --alive`: one line, and exit 0 when an engine beat on the journal
    `db` within the last 3 s (as the operator commands judge it), else exit 1."""
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

    from genesis.engine.journal import Journal, JournalError, _describe  # noqa: PLC0415

    if db.startswith("sqlite:///") and not os.path.exists(db[len("sqlite:///"):]):
        click.echo(f"not running: no journal at {db}")
        sys.exit(1)
    try:
        journal = Journal(db, create=False)   # never write into the journal it checks
        try:
            beat = journal.last_beat()
        finally:
            journal.engine.dispose()
    except JournalError as exc:
        click.echo(f"not running: {exc}")
        sys.exit(1)
    except SQLAlchemyError as exc:
        click.echo(f"not running: {_describe(exc, db)}")
        sys.exit(1)
    age_s = time.time() - beat / 1000
    if beat and age_s < 3.0:
        click.echo(f"running: last heartbeat {max(age_s, 0.0):.1f} s ago")
        sys.exit(0)
    click.echo("not running: " + (f"last heartbeat {age_s:.0f} s ago" if beat else "no heartbeat in this journal"))
    sys.exit(1)


def _send_command(db: str | None, config: str | None, kind: str, payload: dict) -> None:
    """Queue a command for the running engine; wait briefly for its answer."""
    import time  # noqa: PLC0415

    from genesis.engine.journal import Journal, JournalError  # noqa: PLC0415

    if db is None:
        _, result = _load_config(config)
        db = journal_url(result.files.settings.data)
    try:
        journal = Journal(db)
        command_id = journal.queue_command(kind, payload)
        alive = time.time() * 1000 - journal.last_beat() < 3000
        if not alive:
            click.echo(f"queued (#{command_id}): no engine is running on this journal; it applies when "
                       "`genesis run` next starts")
            return
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            row = journal.command(command_id)
            if row.status != "queued":
                click.echo(f"{row.status}: {row.result}")
                sys.exit(0 if row.status == "applied" else 1)
            time.sleep(0.1)
        click.echo(f"queued (#{command_id}): the engine has not answered yet; it applies the command in order")
    except JournalError as exc:
        click.echo(f"genesis: {exc}", err=True)
        sys.exit(1)
    finally:
        if "journal" in locals():
            journal.engine.dispose()


_DB = click.option("--db", help="Journal URL of the engine (default: genesis.yaml storage.url).")
_CONFIG = click.option("--config", "config", metavar="DIR", help="Configuration folder.")


@cli.command()
@click.argument("side", type=click.Choice(["buy", "sell"]))
@click.argument("symbol")
@click.argument("notional_usd", type=click.FloatRange(min=0, min_open=True))
@click.option("--reason", default="", help="Why: required while a rule asks for a written reason (tilt level 2).")
@click.option("--limit", type=click.FloatRange(min=0, min_open=True),
              help="Rest a limit order at this price (quote currency) instead of a market order.")
@_DB
@_CONFIG
def order(side, symbol, notional_usd, reason, limit, db, config) -> None:
    """Place a manual order through every pre-trade rule (e.g. `genesis order buy BTCUSDT 40`,
    or `--limit 61000` for a resting limit order)."""
    payload = {"side": side, "symbol": symbol.upper(), "notional_usd": notional_usd, "reason": reason}
    if limit:
        payload["limit"] = limit
    _send_command(db, config, "order", payload)


@cli.command()
@click.argument("client_id")
@click.argument("price", type=click.FloatRange(min=0, min_open=True))
@_DB
@_CONFIG
def amend(client_id, price, db, config) -> None:
    """Move a resting limit order to a new price (e.g. `genesis amend g12 61050`); the
    tilt monitor counts amendments of one order (bargaining)."""
    _send_command(db, config, "amend", {"client_id": client_id, "price": price})


@cli.command()
@click.argument("client_id")
@_DB
@_CONFIG
def cancel(client_id, db, config) -> None:
    """Cancel an open order by its client id."""
    _send_command(db, config, "cancel", {"client_id": client_id})


@cli.command()
@click.option("--phrase", help="The confirmation phrase (asked for when not given).")
@_DB
@_CONFIG
def override(phrase, db, config) -> None:
    """Emergency override: lift halts and locks after typing the confirmation phrase.
    Refused during the cooldown; every attempt is logged and counts toward demotion."""
    if phrase is None:
        phrase = click.prompt("Type the confirmation phrase from genesis.yaml (safety.override_phrase)")
    _send_command(db, config, "override", {"phrase": phrase})


@cli.command()
@click.option("--phrase", help="The phrase the halt's rule asks for (asked for when not given).")
@click.option("--rule", "rule_id", metavar="ID", help="The rule whose halt to reset, when several wait for one.")
@_DB
@_CONFIG
def reset(phrase, rule_id, db, config) -> None:
    """Typed manual reset: lift the halt of the rule whose confirmation phrase you type
    (e.g. Hunter's drawdown halt). Only that halt; not the emergency override."""
    if phrase is None:
        phrase = click.prompt("Type the phrase the halt asks for (its rule's require: phrase; "
                              "`genesis tier` shows it)")
    payload = {"phrase": phrase}
    if rule_id:
        payload["rule"] = rule_id
    _send_command(db, config, "reset", payload)


@cli.command()
@click.argument("text", required=False)
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False), help="Read the reflection from a file.")
@_DB
@_CONFIG
def reflect(text, path, db, config) -> None:
    """Write the reflection a tier change asks for; a promotion waiting for it then happens."""
    if path:
        text = Path(path).read_text(encoding="utf-8")
    if not text or not text.strip():
        raise click.UsageError("give the reflection as TEXT or --file")
    _send_command(db, config, "reflect", {"text": text})


@cli.command("journal")
@click.argument("text", required=False)
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False), help="Read the entry from a file.")
@click.option("--life-event", "life_days", type=click.FloatRange(min=0, min_open=True),
              help="Record a life event lowering tilt sensitivity for this many days.")
@_DB
@_CONFIG
def journal_cmd(text, path, life_days, db, config) -> None:
    """Write a journal entry (a level-3 tilt lockout ends only after one long enough)."""
    if life_days is not None:
        _send_command(db, config, "life", {"days": life_days})
        return
    if path:
        text = Path(path).read_text(encoding="utf-8")
    if not text:
        raise click.UsageError("give the entry as TEXT or --file")
    _send_command(db, config, "journal", {"text": text})


@cli.command()
@click.option("--day", metavar="YYYY-MM-DD", help="The UTC day (default: the latest day reported).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_DB
@_CONFIG
def report(day, as_json, db, config) -> None:
    """Print the daily report of a closed UTC day from the journal: P&L, trades, win rate,
    fees, drawdown, rule firings, time in each state, promotion progress."""
    from genesis.engine.dayreport import format_day_report  # noqa: PLC0415
    from genesis.engine.journal import Journal, JournalError  # noqa: PLC0415

    if day is not None:
        try:
            datetime.strptime(day, "%Y-%m-%d")
        except ValueError:
            raise click.BadParameter(f"{day!r} is not a date: write YYYY-MM-DD, e.g. 2024-08-08",
                                     param_hint="--day") from None
    if db is None:
        _, result = _load_config(config)
        db = journal_url(result.files.settings.data)
    try:
        journal = Journal(db)
        rows = journal.entries_of_kind("daily_report")
        journal.close()
    except JournalError as exc:
        click.echo(f"genesis: {exc}", err=True)
        sys.exit(1)
    reports = {}   # day -> its latest report (a later run's wins)
    for row in rows:
        data = json.loads(row.data) if isinstance(row.data, str) else row.data
        reports[data["day"]] = data
    if not reports:
        click.echo("no daily report in the journal yet: one is written as each UTC day closes", err=True)
        sys.exit(1)
    chosen = reports.get(day or max(reports))
    if chosen is None:
        days = sorted(reports)
        shown = ", ".join(days) if len(days) <= 10 else f"{days[0]} to {days[-1]} ({len(days)} days)"
        click.echo(f"no daily report for {day} in the journal (days reported: {shown})", err=True)
        sys.exit(1)
    click.echo(json.dumps(chosen, indent=2) if as_json else format_day_report(chosen))


@cli.command()
@click.argument("rule", required=False)
@click.argument("duration", required=False)
@click.option("--reason", help="Why (required): journaled with the silence.")
@click.option("--list", "list_them", is_flag=True, help="List the silences and when each ends.")
@click.option("--end", is_flag=True, help="End RULE's silence now.")
@_DB
@_CONFIG
def silence(rule, duration, reason, list_them, end, db, config) -> None:
    """Silence RULE's notifications for DURATION of event time (e.g. `genesis silence
    memory_warning 2h --reason "backup running"`). They are still journaled, not delivered."""
    if list_them:
        _list_silences(db, config)
        return
    if not rule:
        raise click.UsageError("name the RULE to silence (or --list)")
    if end:
        _send_command(db, config, "unsilence", {"rule": rule})
        return
    if not duration or not reason:
        raise click.UsageError("give a DURATION (e.g. 2h) and --reason TEXT")
    _send_command(db, config, "silence", {"rule": rule, "duration": duration, "reason": reason})


def _list_silences(db, config) -> None:
    from genesis.durations import parse_duration  # noqa: PLC0415
    from genesis.engine.journal import Journal, JournalError  # noqa: PLC0415

    if db is None:
        _, result = _load_config(config)
        db = journal_url(result.files.settings.data)
    try:
        journal = Journal(db)
        rows = journal.entries()
    except JournalError as exc:
        click.echo(f"genesis: {exc}", err=True)
        sys.exit(1)
    active: dict = {}
    now = 0
    for row in rows:
        now = max(now, row.ts)
        data = json.loads(row.data) if isinstance(row.data, str) else (row.data or {})
        if row.kind != "operator" or data.get("status") != "applied":
            continue
        payload = data.get("payload", {})
        if row.rule == "silence":
            active[payload["rule"]] = (row.ts + int(parse_duration(payload["duration"]) * 1000), payload["reason"])
        elif row.rule == "unsilence":
            active.pop(payload.get("rule"), None)
    shown = {r: v for r, v in active.items() if v[0] > now}
    if not shown:
        click.echo("no silences")
        return
    for r, (until, why) in sorted(shown.items()):
        when = datetime.fromtimestamp(until / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        click.echo(f"{r}: until {when} (event time): {why}")


@cli.command("set")
@click.argument("key")
@click.argument("value")
@_DB
@_CONFIG
def set_value(key, value, db, config) -> None:
    """Change a tier number, e.g. `genesis set tier.limits.daily_loss_usd 20`.

    Validated at once; written into the tier file after safety.risk_edit_delay (1 h)
    of market time, then applied by hot reload. Every attempt counts as a risk edit."""
    _send_command(db, config, "set", {"key": key, "value": value})


@cli.command()
@_DB
@_CONFIG
def tier(db, config) -> None:
    """Show the current tier and every promotion gate with its current value, passed or
    not, and what remains (rebuilt from the journal)."""
    from genesis.engine.journal import JournalError  # noqa: PLC0415
    from genesis.engine.tierview import format_tier, rebuild  # noqa: PLC0415

    if db is None:
        _, result = _load_config(config)
        db = journal_url(result.files.settings.data)
    if db.startswith("sqlite:///") and not Path(db[len("sqlite:///"):]).exists():
        click.echo(f"genesis: no journal at {db}: nothing has run yet (start with `genesis run`)", err=True)
        sys.exit(1)
    try:
        engine, info = rebuild(db)
    except JournalError as exc:
        click.echo(f"genesis: {exc}", err=True)
        sys.exit(1)
    click.echo(format_tier(engine, info))


@cli.group()
def notify() -> None:
    """Notification channels (genesis.yaml `notifications`)."""


@notify.command("test")
@click.argument("channel", required=False)
@click.option("--config", type=click.Path(file_okay=False), help="Configuration folder (default: here).")
def notify_test(channel: str | None, config: str | None) -> None:
    """Send a test message to CHANNEL (default: every channel) and say what happened.
    Exits 1 when a channel could not take it."""
    from genesis.notify.channels import Message, channels_from  # noqa: PLC0415
    from genesis.notify.dispatcher import Dispatcher  # noqa: PLC0415

    root, result = _load_config(config)
    channels = channels_from(result.files.settings.data["notifications"], Path.cwd())
    if channel is not None and channel not in channels:
        click.echo(f"genesis: unknown channel '{channel}' (genesis.yaml defines: {', '.join(channels)})", err=True)
        sys.exit(2)
    names = [channel] if channel else list(channels)
    dispatcher = Dispatcher({n: channels[n] for n in names})
    failed = False
    for name in names:
        message = Message(int(time.time() * 1000), "info", "notify_test",
                          f"Test message from genesis to channel {name}.", status="test")
        for missing in channels[name].missing_env():
            click.echo(f"{name}: environment variable {missing} is not set")
        failures = dispatcher.deliver(message, [name])
        if failures:
            failed = True
            click.echo(f"{name} ({channels[name].kind}): not delivered after {failures[0].attempts} "
                       f"attempt{'s' if failures[0].attempts != 1 else ''}: {failures[0].error}")
        else:
            click.echo(f"{name} ({channels[name].kind}): delivered")
    sys.exit(1 if failed else 0)


@cli.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--config", "config", metavar="DIR", help="Configuration folder whose rules are tested.")
def test_rules(paths, config) -> None:
    """Run rule unit tests (YAML cases; default: rule_tests/*.yaml of the configuration).

    Prints each failing case with file:line, what was expected and what happened,
    then 'N passed, M failed'. Exits 0 when all pass, 1 otherwise."""
    from genesis.config.problems import format_text  # noqa: PLC0415
    from genesis.ruletest import run_file  # noqa: PLC0415

    root, result = _load_config(config)
    files = []
    for p in paths or [root / "rule_tests"]:
        p = Path(p)
        files += sorted(p.glob("*.yaml")) if p.is_dir() else [p]
    if not files:
        raise click.UsageError("no rule test files found (give PATHs or add rule_tests/*.yaml)")
    passed = failed = 0
    for path in files:
        problems, results = run_file(path, result)
        if problems:
            click.echo(format_text(problems))
            failed += 1
        for case in results:
            if case.passed:
                passed += 1
            else:
                failed += 1
                click.echo(f"FAIL {case.file}:{case.line}: {case.name}")
                for line in case.failures:
                    click.echo(f"  {line}")
    click.echo(f"{passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 else 1)


@cli.command()
@click.option("--to", "folder", metavar="FOLDER", help="Write the backup into FOLDER (default: genesis.yaml "
              "backup.folder, beside the journal).")
@click.option("--list", "list_them", is_flag=True, help="List the backups in the backup folder, oldest first.")
@_DB
@_CONFIG
def backup(folder, list_them, db, config) -> None:
    """Back up the journal and the live input logs now, also while an engine runs: one
    consistent copy, written under a temporary name and renamed when complete. Prints
    where it went. A failure is queued as a backup_failure event for the engine."""
    from genesis.backup import (BackupError, backup_folder, describe, list_backups, queue_failure,  # noqa: PLC0415
                                take_backup)

    _, result = _load_config(config)
    settings = result.files.settings.data
    db = journal_url(settings, db)
    where = backup_folder(folder or settings["backup"]["folder"], db)
    if list_them:
        found = list_backups(where)
        if not found:
            click.echo(f"no backups in {where}")
            return
        for each in found:
            click.echo(describe(each))
        return
    try:
        made = take_backup(db, where, "manual")
    except BackupError as exc:
        why_not = queue_failure(db, "manual", str(exc))
        click.echo(f"genesis: backup failed: {exc}" + (f" (not reported to the engine: {why_not})" if why_not
                                                        else " (queued for the engine as backup_failure)"), err=True)
        sys.exit(1)
    manifest = made.manifest()
    runs = manifest["journal"].get("runs", [])
    last = f"; run {runs[-1]['id']} up to entry {runs[-1]['last_seq']}" if runs else ""
    logs = len(manifest["input_logs"]["files"])
    click.echo(f"backed up {manifest['journal']['from']} and {logs} input-log file{'s' if logs != 1 else ''} "
               f"to {made.path}{last}")


@cli.command()
@click.argument("backup_ref", metavar="BACKUP")
@click.option("--force", is_flag=True, help="Replace an existing journal and input logs (saved first as a "
              "pre-restore backup).")
@_DB
@_CONFIG
def restore(backup_ref, force, db, config) -> None:
    """Restore BACKUP (a backup folder, its name in the backup folder, or `latest`) into
    the journal genesis.yaml or --db names, with its input logs beside it; then the same
    `genesis run` resumes from it. Refuses to replace an existing journal without --force."""
    from genesis.backup import BackupError, backup_folder, find_backup, restore as restore_backup  # noqa: PLC0415

    _, result = _load_config(config)
    settings = result.files.settings.data
    db = journal_url(settings, db)
    where = backup_folder(settings["backup"]["folder"], db)
    try:
        chosen = find_backup(backup_ref, where)
        done = restore_backup(chosen, db, where, force=force)
    except BackupError as exc:
        click.echo(f"genesis: {exc}", err=True)
        sys.exit(1)
    if done.saved is not None:
        click.echo(f"the journal it replaces is saved as {done.saved.path}")
    unfinished = [r for r in done.runs if not r["finished"]]
    resume = (f"; run {unfinished[-1]['id']} ({unfinished[-1]['mode']}, tier {unfinished[-1]['tier']}) was under way "
              f"at entry {unfinished[-1]['last_seq']}: the same `genesis run` command resumes it") if unfinished else ""
    logs = (f"{done.log_files} input-log file{'s' if done.log_files != 1 else ''} into {done.log_folder}"
            if done.log_files else "no input logs")
    click.echo(f"restored {chosen.name} (taken {chosen.taken:%Y-%m-%d %H:%M:%S} UTC) into {done.journal}, "
               f"{logs}{resume}")


def _register_simulate() -> None:
    from genesis.simulator.cli import simulate  # noqa: PLC0415

    cli.add_command(simulate, "simulate")


_register_simulate()


def main() -> None:
    """Entry point of the `genesis` console script."""
    try:
        cli.main(prog_name="genesis", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last guard: one line, never a traceback
        if os.environ.get("GENESIS_DEBUG"):
            raise
        click.echo(f"genesis: internal error: {type(exc).__name__}: {exc} (set GENESIS_DEBUG=1 for details)",
                   err=True)
        sys.exit(3)
