"""`genesis run --mode live`: checks before anything connects (keys, confirmation,
where), then the live session until Ctrl-C or SIGTERM."""
from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from genesis.live.credentials import Credentials, redact

CONFIRM_WORD = "live"


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


def run_live(root: Path, config, tier: str, db_url: str, creds: Credentials, rest_url: str, ws_url: str,
             say=print, status=None, notify=None, poll_s: float = 0.2, watch=None) -> None:
    """Open (or continue) the live run and trade until interrupted; `watch` (a
    genesis.observe.loopwatch.LoopWatch) gets the loop's lag and timings."""
    from genesis.live.ratelimit import OrderGate, WeightGate  # noqa: PLC0415
    from genesis.live.rest import ExchangeClient, ExchangeError  # noqa: PLC0415
    from genesis.live.segment import InputLogError  # noqa: PLC0415
    from genesis.live.session import LiveRunner, RecoveryFailed, open_live_session  # noqa: PLC0415
    from genesis.live.streams import runner_streams  # noqa: PLC0415

    settings = config.files.settings.data
    symbols, exchange = list(settings["symbols"]), settings["exchange"]
    budget = float(exchange["rate_limit_use_pct"])
    order_budget = float(exchange["order_limit_use_pct"])
    recv_window_ms = int(exchange["recv_window_ms"])
    order_connection = bool(exchange["order_connection"])
    session, log_path = open_live_session(root, config, tier, db_url, creds, rest_url, notify=notify)

    async def main() -> None:
        client = ExchangeClient(rest_url, creds.key.reveal(), creds.secret.reveal(), gate=WeightGate(budget_pct=budget),
                                recv_window_ms=recv_window_ms, order_gate=OrderGate(budget_pct=order_budget),
                                order_connection=order_connection)
        runner_box: list = []

        def on_system(kind: str, fields: dict) -> None:
            if runner_box:
                runner_box[0].put(("system", kind, fields))

        client.on_system = on_system

        market, user = runner_streams(ws_url, client, symbols)

        try:
            await client.start()
        except Exception as exc:  # noqa: BLE001 - any failure to reach the exchange: one clear line
            raise LaunchRefused(f"cannot reach the exchange at {rest_url}: {redact(str(exc), creds.key, creds.secret)}") \
                from None
        runner = LiveRunner(session, client, market, user, log_path, symbols, say=say, status=status,
                            config_root=root, poll_s=poll_s, watch=watch)
        runner_box.append(runner)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runner.stop)
        try:
            await runner.run()
        except ExchangeError as exc:
            raise LaunchRefused(f"the exchange refused: {redact(str(exc), creds.key, creds.secret)}; "
                                "trading stopped, the journal is saved") from None
        except (RecoveryFailed, InputLogError) as exc:   # nothing is processed that the log does not hold
            raise LaunchRefused(str(exc)) from None
        finally:
            runner.close()
            await client.close()

    asyncio.run(main())
