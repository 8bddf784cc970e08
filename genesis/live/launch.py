"""`genesis run --mode live`: checks before anything connects (keys, confirmation,
where), then the live session until Ctrl-C or SIGTERM. `--mode dry-run` runs the same
session without keys or confirmation, trading on paper (genesis/live/dryrun.py)."""
from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from genesis.live.credentials import Credentials, Secret, redact

CONFIRM_WORD = "live"
WAIT_FIRST_S = 0.5    # start-up: the first wait for an exchange that cannot be reached ...
WAIT_MAX_S = 30.0     # ... doubled after each attempt up to this


class LaunchRefused(Exception):
    """Live mode cannot start; the message says what to do."""


def endpoints(settings: dict, rest_url: str | None, ws_url: str | None) -> tuple[str, str]:
    """REST and websocket base URLs: options, else genesis.yaml `exchange` (Binance's by default)."""
    exchange = settings["exchange"]
    return (rest_url or exchange["rest_url"]).rstrip("/"), (ws_url or exchange["ws_url"]).rstrip("/")


def check_confirmation(confirm: str | None, rest_url: str, ask=None) -> None:
    """Live trading starts only on an explicit confirmation: `--confirm live`, or the word
    typed at the prompt when a terminal is attached."""
    if confirm is not None:
        if confirm.strip().lower() != CONFIRM_WORD:
            raise LaunchRefused(f"--confirm must be '{CONFIRM_WORD}' to trade live")
        return
    if ask is None:
        raise LaunchRefused(f"live trading needs an explicit confirmation: add --confirm {CONFIRM_WORD} "
                            f"(orders go to {rest_url})")
    typed = ask(f"Orders will go to {rest_url} with real balances. Type '{CONFIRM_WORD}' to start")
    if str(typed).strip().lower() != CONFIRM_WORD:
        raise LaunchRefused("not confirmed; nothing was started")


