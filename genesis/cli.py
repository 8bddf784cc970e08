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
from genesis.lazy_commands import LazyGroup
from genesis.paths import SETTINGS_FILE, default_config_dir


def _config_dir(value: str | None) -> Path:
    path = Path(value) if value else default_config_dir()
    if not path.is_dir():
        raise click.UsageError(f"--config {path}: no such folder")
    if not (path / SETTINGS_FILE).is_file() and value is None:
        raise click.UsageError(f"no {SETTINGS_FILE} in {path}; name a configuration folder with --config DIR")
    return path


def _print_version(ctx: click.Context, _param, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from genesis.compiled import summary
    click.echo(f"genesis, version {__version__}; engine modules: {summary()}")
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version, and whether the engine's modules run compiled, and exit.")
def cli() -> None:
    """Genesis: trading rules engine for one disciplined Binance spot trader."""


@cli.command()
@click.option("--config", "config", metavar="DIR", help="Configuration folder (default: $GENESIS_CONFIG, the "
              "current folder if it holds genesis.yaml, else the bundled defaults).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Output format; json is for CI.")
def validate(config: str | None, fmt: str) -> None:
    """Check every configuration file and compile the rules.

    Checks YAML, schemas, expressions, references and ladders, and prints each
    problem as file:line:col: message. Exits 0 when valid, 1 when not, 2 on usage
    errors.

    \b
    Examples:
      genesis validate
      genesis validate --config ~/genesis-config --format json
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
        from genesis.words import counted  # noqa: PLC0415

        click.echo(f"OK: {counted(files, 'file')}, {counted(len(result.tiers), 'tier')}, "
                   f"{counted(len(result.metrics), 'metric')}, {counted(len(result.rules), 'rule')} compiled for "
                   f"every tier in {elapsed:.2f} s ({root})")
    sys.exit(0 if result.ok else 1)


@cli.command()
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@click.option("--strategies", is_flag=True,
              help="Only the strategy parameter and execution policy tables (as in the README).")
def docs(output: str | None, strategies: bool) -> None:
    """Print the configuration reference as Markdown.

    Every key of every file, with its type, unit and default.

    \b
    Examples:
      genesis docs -o docs/reference.md
      genesis docs --strategies        # the README's strategy parameter tables
    """
    from genesis.reference import execution_parameters, render_reference, strategy_parameters  # noqa: PLC0415

    text = strategy_parameters() + "\n" + execution_parameters() if strategies else render_reference()
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


def _load_config(config: str | None, option: str = "--config"):
    from genesis.config.checks import check_config  # noqa: PLC0415
    from genesis.config.problems import format_text  # noqa: PLC0415

    root = _config_dir(config)
    result = check_config(root)
    if not result.ok:
        click.echo(format_text(result.problems), err=True)
        if option == "--config":
            click.echo("genesis: the configuration has problems; fix them (genesis validate) before trading", err=True)
        else:   # another folder than the one traded (replay --compare): name it
            click.echo(f"genesis: the {option} configuration in {root} has problems; fix them "
                       f"(genesis validate --config {root})", err=True)
        sys.exit(1)
    return root, result


def _traded_symbols(config: str | None) -> tuple:
    """The symbols of the configuration (genesis.yaml `symbols`), or none when it does not validate."""
    from genesis.config.checks import check_config  # noqa: PLC0415

    result = check_config(_config_dir(config))
    return tuple(result.files.settings.data["symbols"]) if result.ok else ()


def journal_url(settings: dict, db: str | None = None) -> str:
    """`--db`, else storage.url, with the password from storage.password_env (see
    genesis.engine.journal.journal_url; imported here only when a command needs it).
    A URL that names no database is a clear error (exit 1)."""
    from genesis.engine.journal import journal_url as url, url_problem  # noqa: PLC0415

    problem = url_problem(db or settings["storage"]["url"])
    if problem:
        click.echo(f"genesis: {'--db' if db else 'storage.url in genesis.yaml'}: {problem}", err=True)
        sys.exit(1)
    return url(settings, db)


def _checked_db(_ctx, _param, value: str | None) -> str | None:
    """The --db option: a database URL, checked before anything opens it (exit 1 with
    the reason, as for a journal that cannot be opened)."""
    from genesis.engine.journal import url_problem  # noqa: PLC0415

    problem = url_problem(value) if value is not None else None
    if problem:
        click.echo(f"genesis: --db: {problem}", err=True)
        sys.exit(1)
    return value


def _tier(result, tier: str | None) -> str:
    tier = tier or result.files.settings.data["tier"]
    if tier not in result.tiers:
        raise click.BadParameter(f"unknown tier '{tier}' (known: {', '.join(sorted(result.tiers))})",
                                 param_hint="--tier")
    return tier


def _open_feed(paths, hint: str = "--feed"):
    """The feed of `paths` (the bundled sample when none); exit 1 when no file is in a
    format Genesis reads (empty, garbage, not gzip inside)."""
    from genesis.engine.feeds import open_feed, sample_paths  # noqa: PLC0415

    chosen = list(paths) or sample_paths()
    for p in chosen:
        if not Path(p).is_file():
            problem = "not a regular file" if Path(p).exists() else "no such file"
            raise click.BadParameter(f"{p}: {problem}", param_hint=hint)
    feed = open_feed(chosen)
    if all(fmt == "unknown" for fmt in feed.formats):
        _echo_feed_issues(feed)
        _no_usable_events(feed)
    return feed


def _script_problems(exc) -> None:
    """Say a --commands script's problems, each as file:line:col (as `genesis validate`
    reports them), and exit 1."""
    click.echo(str(exc), err=True)
    click.echo("genesis: the --commands script has problems; nothing was replayed (its format: "
               "docs/scenarios.md)", err=True)
    sys.exit(1)


def _checked_script(_ctx, _param, value: str | None) -> str | None:
    """The --commands option: the script is checked before anything else is loaded."""
    if value is not None:
        from genesis.engine.commandscript import ScriptError, read_script  # noqa: PLC0415

        try:
            read_script(Path(value))
        except ScriptError as exc:
            _script_problems(exc)
    return value


def _session(root, result, tier, feed, db, mode, notify=None, script=None):
    from genesis.engine.commandscript import ScriptError  # noqa: PLC0415
    from genesis.engine.journal import JournalError  # noqa: PLC0415
    from genesis.engine.runner import open_session  # noqa: PLC0415

    from genesis.engine.recovery import describe  # noqa: PLC0415

    try:
        session = open_session(root, result, tier, feed, db, mode, notify=notify, script_path=script)
        if describe(session.restored):
            click.echo(describe(session.restored), err=True)
        return session
    except ScriptError as exc:
        _script_problems(exc)
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


def _status_every(value: str) -> float:
    from genesis.durations import parse_duration  # noqa: PLC0415

    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--status-every") from None
    if seconds <= 0:
        raise click.BadParameter("must be above 0 (e.g. 30s)", param_hint="--status-every")
    return seconds


@cli.command()
@click.option("--tier", help="Tier to trade (default: genesis.yaml `tier`).")
@click.option("--feed", "feeds", multiple=True, type=click.Path(dir_okay=False),
              help="Recorded feed file(s) (capture or candles); default: the bundled sample. Repeatable.")
@click.option("--speed", default="1", show_default=True, help="Event time per wall time: 1 = real time, 10, or max.")
@click.option("--db", callback=_checked_db, help="Journal URL (default: genesis.yaml storage.url).")
@click.option("--config", "config", metavar="DIR", help="Configuration folder.")
@click.option("--mode", type=click.Choice(["paper", "dry-run", "live"]), default=None,
              help="paper: recorded data (default: genesis.yaml exchange.mode); dry-run: the exchange's live "
              "market data, orders filled on paper (no keys, nothing sent); live: real orders.")
@click.option("--rest-url", help="Live and dry-run: exchange REST base URL (default: genesis.yaml "
              "exchange.rest_url, else https://api.binance.com).")
@click.option("--ws-url", help="Live and dry-run: websocket base URL (default: genesis.yaml exchange.ws_url, "
              "else wss://stream.binance.com:9443).")
@click.option("--confirm", help="Live: the word 'live', to start without the interactive question.")
@click.option("--status-every", default="30s", show_default=True, metavar="DURATION",
              help="When the output is not a terminal (a pipe, a log): one status line at most this often.")
def run(tier, feeds, speed, db, config, mode, rest_url, ws_url, confirm, status_every) -> None:
    """Paper-trade a feed, or live data, with a live status line.

    At real-time speed by default; Ctrl-C stops cleanly and the same command resumes
    from the journal. `--mode dry-run` paper-trades the exchange's live market data
    instead (no API keys; no order is ever sent). `--mode live` trades on the exchange
    with the keys in GENESIS_API_KEY / GENESIS_API_SECRET.

    \b
    Examples:
      genesis run --tier sniper                 # the bundled sample, real time
      genesis run --feed capture.gz --speed max
      genesis run --mode dry-run"""
    every_s = _status_every(status_every)
    if mode is None:
        mode = _load_config(config)[1].files.settings.data["exchange"]["mode"]
    if mode in ("live", "dry-run"):
        _run_live(tier, db, config, rest_url, ws_url, confirm, dry_run=mode == "dry-run", every_s=every_s)
        return
    from genesis.engine.journal import JournalError  # noqa: PLC0415
    from genesis.engine.report import format_report  # noqa: PLC0415
    from genesis.engine.runner import run as run_feed  # noqa: PLC0415
    from genesis.ui.runline import RunLine, summary  # noqa: PLC0415

    root, result = _load_config(config)
    tier = _tier(result, tier)
    pace = _speed(speed)
    feed = _open_feed(feeds)
    db = journal_url(result.files.settings.data, db)

    dispatcher, notify = _notifier(root, result, db)
    session = _session(root, result, tier, feed, db, "paper", notify)
    line = RunLine(progress=feed.progress, every_s=every_s)
    line.echo(("resuming" if session.resumed else "starting") + f" paper trading on tier {tier} "
              f"({', '.join(Path(p).name for p in feed.sources)}); Ctrl-C stops")
    from genesis.observe.loopwatch import LoopWatch  # noqa: PLC0415

    watch = LoopWatch()
    endpoint = _metrics_endpoint(result, watch)
    watch.slowest_write = session.journal.take_slowest_write_ms
    probe = _health_probe(result, db, watch)
    backups = _backup_schedule(result, db)
    stopped_by = _stop_on_signals()
    try:
        with line:
            report = run_feed(session, pace, root, status=_status_with(endpoint, dispatcher, probe, backups, line),
                              say=line.echo, watch=watch, waiting=line.waiting)
    except KeyboardInterrupt:
        from genesis.engine.runner import interrupted  # noqa: PLC0415

        _close_helpers(probe, None, endpoint, backups=backups)
        interrupted(session)
        _close_helpers(None, dispatcher, None, db)
        line.echo(summary(session.engine, session.pending_sets, session.config_files, finished=False))
        sys.exit(128 + stopped_by[0])
    except JournalError as exc:   # the feed is a file: what was not journaled is processed again on resume
        _close_helpers(probe, dispatcher, endpoint, db, backups)
        click.echo(f"genesis: {exc}; trading stopped so that nothing goes unrecorded. The journal keeps "
                   "everything written before: fix the cause and run the same command to resume", err=True)
        sys.exit(1)
    _close_helpers(probe, dispatcher, endpoint, db, backups)
    click.echo(format_report(report))
    line.echo(summary(session.engine, session.pending_sets, session.config_files, finished=True))


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

    return schedule_for(result.files.settings.data, db, Path.cwd(), say=lambda t: click.echo(t, err=True))


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


def _status_with(endpoint, dispatcher, probe=None, backups=None, line=None):
    """The status callback: the live `line` (a genesis.ui.runline.RunLine), also starting
    the health probe and the backup schedule (the journal is open by the first tick) and
    bringing the metrics endpoint up to date."""
    def status(engine, catching_up):
        if probe is not None:
            probe.start()   # idempotent
        if backups is not None:
            backups.start()   # idempotent
        if line is not None:
            line.status(engine, catching_up)
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


def _run_live(tier, db, config, rest_url, ws_url, confirm, dry_run: bool, every_s: float) -> None:
    """`genesis run --mode live`, or with `dry_run` `--mode dry-run`: the same session on
    the exchange's market data with orders filled on paper, needing no keys and no
    confirmation (genesis/live/dryrun.py). `every_s`: seconds between plain status lines."""
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
    from genesis.ui.runline import RunLine, summary  # noqa: PLC0415

    line = RunLine(source="dry run on live market data" if dry_run else "live market data", every_s=every_s)
    if dry_run:
        line.echo(f"dry run on tier {tier}: market data from {ws}, orders filled on paper (none is sent); "
                  "Ctrl-C stops (the same command resumes)")
    else:
        line.echo(f"live trading on tier {tier} against {rest}; Ctrl-C stops (the same command resumes)")
    from genesis.observe.loopwatch import LoopWatch  # noqa: PLC0415

    watch = LoopWatch()
    endpoint = _metrics_endpoint(result, watch)
    probe = _health_probe(result, db, watch)   # the live session tells the watch its journal
    backups = _backup_schedule(result, db)
    try:
        with line:
            stopped_by = run_live(root, result, tier, db, creds, rest, ws, say=line.echo,
                                  status=_status_with(endpoint, dispatcher, probe, backups, line), notify=notify,
                                  watch=watch, dry_run=dry_run)
    except LaunchRefused as exc:
        click.echo(f"genesis: {exc}", err=True)
        sys.exit(1)
    except JournalError as exc:
        click.echo(f"genesis: {exc}", err=True)
        sys.exit(1)
    finally:
        _close_helpers(probe, dispatcher, endpoint, db, backups)
    saved = "the journal and the input log are saved: run the same command to resume"
    if line.engine is None:   # stopped before the first status tick
        click.echo(f"stopped; {saved}")
    else:   # the live session keeps its pending `genesis set` edits to itself
        line.echo(summary(line.engine, None, None, finished=False, resume_hint=saved))
    if stopped_by == 15:   # SIGTERM, a service manager's stop: 128 + 15, as a shell reports it
        sys.exit(128 + stopped_by)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("run_args", nargs=-1, type=click.UNPROCESSED)
def supervise(run_args) -> None:
    """Run `genesis run` and start it again when it crashes.

    Runs `genesis run RUN_ARGS` and starts it again when it ends unexpectedly (a
    crash, a kill), with backoff; gives up and pages when it keeps crashing
    (genesis.yaml `supervisor`). Each restart reaches the engine as an
    engine_restart event. Ctrl-C or SIGTERM stops the engine cleanly and ends
    supervising.

    \b
    Example:
      genesis supervise --tier sniper --mode dry-run
    """
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
@click.option("--db", default="sqlite://", show_default=True, callback=_checked_db,
              help="Journal URL (default: in memory).")
@click.option("--config", "config", metavar="DIR", help="Configuration folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--commands", "script", type=click.Path(exists=True, dir_okay=False), callback=_checked_script,
              help="YAML of scripted operator commands at event-time offsets (docs/scenarios.md).")
@click.option("--notify", "send_notifications", is_flag=True,
              help="Deliver the replay's notifications to their channels (by default nothing is sent).")
@click.option("--compare", metavar="DIR", type=click.Path(exists=True, file_okay=False),
              help="What if: replay the same input under this configuration folder as well and show, side by "
              "side, what would have differed (docs/what-if.md).")
@click.option("--trades", "trades_csv", metavar="FILE.csv", type=click.Path(dir_okay=False),
              help="Write the trade list: one row per closed trade (columns in docs/reports.md).")
@click.option("--plot", metavar="FILE", type=click.Path(dir_okay=False),
              help="Draw equity and drawdown with the rule firings marked: FILE.html (a page with the chart "
              "and the tables, nothing loaded from the internet), FILE.png or FILE.svg.")
def replay(paths, tier, db, config, as_json, script, send_notifications, compare, trades_csv, plot) -> None:
    """Replay recorded feed files as fast as possible and report.

    The same pipeline as `genesis run`; the report gives the data range, P&L,
    drawdown, tables by pair, strategy and day (docs/reports.md).

    \b
    Examples:
      genesis replay                                # the bundled 3-minute sample
      genesis replay --commands scenario.yaml       # with operator commands
      genesis replay data/*.gz --plot report.html --trades trades.csv"""
    import json  # noqa: PLC0415

    from genesis.engine.report import format_report  # noqa: PLC0415
    from genesis.engine.runner import replay as replay_feed  # noqa: PLC0415
    from genesis.engine.runrecord import read_record  # noqa: PLC0415

    root, result = _load_config(config)
    _check_report_files(trades_csv, plot, compare)
    if compare is not None:
        if send_notifications or db != "sqlite://":
            raise click.UsageError("--compare replays both configurations in memory and sends nothing: "
                                   "leave out --db and --notify")
        return _what_if(paths, tier, root, result, compare, as_json, script)
    tier = _tier(result, tier)
    feed = _open_feed(paths, "PATHS")
    dispatcher, notify = _notifier(root, result) if send_notifications else (None, None)
    session = _session(root, result, tier, feed, db, "replay", notify, script=script)
    session.writes_files = False   # a replay never changes the configuration folder
    if as_json or not sys.stderr.isatty():
        report = replay_feed(session)
    else:
        from rich.progress import Progress  # noqa: PLC0415 - only a terminal shows the bar

        with Progress(transient=True) as bar:
            task = bar.add_task("replaying", total=None)
            report = replay_feed(session, on_progress=lambda n: bar.update(task, completed=n))
    record = read_record(session.engine) if trades_csv or plot else None   # before an in-memory journal goes
    if session.journal is not None:
        session.journal.close()
    if dispatcher is not None:
        _close_notifier(dispatcher)
    _echo_feed_issues(feed)
    if not feed.events:
        _no_usable_events(feed)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
    _write_report_files(report, record, session.engine, trades_csv, plot, as_json)


FEED_ISSUES_SHOWN = 20   # problem lines printed; the count of the rest follows


def _echo_feed_issues(feed) -> None:
    """The feed's problem lines on stderr (file:line: problem), the first FEED_ISSUES_SHOWN."""
    for issue in feed.issues[:FEED_ISSUES_SHOWN]:
        click.echo(f"{issue.source}:{issue.line}: {issue.problem}", err=True)
    if feed.issue_count > FEED_ISSUES_SHOWN:
        click.echo(f"... and {feed.issue_count - FEED_ISSUES_SHOWN:,} more", err=True)


def _no_usable_events(feed) -> None:
    """Exit 1: no file of the feed held an event that could be used."""
    names = ", ".join(p.name for p in feed.sources)
    click.echo(f"genesis: no usable events in {names}; nothing was run\n"
               "  (Genesis reads Binance websocket captures and candle files, gzip or not)", err=True)
    sys.exit(1)


def _check_report_files(trades_csv: str | None, plot: str | None, compare: str | None) -> None:
    """Refuse `--trades` / `--plot` paths that could not be written, before replaying."""
    if compare is not None and (trades_csv or plot):
        raise click.UsageError("--trades and --plot are for one replay; leave them out with --compare")
    if plot:
        from genesis.engine.chart import PLOT_SUFFIXES  # noqa: PLC0415 - only for --plot (matplotlib only to draw)

        if Path(plot).suffix.lower() not in PLOT_SUFFIXES:
            raise click.BadParameter(f"{plot}: name a file ending in .html (a page with the chart and the tables), "
                                     ".png or .svg", param_hint="--plot")
    for path, option in ((trades_csv, "--trades"), (plot, "--plot")):
        if path and not Path(path).resolve().parent.is_dir():
            raise click.BadParameter(f"{path}: no folder {Path(path).resolve().parent}", param_hint=option)


def _write_report_files(report: dict, record, engine, trades_csv: str | None, plot: str | None,
                        as_json: bool) -> None:
    """Write the trade list and the chart that --trades and --plot ask for, and say so."""
    done = []
    try:
        if trades_csv:
            from genesis.engine.runrecord import write_trades_csv  # noqa: PLC0415

            write_trades_csv(trades_csv, record.trades)
            done.append(f"trade list {trades_csv} ({len(record.trades):,} "
                        f"{'trade' if len(record.trades) == 1 else 'trades'})")
        if plot:
            from genesis.engine.chart import equity_curve, write_plot  # noqa: PLC0415 - loads matplotlib

            write_plot(plot, report, record, equity_curve(engine, report))
            done.append(f"chart {plot}")
    except OSError as exc:
        click.echo(f"genesis: could not write {exc.filename}: {exc.strerror}", err=True)
        sys.exit(1)
    if done:
        click.echo("wrote " + " and ".join(done), err=as_json)


def _what_if(paths, tier, root, result, compare, as_json, script) -> None:
    """`genesis replay --compare DIR`: the same input under the current and another
    configuration, side by side (genesis/engine/whatif.py)."""
    from rich.progress import Progress  # noqa: PLC0415

    from genesis.engine.whatif import Setup, compare_replays, comparison_json, format_comparison  # noqa: PLC0415

    other_root, other = _load_config(compare, option="--compare")
    current = Setup("current", root, result, _tier(result, tier))
    changed = Setup("compare", other_root, other, _tier(other, tier))   # each folder's own tier unless --tier

    def open_run(setup):   # each run reads the input afresh, into its own journal in memory
        return _session(setup.root, setup.config, setup.tier, _open_feed(paths, "PATHS"), "sqlite://", "replay",
                        script=script)

    if as_json or not sys.stderr.isatty():
        done = compare_replays(current, changed, open_run)
    else:
        with Progress(transient=True) as bar:
            task = bar.add_task("replaying", total=None)
            done = compare_replays(current, changed, open_run, on_progress=lambda label, n: bar.update(
                task, description=f"replaying ({label})", completed=n))
    click.echo(json.dumps(comparison_json(done), indent=2) if as_json else format_comparison(done))


@cli.command()
@click.argument("sweep_file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--config", "config", metavar="DIR", help="Configuration folder the trials start from (default: the "
              "sweep file's `config`, else as for genesis replay).")
@click.option("--workers", type=click.IntRange(min=1), help="Trials run at once (default: every local core).")
@click.option("--ray", "ray_address", metavar="ADDRESS", help="Run the trials as Ray tasks on the cluster whose head "
              "is at HOST:PORT (e.g. 127.0.0.1:6379) instead of on local cores; needs genesis-trader[ray].")
@click.option("--out", metavar="FILE", type=click.Path(dir_okay=False),
              help="Results file: .json (everything) or .csv (a row per trial) (default: SWEEP.results.json).")
@click.option("--best", metavar="FILE.yaml", type=click.Path(dir_okay=False),
              help="The best trial's values as a YAML diff (default: SWEEP.best.yaml).")
@click.option("--apply", "apply_diff", metavar="DIFF.yaml", type=click.Path(exists=True, dir_okay=False),
              help="Instead of sweeping: write a diff's numbers into the --config folder, if it then validates.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def sweep(sweep_file, config, workers, ray_address, out, best, apply_diff, as_json) -> None:
    """Tune configuration numbers on recorded data.

    Each trial is a deterministic replay under a validated copy of the configuration,
    ranked by an objective. The sweep file names the data, the keys to vary and their values or ranges, the
    objective and the search, grid or Optuna, optionally walk-forward (docs/sweep.md).

    \b
    Examples:
      genesis sweep tune.yaml --workers 4 --out results.csv
      genesis sweep tune.yaml --ray 127.0.0.1:6379
      genesis sweep --apply tune.best.yaml --config ~/genesis-config"""
    from genesis.sweep.command import apply_command, sweep_command  # noqa: PLC0415

    if apply_diff:
        if sweep_file:
            raise click.UsageError("--apply writes a diff into --config; give it without a sweep file")
        return apply_command(apply_diff, _config_dir(config))
    if not sweep_file:
        raise click.UsageError("name a sweep file (docs/sweep.md), or --apply DIFF.yaml")
    if ray_address and workers:
        raise click.UsageError("--workers counts local processes; with --ray the cluster's CPUs run the trials")
    sweep_command(sweep_file, lambda from_file: _config_dir(config or (str(from_file) if from_file else None)),
                  workers, out, best, as_json, ray_address)


@cli.command()
@click.option("--db", help="Journal URL (default: genesis.yaml storage.url).")
@click.option("--config", "config", metavar="DIR", help="Configuration folder.")
@click.option("--alive", is_flag=True, help="Only say whether an engine is running on this journal (a heartbeat "
              "within 3 s): exit 0 if so, 1 if not. For health checks (the Docker image's HEALTHCHECK).")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON (the fields are in docs/status.md).")
@click.option("--watch", type=click.FloatRange(min=0.2), is_flag=False, flag_value=2.0, default=None,
              metavar="[SECONDS]", help="Redraw every SECONDS (default 2) until Ctrl-C.")
def status(db, config, alive, as_json, watch) -> None:
    """Show the state of the latest run.

    Equity, today's P&L, drawdown against the tier's ladder, trading state and what
    holds it, tilt, positions, open orders, last decisions.

    \b
    Examples:
      genesis status
      genesis status --watch          # redraw every 2 s
      genesis status --json | jq .state"""
    from genesis.engine.journal import JournalError  # noqa: PLC0415
    from genesis.engine.status import format_status, read_view  # noqa: PLC0415

    if db is None:
        _, result = _load_config(config)
        db = journal_url(result.files.settings.data)
    if alive:
        _say_alive(db)

    def render() -> str:
        view = read_view(db)
        import shutil  # noqa: PLC0415 - only the status screen asks the terminal's width

        return json.dumps(view, indent=2) if as_json else format_status(view, shutil.get_terminal_size().columns)

    try:
        if watch is None:
            click.echo(render())
        else:
            _watch(render, watch)
    except JournalError as exc:
        click.echo(f"genesis: {exc}", err=True)
        sys.exit(1)


def _watch(render, every_s: float) -> None:
    """Redraw `render()` in place every `every_s` seconds on a terminal (printed one
    after another otherwise) until Ctrl-C."""
    import time  # noqa: PLC0415

    from rich.console import Console  # noqa: PLC0415
    from rich.live import Live  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    console = Console()
    try:
        if not console.is_terminal:
            while True:
                click.echo(render() + "\n")
                time.sleep(every_s)
        with Live(Text(render()), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(every_s)
                live.update(Text(render()), refresh=True)
    except KeyboardInterrupt:
        pass


@cli.command()
@click.option("--db", help="Journal URL (default: genesis.yaml storage.url).")
@click.option("--config", "config", metavar="DIR", help="Configuration folder.")
@click.option("--refresh", type=click.FloatRange(min=0.2, max=60), default=1.0, show_default=True,
              metavar="SECONDS", help="Read the journal again every SECONDS.")
def ui(db, config, refresh) -> None:
    """Terminal dashboard of the running or latest run. Equity, drawdown, trading state,
    tilt, positions, orders, decisions, alerts and promotion gates, updated every
    second; keys queue the operator commands (docs/ui.md).

    \b
    Examples:
      genesis ui                           # the journal of storage.url
      genesis ui --db sqlite:///replay.db  # a finished replay's journal"""
    from genesis.engine.journal import JournalError  # noqa: PLC0415
    from genesis.engine.status import read_view  # noqa: PLC0415

    if db is None:
        _, result = _load_config(config)
        db = journal_url(result.files.settings.data)
    try:
        view = read_view(db)   # a journal that cannot be read is said here, before the screen is taken
    except JournalError as exc:
        click.echo(f"genesis: {exc}", err=True)
        sys.exit(1)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        click.echo("genesis: `genesis ui` needs a terminal; without one, `genesis status --watch` or "
                   "`genesis status --json` show the same", err=True)
        sys.exit(1)
    from genesis.ui.app import GenesisApp  # noqa: PLC0415

    GenesisApp(db, refresh_s=refresh, first_view=view, traded=_traded_symbols(config)).run()


def _say_alive(db: str) -> None:
    """`genesis status --alive`: one line, and exit 0 when an engine beat on the journal
    `db` within the last 3 s (as the operator commands judge it), else exit 1."""
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

    from genesis.engine.journal import Journal, JournalError, describe_error  # noqa: PLC0415

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
        click.echo(f"not running: {describe_error(exc, db)}")
        sys.exit(1)
    from genesis.engine.commandqueue import ALIVE_MS  # noqa: PLC0415

    age_s = time.time() - beat / 1000
    if beat and age_s * 1000 < ALIVE_MS:
        click.echo(f"running: last heartbeat {max(age_s, 0.0):.1f} s ago")
        sys.exit(0)
    click.echo("not running: " + (f"last heartbeat {age_s:.0f} s ago" if beat else "no heartbeat in this journal"))
    sys.exit(1)


def _send_command(db: str | None, config: str | None, kind: str, payload: dict) -> None:
    """Queue a command for the running engine; wait briefly for its answer (exit 0
    applied or queued, 1 refused or not sent)."""
    from genesis.engine.commandqueue import CommandQueue  # noqa: PLC0415

    if db is None:
        _, result = _load_config(config)
        db = journal_url(result.files.settings.data)
    queue = CommandQueue(db, create=True)
    try:
        answer = queue.send(kind, payload, wait_s=5.0)
    finally:
        queue.close()
    if answer.status == "not sent":
        click.echo(f"genesis: {answer.result}", err=True)
        sys.exit(1)
    if answer.status == "queued":
        click.echo(f"queued (#{answer.command_id}): {answer.result}")
        return
    click.echo(f"{answer.status}: {answer.result}")
    sys.exit(0 if answer.status == "applied" else 1)


_DB = click.option("--db", callback=_checked_db, help="Journal URL of the engine (default: genesis.yaml storage.url).")
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
    """Place a manual order through every pre-trade rule.

    SYMBOL must be one Genesis has market rules for (the bundled exchangeInfo, or
    genesis.yaml `symbols`: a live run takes their rules from the exchange); a market
    order for a symbol with no price yet waits and is decided as soon as it has one.

    \b
    Examples:
      genesis order buy BTCUSDT 40
      genesis order buy BTCUSDT 40 --limit 61000   # a resting limit order
      genesis order sell BTCUSDT 40 --reason "my exit plan says so"
    """
    from genesis.engine.markets import Markets  # noqa: PLC0415
    from genesis.engine.operator import unknown_symbol  # noqa: PLC0415

    problem = unknown_symbol(symbol.upper(), Markets.load())   # the engine's market rules
    if problem:   # a live run trades the configuration's symbols by the exchange's rules
        problem = unknown_symbol(symbol.upper(), Markets.load(), _traded_symbols(config))
    if problem:   # an order that could never be sent is not queued
        click.echo(f"genesis: {problem}; nothing was queued", err=True)
        sys.exit(1)
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
    """Move a resting limit order to a new price.

    The tilt monitor counts the amendments of one order (bargaining).

    \b
    Example:
      genesis amend g12 61050
    """
    _send_command(db, config, "amend", {"client_id": client_id, "price": price})


@cli.command()
@click.argument("client_id")
@_DB
@_CONFIG
def cancel(client_id, db, config) -> None:
    """Cancel an open order by its client id.

    \b
    Example:
      genesis cancel g12
    """
    _send_command(db, config, "cancel", {"client_id": client_id})


@cli.command()
@click.option("--phrase", help="The confirmation phrase (asked for when not given).")
@_DB
@_CONFIG
def override(phrase, db, config) -> None:
    """Emergency override: lift every halt and lock.

    Asks for the confirmation phrase (genesis.yaml safety.override_phrase). An
    accepted override starts a cooldown (safety.override_cooldown) during which the
    next is refused; every attempt, accepted or not, is logged and counts toward
    demotion.

    \b
    Example:
      genesis override
    """
    if phrase is None:
        phrase = click.prompt("Type the confirmation phrase from genesis.yaml (safety.override_phrase)")
    _send_command(db, config, "override", {"phrase": phrase})


@cli.command()
@click.option("--phrase", help="The phrase the halt's rule asks for (asked for when not given).")
@click.option("--rule", "rule_id", metavar="ID", help="The rule whose halt to reset, when several wait for one.")
@_DB
@_CONFIG
def reset(phrase, rule_id, db, config) -> None:
    """Lift one rule's halt with the phrase it asks for.

    A typed manual reset, such as Hunter's drawdown halt asks for: only that halt
    (not the emergency override). `genesis tier` shows what waits and its phrase.

    \b
    Example:
      genesis reset --phrase "I have reviewed the drawdown and reset the halt"
    """
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
    """Write the reflection a tier change asks for.

    A promotion waiting for a reflection at least this long then happens.

    \b
    Examples:
      genesis reflect "I kept to my limits for 30 days because ..."
      genesis reflect --file reflection.txt
    """
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
    """Write a journal entry, or record a life event.

    A level-3 tilt lockout ends only after an entry long enough.

    \b
    Examples:
      genesis journal --file today.txt
      genesis journal --life-event 3     # tilt thresholds one higher for 3 days
    """
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
    """Print the daily report of a closed UTC day.

    From the journal: P&L, trades, win rate, fees, drawdown, rule firings, time in
    each state, promotion progress.

    \b
    Examples:
      genesis report
      genesis report --day 2024-08-08 --json
    """
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
    """Silence a rule's notifications for a while.

    RULE's notifications are journaled, not delivered, for DURATION of event time.

    \b
    Examples:
      genesis silence memory_warning 2h --reason "backup running"
      genesis silence memory_warning --end
      genesis silence --list
    """
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
    """Change a tier number; it applies after a delay.

    Validated at once; written into the tier file after safety.risk_edit_delay (1 h)
    of market time, then applied by hot reload. Every attempt counts as a risk edit.

    \b
    Example:
      genesis set tier.limits.daily_loss_usd 20
    """
    _send_command(db, config, "set", {"key": key, "value": value})


@cli.command()
@_DB
@_CONFIG
def tier(db, config) -> None:
    """Show the tier and the progress of every promotion gate.

    Each gate with its current value, passed or not, and what remains (rebuilt from
    the journal).

    \b
    Example:
      genesis tier --db sqlite:///genesis.db
    """
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
    """Notification channels (genesis.yaml `notifications`).

    \b
    Example:
      genesis notify test pager
    """


@notify.command("test")
@click.argument("channel", required=False)
@click.option("--config", type=click.Path(file_okay=False), help="Configuration folder (default: here).")
def notify_test(channel: str | None, config: str | None) -> None:
    """Send a test message to a channel and say what happened.

    CHANNEL is a name from genesis.yaml `notifications` (default: every channel).
    Exits 1 when a channel could not take it.

    \b
    Examples:
      genesis notify test
      genesis notify test pager
    """
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
    """Run the rule unit tests (YAML cases).

    By default rule_tests/*.yaml of the configuration; the shipped cases assume the
    shipped limits. Prints each failing case with file:line, what was expected and
    what happened, then 'N passed, M failed'. Exits 0 when all pass, 1 otherwise.

    \b
    Examples:
      genesis test
      genesis test rule_tests/risk_test.yaml
    """
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
    """Back up the journal and the input logs now.

    Also while an engine runs: one consistent copy, written under a temporary name
    and renamed when complete. Prints where it went. A failure is queued as a
    backup_failure event for the engine.

    \b
    Examples:
      genesis backup
      genesis backup --to /mnt/usb/genesis-backups
      genesis backup --list
    """
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
    """Restore a backup into the journal.

    BACKUP is a backup folder, its name in the backup folder, or `latest`; it goes
    into the journal genesis.yaml or --db names, with its input logs beside it, and
    the same `genesis run` then resumes from it. An existing journal is replaced
    only with --force.

    \b
    Examples:
      genesis restore latest
      genesis restore latest --force
    """
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


# imported only when it runs: the simulator pulls in aiohttp, which would slow every other command's start
cli.add_lazy_command("simulate", "genesis.simulator.cli:simulate", "Run a Binance-like test exchange on 127.0.0.1.")


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
