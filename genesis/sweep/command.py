"""`genesis sweep`: the command's work, kept out of genesis/cli.py so that the CLI
loads it only when the command runs."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from genesis.sweep.keys import ConfigKeyError
from genesis.sweep.sweepfile import SweepError, load_sweep


def apply_command(diff: str, config_root: Path) -> None:
    """`genesis sweep --apply DIFF`: write the diff's numbers into the configuration folder."""
    from genesis.config.problems import format_text  # noqa: PLC0415
    from genesis.sweep.apply import apply_diff  # noqa: PLC0415

    try:
        changed, problems = apply_diff(config_root, Path(diff))
    except ConfigKeyError as exc:
        click.echo(f"genesis: {exc}", err=True)
        sys.exit(1)
    if problems:
        click.echo(format_text(problems), err=True)
        click.echo(f"genesis: {diff} would leave the configuration invalid; nothing was written", err=True)
        sys.exit(1)
    click.echo(f"applied {diff} to {config_root}: {', '.join(changed) or 'nothing changed'}")


def sweep_command(sweep_file: str, config_root, workers: int | None, out: str | None, best: str | None,
                  as_json: bool, ray_address: str | None = None) -> None:
    """Run the sweep file's trials, locally or on the Ray cluster at `ray_address`, and report
    (see `genesis sweep --help`)."""
    from genesis.sweep.report import format_table, outcome_json, write_diff, write_results  # noqa: PLC0415
    from genesis.sweep.sweeprun import run_sweep  # noqa: PLC0415
    from genesis.sweep.raypool import ClusterError, RayPool  # noqa: PLC0415
    from genesis.sweep.workers import LocalPool, default_workers  # noqa: PLC0415

    try:
        sweep = load_sweep(Path(sweep_file))
    except SweepError as exc:
        click.echo(str(exc), err=True)
        click.echo("genesis: the sweep file has problems; nothing was run (its format: docs/sweep.md)", err=True)
        sys.exit(1)
    for path in sweep.data:
        if not path.is_file():
            click.echo(f"genesis: {sweep_file}: data file {path}: no such file", err=True)
            sys.exit(1)
    root = config_root(sweep.config)
    stem = Path(sweep_file).with_suffix("")
    out_path = Path(out) if out else stem.parent / f"{stem.name}.results.json"
    best_path = Path(best) if best else stem.parent / f"{stem.name}.best.yaml"
    for path, option in ((out_path, "--out"), (best_path, "--best")):
        if not path.resolve().parent.is_dir():
            raise click.BadParameter(f"{path}: no folder {path.resolve().parent}", param_hint=option)
    try:
        pool = RayPool(ray_address) if ray_address else LocalPool(workers or default_workers())
    except ClusterError as exc:
        raise click.BadParameter(str(exc), param_hint="--ray") from None

    def say(result) -> None:
        if not as_json:
            click.echo(f"trial {result.number}: {result.status}", err=True)

    try:
        with pool:
            outcome = run_sweep(sweep, root, pool, on_result=say)
    except ClusterError as exc:
        click.echo(f"genesis: --ray {ray_address}: {exc}; nothing was written", err=True)
        sys.exit(1)
    except (ConfigKeyError, ValueError) as exc:
        click.echo(f"genesis: {sweep_file}: {exc}", err=True)
        sys.exit(1)
    try:
        write_results(out_path, outcome, sweep)
        wrote_best = write_diff(best_path, outcome, sweep)
    except OSError as exc:
        click.echo(f"genesis: could not write {exc.filename}: {exc.strerror}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(outcome_json(outcome), indent=2))
    else:
        click.echo(format_table(outcome, sweep))
        click.echo(f"wrote {out_path}" + (f" and {best_path}" if wrote_best else ""))
