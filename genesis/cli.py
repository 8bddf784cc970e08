"""The `genesis` command."""
from __future__ import annotations

import os
import sys
import time
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