async def wait_for_exchange(client, rest_url: str, stopping: asyncio.Event, say, give_up_s: float | None = None,
                            first_s: float = WAIT_FIRST_S, max_s: float = WAIT_MAX_S, hide=()) -> bool:
    """Start `client` (markets, clock). While the exchange cannot be reached (no connection,
    timeouts, 5xx, rate-limit bans), try again after a wait that doubles from `first_s` up
    to `max_s`, saying each time "waiting for the exchange at URL: attempt N, next in Xs
    (why)". True once started; False when `stopping` is set first (Ctrl-C, SIGTERM: an
    attempt under way is abandoned). A definitive refusal, or no answer for `give_up_s`
    (None: no limit), raises LaunchRefused with one line. `hide`: secrets to keep out of it."""
    from genesis.live.rest import ExchangeError, ExchangeUnavailable  # noqa: PLC0415

    began = time.monotonic()
    delay = first_s
    attempt = 0
    while not stopping.is_set():
        attempt += 1
        starting = asyncio.ensure_future(client.start(retries=0))
        halted = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({starting, halted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            halted.cancel()
            if not starting.done():
                starting.cancel()
            await asyncio.gather(starting, halted, return_exceptions=True)
        if starting.cancelled():
            return False
        error = starting.exception()
        if error is None:
            if attempt > 1:
                say(f"the exchange at {rest_url} answered (attempt {attempt}); starting")
            return True
        why = redact(str(error), *hide)
        if not isinstance(error, ExchangeUnavailable):
            if isinstance(error, ExchangeError):
                raise LaunchRefused(f"the exchange at {rest_url} refused: {why}; nothing was started") from None
            raise LaunchRefused(f"cannot reach the exchange at {rest_url}: {type(error).__name__}: {why}; "
                                "nothing was started") from None
        waited = time.monotonic() - began
        if give_up_s is not None and waited + delay > give_up_s:
            raise LaunchRefused(f"cannot reach the exchange at {rest_url} ({why}); gave up after {waited:.0f} s "
                                "(exchange.start_timeout); nothing was started")
        say(f"waiting for the exchange at {rest_url}: attempt {attempt}, next in {delay:g}s ({why})")
        try:
            await asyncio.wait_for(stopping.wait(), delay)
        except TimeoutError:
            pass
        delay = min(delay * 2, max_s)
    return False


def run_live(root: Path, config, tier: str, db_url: str, creds: Credentials | None, rest_url: str, ws_url: str,
             say=print, status=None, notify=None, poll_s: float = 0.2, watch=None, dry_run: bool = False) -> int | None:
    """Open (or continue) the live run and trade until interrupted; `watch` (a
    genesis.observe.loopwatch.LoopWatch) gets the loop's lag and timings. With `dry_run`
    (`creds` None) it is the dry run: the client holds no key, so it can make public
    requests only (exchangeInfo, the clock, depth snapshots), and orders fill on paper.
    An exchange that cannot be reached at start is waited for (`wait_for_exchange`).
    Returns the signal that stopped it (SIGINT, SIGTERM), None when it ended otherwise;
    every client (REST, order connections, websockets) is closed on every way out."""
    from genesis.live.ratelimit import OrderGate, WeightGate  # noqa: PLC0415
    from genesis.live.rest import ExchangeClient, ExchangeError  # noqa: PLC0415
    from genesis.live.segment import InputLogError  # noqa: PLC0415
    from genesis.live.marketrules import UnlistedSymbols  # noqa: PLC0415
    from genesis.live.session import LiveRunner, RecoveryFailed, open_live_session  # noqa: PLC0415
    from genesis.durations import parse_duration  # noqa: PLC0415
    from genesis.live.streams import runner_streams  # noqa: PLC0415

    settings = config.files.settings.data
    symbols, exchange = list(settings["symbols"]), settings["exchange"]
    budget = float(exchange["rate_limit_use_pct"])
    order_budget = float(exchange["order_limit_use_pct"])
    recv_window_ms = int(exchange["recv_window_ms"])
    order_connection = bool(exchange["order_connection"])
    streams_per_connection = int(exchange["streams_per_connection"])
    user_timeout_s = parse_duration(exchange["user_stream_timeout"])
    give_up_s = parse_duration(exchange["start_timeout"]) if exchange.get("start_timeout") is not None else None
    if dry_run:
        creds = Credentials(Secret(""), Secret(""))   # no key: nothing can be signed, no order can leave
    try:
        session, log_path = open_live_session(root, config, tier, db_url, creds, rest_url, notify=notify,
                                              dry_run=dry_run)
    except InputLogError as exc:   # the run's recorded symbol rules are damaged
        raise LaunchRefused(f"{exc}; nothing was started") from None

    async def main() -> int | None:
        try:
            client = ExchangeClient(rest_url, creds.key.reveal(), creds.secret.reveal(),
                                    gate=WeightGate(budget_pct=budget), recv_window_ms=recv_window_ms,
                                    order_gate=OrderGate(budget_pct=order_budget), order_connection=order_connection)
        except ValueError as exc:   # an unusable --rest-url
            session.journal.close()
            raise LaunchRefused(f"{exc}; nothing was started") from None
        runner_box: list = []

        def on_system(kind: str, fields: dict) -> None:
            if runner_box:
                runner_box[0].put(("system", kind, fields))

        client.on_system = on_system

        market, user = runner_streams(ws_url, client, symbols, user_timeout_s=user_timeout_s,
                                      streams_per_connection=streams_per_connection)
        runner = LiveRunner(session, client, market, user, log_path, symbols, say=say, status=status,
                            config_root=root, poll_s=poll_s, watch=watch)
        stopped_by: list[int] = []

        def on_signal(signum: int) -> None:
            if not stopped_by:
                stopped_by.append(signum)
            runner.stop()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        ran = False
        try:
            if not await wait_for_exchange(client, rest_url, runner.stopping, say, give_up_s,
                                           hide=(creds.key, creds.secret)):
                say(f"stopped while waiting for the exchange at {rest_url}; nothing was started")
                return stopped_by[0] if stopped_by else None
            if runner.stopping.is_set():
                return stopped_by[0] if stopped_by else None
            runner_box.append(runner)
            ran = True
            await runner.run()
        except ExchangeError as exc:
            raise LaunchRefused(f"the exchange refused: {redact(str(exc), creds.key, creds.secret)}; "
                                "trading stopped, the journal is saved") from None
        # nothing is processed that the log does not hold, nor a symbol the exchange does not list
        except (RecoveryFailed, InputLogError, UnlistedSymbols) as exc:
            raise LaunchRefused(str(exc)) from None
        finally:
            if ran:
                runner.close()
            else:   # nothing was processed: the journal is left as it was
                session.journal.close()
            await client.close()
        return stopped_by[0] if stopped_by else None

    return asyncio.run(main())
