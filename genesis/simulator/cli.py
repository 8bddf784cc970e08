"""``genesis simulate``: run the local Binance spot simulator until Ctrl-C."""
from __future__ import annotations

import asyncio
import secrets
import signal

import click

from .config import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    DEFAULT_BALANCES,
    DEFAULT_PORT,
    MAKER_FILLS,
    STP_MODES,
    SimConfig,
    parse_balances,
)
from .faults import FaultSpec, load_fault_file, parse_flags


def _build_config(host, port, speed, feeds, exchange_info, faults_file, fault_flags, api_key, api_secret,
                  generate_keys, balances, maker_fee, taker_fee, maker_fill, keep_timestamps, weight_limit,
                  seed, stp_default="EXPIRE_MAKER", derived_symbols=0,
                  derived_offset_ms=100.0) -> tuple[SimConfig, bool]:
    fault_spec = {}
    if faults_file:
        fault_spec.update(load_fault_file(faults_file))
    fault_spec.update(parse_flags(fault_flags))
    FaultSpec.from_mapping(fault_spec)                       # fail early, with the key's name
    generated = False
    if generate_keys:
        if api_key or api_secret:
            raise ValueError("--generate-keys and --api-key/--api-secret exclude each other")
        api_key, api_secret, generated = secrets.token_hex(16), secrets.token_hex(32), True
    bal = dict(DEFAULT_BALANCES)
    bal.update(parse_balances(balances))
    cfg = SimConfig(host=host, port=port, speed=speed, feeds=list(feeds), exchange_info=exchange_info,
                    api_key=api_key or DEFAULT_API_KEY, api_secret=api_secret or DEFAULT_API_SECRET,
                    balances=bal, maker_fee=maker_fee, taker_fee=taker_fee, maker_fill=maker_fill,
                    keep_timestamps=keep_timestamps, weight_limit=weight_limit, faults=fault_spec, seed=seed,
                    stp_default=stp_default, derived_symbols=derived_symbols, derived_offset_ms=derived_offset_ms)
    cfg.validate()
    return cfg, generated


def _banner(sim, cfg: SimConfig, generated: bool, secret_given: bool) -> str:
    if generated:
        secret_line = f"API secret  {cfg.api_secret}   (generated for this run; shown once)"
    elif secret_given:
        secret_line = "API secret  (the one you passed with --api-secret)"
    else:
        secret_line = "API secret  the documented test secret (docs/simulator.md)"
    feeds = ", ".join(sim.capture.files) if cfg.feeds else "bundled sample (genesis/data/sample)"
    return "\n".join([
        f"Genesis Binance spot simulator on {sim.base_url}",
        f"  REST     {sim.rest_url}/api/v3/...   (like https://api.binance.com)",
        f"  streams  {sim.ws_url}/ws/<stream>  {sim.ws_url}/stream?streams=a/b   (like wss://stream.binance.com:9443)",
        f"  WS API   {sim.ws_api_url}",
        f"  admin    {sim.base_url}/sim/state  /sim/faults  /sim/step  /sim/clock  /sim/limits",
        f"  API key     {cfg.api_key}",
        f"  {secret_line}",
        f"  replay   {feeds}: {len(sim.capture.records):,} records, speed {cfg.speed}",
        *([f"  derived  {len(sim.clones)} symbols: {sim.clones[0].symbol} ... {sim.clones[-1].symbol} "
           f"(clones of {', '.join(sorted({c.source for c in sim.clones}))})"] if sim.clones else []),
        "ccxt:  from genesis.simulator import ccxt_config",
        f"       ex = ccxt.binance(ccxt_config({sim.rest_url!r}, API_KEY, API_SECRET))",
        "Ctrl-C stops.",
    ])


async def _serve(cfg: SimConfig, generated: bool, secret_given: bool) -> None:
    from .server import Simulator

    sim = Simulator(cfg)
    await sim.start()
    click.echo(_banner(sim, cfg, generated, secret_given))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await stop.wait()
    finally:
        await sim.stop()
        click.echo("simulator stopped")


@click.command("simulate")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to listen on "
              "(anything else is refused).")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, help="TCP port; 0 picks a free one.")
