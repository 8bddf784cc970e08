"""The sweep file: YAML checked against schema/sweep.schema.json, defaults from it."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from jsonschema import Draft202012Validator

from genesis.config.problems import Problem, format_text
from genesis.config.yamlsrc import YamlError, load_yaml
from genesis.paths import schema_dir

SCHEMA_FILE = "sweep.schema.json"
LOWER_IS_BETTER = ("max_drawdown_usd", "max_drawdown_pct", "halts")


class SweepError(ValueError):
    """The sweep file has problems; the message names each as file:line:col."""


@dataclass(frozen=True)
class Parameter:
    """One configuration number to vary: `file: path` and its values or range."""

    key: str                      # as written: "tiers/hunter.yaml: limits.max_position_pct"
    file: str                     # "tiers/hunter.yaml"
    path: tuple                   # ("limits", "max_position_pct")
    values: tuple | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None

    def grid(self) -> list:
        """Every value a grid tries, in order."""
        if self.values is not None:
            return list(self.values)
        count = int(round((self.high - self.low) / self.step + 1e-9)) + 1
        whole = all(float(v).is_integer() for v in (self.low, self.high, self.step))
        points = [self.low + i * self.step for i in range(count)]
        return [int(round(v)) if whole else float(f"{v:.10g}") for v in points]


@dataclass
class Sweep:
    """A checked sweep file, every default filled in."""

    source: Path
    data: list                    # feed file paths (absolute); empty: the bundled sample
    config: Path | None
    tier: str | None
    starting_equity_usd: float | None
    parameters: list
    metric: str
    direction: str
    method: str
    n_trials: int
    seed: int
    batch: int
    fit_pct: float | None         # walk-forward: share of event time fitted on; None: no walk-forward
    raw: dict = field(default_factory=dict)


def _schema() -> dict:
    return json.loads((schema_dir() / SCHEMA_FILE).read_text(encoding="utf-8"))


def _default(schema: dict, *path: str):
    node = schema
    for part in path:
        node = node[part]
    return node.get("default")


def _problems(data, smap, name: str) -> list[Problem]:
    problems = []
    for error in Draft202012Validator(_schema()).iter_errors(data):
        at = tuple(error.absolute_path)
        mark = smap.value(at)
        where = ".".join(str(p) for p in at) or "the file"
        if error.validator == "oneOf":
            message = f"{where}: give either `values` (a list) or `low` and `high` (and `step`), not both"
        elif error.validator == "pattern" and at[-1:] == ("key",):
            message = f"{where}: write FILE: dotted.path, e.g. 'tiers/hunter.yaml: limits.max_position_pct'"
        elif error.validator == "type" and not at:
            message = "the sweep file is a mapping: `parameters:`, `objective:`, ... (docs/sweep.md)"
        elif error.validator == "additionalProperties":
            message = f"{where}: {error.message.replace('Additional properties are not allowed', 'unknown key')}"
        else:
            message = f"{where}: {error.message}"
        problems.append(Problem(name, mark.line, mark.col, message))
    return sorted(set(problems), key=lambda p: (p.line, p.col, p.message))


def _parameter(raw: dict, method: str, smap, name: str, index: int) -> tuple[Parameter | None, list]:
    file, _, dotted = raw["key"].partition(":")
    param = Parameter(raw["key"], file.strip(), tuple(dotted.strip().split(".")),
                      tuple(raw["values"]) if "values" in raw else None, raw.get("low"), raw.get("high"),
                      raw.get("step"))
    mark = smap.value(("parameters", index))
    if param.values is None and param.low > param.high:
        return None, [Problem(name, mark.line, mark.col, f"{raw['key']}: low {param.low} is above high {param.high}")]
    if param.values is None and param.step is None and method == "grid":
        return None, [Problem(name, mark.line, mark.col, f"{raw['key']}: a grid needs `step` for a range "
                                                         "(or give `values`)")]
    return param, []


def load_sweep(path: Path) -> Sweep:
    """Read and check a sweep file; raise SweepError naming every problem."""
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"{name}: cannot read the sweep file ({exc})") from None
    try:
        data, smap = load_yaml(text, name)
    except YamlError as exc:
        raise SweepError(format_text([Problem(name, exc.mark.line, exc.mark.col, exc.message)])) from None
    problems = _problems(data, smap, name) if data is not None else [
        Problem(name, 1, 1, "the sweep file is empty: write `parameters:` and a list of keys to vary (docs/sweep.md)")]
    if problems:
        raise SweepError(format_text(problems))
    schema = _schema()
    defs = schema["$defs"]
    objective = {**_default(defs, "objective"), **data.get("objective", {})}
    search = {**_default(defs, "search"), **data.get("search", {})}
    metric = objective.get("metric", _default(defs["objective"], "properties", "metric"))
    direction = objective.get("direction") or ("minimize" if metric in LOWER_IS_BETTER else "maximize")
    method = search.get("method", _default(defs["search"], "properties", "method"))
    params = []
    for i, raw in enumerate(data["parameters"]):
        param, found = _parameter(raw, method, smap, name, i)
        problems += found
        params.append(param)
    keys = [p.key for p in params if p is not None]
    for dup in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(Problem(name, 1, 1, f"{dup}: named twice in `parameters`"))
    if problems:
        raise SweepError(format_text(problems))
    base = path.resolve().parent
    wf = data.get("walk_forward")
    return Sweep(
        source=path,
        data=[(base / p).resolve() for p in data.get("data", _default(schema, "properties", "data"))],
        config=(base / data["config"]).resolve() if data.get("config") else None,
        tier=data.get("tier"),
        starting_equity_usd=data.get("starting_equity_usd"),
        parameters=params,
        metric=metric,
        direction=direction,
        method=method,
        n_trials=search.get("n_trials", _default(defs["search"], "properties", "n_trials")),
        seed=search.get("seed", _default(defs["search"], "properties", "seed")),
        batch=search.get("batch", _default(defs["search"], "properties", "batch")),
        fit_pct=None if wf is None else wf.get("fit_pct", _default(defs["walk_forward"], "properties", "fit_pct")),
        raw=data,
    )