@click.option("--speed", default="1", show_default=True, help="Replay speed: 1 = real time, N = N times "
              "faster, 'max', or 'step' (only POST /sim/step advances).")
@click.option("--feed", "feeds", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Capture file (<ns> <json> lines, gzip or not); repeat for more. Default: the bundled sample.")
@click.option("--exchange-info", type=click.Path(exists=True, dir_okay=False),
              help="exchangeInfo JSON to serve (default: the bundled BTCUSDT/ETHUSDT/ETHBTC one).")
@click.option("--faults", "faults_file", type=click.Path(exists=True, dir_okay=False),
              help="Fault spec file (JSON or YAML mapping; see docs/simulator.md).")
@click.option("--fault", "fault_flags", multiple=True, metavar="KEY=VALUE",
              help="One fault setting, e.g. --fault http_error_next=2; repeatable; wins over --faults.")
@click.option("--api-key", help=f"API key of the account (default {DEFAULT_API_KEY}).")
@click.option("--api-secret", help="Its HMAC secret (default: the documented test secret).")
@click.option("--generate-keys", is_flag=True, help="Generate a random key pair for this run and print it once.")
@click.option("--balance", "balances", multiple=True, metavar="ASSET=AMOUNT",
              help="Starting balance, repeatable (default USDT=10000, BTC=0, ETH=0).")
@click.option("--maker-fee", default="0.001", show_default=True, help="Maker fee rate (0.001 = 0.1%).")
@click.option("--taker-fee", default="0.001", show_default=True, help="Taker fee rate.")
@click.option("--maker-fill", type=click.Choice(list(MAKER_FILLS)), default="queue", show_default=True,
              help="How resting limit orders fill from recorded trades: 'queue' after the quantity displayed "
                   "ahead of them at their price has traded (or at once when a trade prints through it), "
                   "'through' when a trade prints through their price, 'touch' also at it.")
@click.option("--keep-timestamps", is_flag=True, help="Send recorded E/T unchanged instead of shifted to now.")
@click.option("--weight-limit", default=6000, show_default=True, type=int, help="REQUEST_WEIGHT per minute.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of generated ids and random faults.")
@click.option("--stp-default", type=click.Choice(list(STP_MODES)), default="EXPIRE_MAKER", show_default=True,
              help="Self-trade prevention mode of orders that name none (symbols whose exchangeInfo gives no "
                   "defaultSelfTradePreventionMode).")
@click.option("--derived-symbols", default=0, show_default=True, type=click.IntRange(0, 999),
              help="Serve N more symbols cloned from the capture's (BTC001USDT, ETH002USDT, ...: the source's "
                   "filters, its recorded messages k x --derived-offset-ms ahead).")
@click.option("--derived-offset-ms", default=100.0, show_default=True, type=click.FloatRange(0),
              help="How far ahead in the recording each derived symbol replays, times its number, ms.")
def simulate(host, port, speed, feeds, exchange_info, faults_file, fault_flags, api_key, api_secret,
             generate_keys, balances, maker_fee, taker_fee, maker_fill, keep_timestamps, weight_limit, seed,
             stp_default, derived_symbols, derived_offset_ms) -> None:
    """Run a Binance-like test exchange on 127.0.0.1.

    A Binance-spot-compatible exchange replaying recorded data: REST /api/v3, market
    streams, user data (listenKey and WS API) and fault injection; point ccxt or any
    websocket client at the printed URLs.

    \b
    Examples:
      genesis simulate --port 8765
      genesis simulate --port 8765 --fault http_error_after_next=1
      genesis simulate --port 8765 --derived-symbols 100
    """
    try:
        cfg, generated = _build_config(host, port, speed, feeds, exchange_info, faults_file, fault_flags,
                                       api_key, api_secret, generate_keys, balances, maker_fee, taker_fee,
                                       maker_fill, keep_timestamps, weight_limit, seed, stp_default,
                                       derived_symbols, derived_offset_ms)
    except (ValueError, OSError) as e:
        raise click.UsageError(str(e)) from None
    try:
        asyncio.run(_serve(cfg, generated, bool(api_secret)))
    except KeyboardInterrupt:
        pass
    except ValueError as e:      # e.g. derived symbols from a capture the exchangeInfo does not list
        raise click.UsageError(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
