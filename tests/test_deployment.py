"""Deployment: the Dockerfile, .dockerignore, docker-compose.yml and the files under
deploy/, checked without a Docker daemon. The image's default command and its
HEALTHCHECK run for real, as the Dockerfile wires them (its configuration copied as its
COPY lines say, its working folder, its environment), and `genesis status --alive` is
checked against a real paper engine that is running, then killed. With a Docker daemon
the image is built and run too; with docker compose its `config` check runs."""
from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from scenario_helpers import edited_copy
from test_metrics_endpoint import free_port, scrape

ROOT = Path(__file__).resolve().parents[1]
GENESIS = [sys.executable, "-m", "genesis"]        # what the image's `genesis` entry point runs
SILENT = {"health_probe: {interval: 15s}": "health_probe: {interval: null}"}


# ---------------------------------------------------------------- the Dockerfile

def dockerfile(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: continuations joined, comments dropped."""
    instructions, pending = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        word, _, rest = text.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    assert not pending, "a continuation line ends the Dockerfile"
    return instructions


def exec_form(text: str) -> list[str]:
    """A JSON exec form (["a", "b"]); the shell form is not used for what the tests run."""
    value = json.loads(text)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), text
    return value


def one(instructions, name: str) -> str:
    found = [rest for word, rest in instructions if word == name]
    assert found, f"no {name} in the Dockerfile"
    return found[-1]   # the last one is the one in force


def env_of(instructions) -> dict:
    env = {}
    for word, rest in instructions:
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def copies(instructions) -> list[tuple[list[str], str, dict]]:
    """(sources, destination, flags) of every COPY."""
    result = []
    for word, rest in instructions:
        if word != "COPY":
            continue
        parts = shlex.split(rest)
        flags = dict(p[2:].split("=", 1) for p in parts if p.startswith("--"))
        paths = [p for p in parts if not p.startswith("--")]
        result.append((paths[:-1], paths[-1], flags))
    return result


def healthcheck(instructions) -> tuple[dict, list[str]]:
    """(options, command) of the HEALTHCHECK."""
    options, _, command = one(instructions, "HEALTHCHECK").partition("CMD")
    opts = dict(o[2:].split("=", 1) for o in options.split())
    return opts, exec_form(command.strip())


def seconds(text: str) -> float:
    return float(text[:-1]) * {"s": 1, "m": 60, "h": 3600}[text[-1]]


def config_port() -> int:
    return yaml.safe_load((ROOT / "genesis.yaml").read_text())["metrics_endpoint"]["port"]


def test_the_image_runs_genesis_as_a_fixed_non_root_user_with_the_journal_on_a_volume():
    instructions = dockerfile()
    assert one(instructions, "FROM") == "python:3.11-slim"
    user = one(instructions, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) >= 1000 and (not gid or int(gid) >= 1000), user   # fixed and not root
    created = " ".join(rest for word, rest in instructions if word == "RUN" and "useradd" in rest)
    assert f"--uid {uid}" in created and (not gid or f"--gid {gid}" in created), created
    # USER comes after every RUN: nothing at run time has root's rights
    last_user = max(i for i, (word, _) in enumerate(instructions) if word == "USER")
    assert all(word != "RUN" for word, _ in instructions[last_user:])

    workdir = one(instructions, "WORKDIR")
    assert exec_form(one(instructions, "VOLUME")) == [workdir] == ["/data"]
    assert re.search(rf"chown (-R )?{uid}:{gid} {workdir}\b",
                     " ".join(rest for word, rest in instructions if word == "RUN" and workdir in rest))
    # the journal of the shipped settings (relative SQLite URL) lands in the working folder, on the volume
    assert yaml.safe_load((ROOT / "genesis.yaml").read_text())["storage"]["url"] == "sqlite:///genesis.db"

    env = env_of(instructions)
    config = env["GENESIS_CONFIG"]
    for sources, destination, flags in copies(instructions):
        if destination.startswith(config):   # the engine's user may write its configuration (`genesis set`)
            assert flags.get("chown") == f"{uid}:{gid}", (sources, destination)

    assert exec_form(one(instructions, "ENTRYPOINT")) == ["genesis"]
    from genesis.cli import cli

    command = exec_form(one(instructions, "CMD"))
    assert command[0] in cli.commands and command[:3] == ["supervise", "--tier", "sniper"]
    assert (ROOT / "tiers" / f"{command[2]}.yaml").is_file()
    assert one(instructions, "EXPOSE") == str(config_port())
    assert one(instructions, "STOPSIGNAL") == "SIGTERM"

    options, check = healthcheck(instructions)
    assert check == ["genesis", "status", "--alive"]
    # a restarted engine replays its journal without beating: the start period covers that
    assert seconds(options["start-period"]) >= 60 and seconds(options["timeout"]) >= 5
    assert seconds(options["interval"]) >= 3   # longer than the heartbeat's 3 s window


def test_the_image_build_copies_everything_the_wheel_and_the_configuration_need():
    instructions = dockerfile()
    # the build stage makes the wheel (compiling the engine's modules) from the copied sources
    build = next(i for i, (word, rest) in enumerate(instructions) if word == "RUN" and "pip wheel" in rest)
    words = instructions[build][1].split("&&")[0].split()
    source, wheels = words[-1], words[words.index("--wheel-dir") + 1]
    copied = set()
    for sources, destination, _ in copies(instructions[:build]):
        assert destination.startswith(source)
        copied |= set(sources)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    hatch = project["tool"]["hatch"]["build"]
    needed = {"pyproject.toml", project["project"]["readme"], *hatch["targets"]["wheel"]["packages"],
              *hatch["targets"]["wheel"]["force-include"]}
    if "custom" in hatch.get("hooks", {}):
        needed.add("hatch_build.py")
    assert needed <= copied, needed - copied
    # the image installs that wheel, brought over from the build stage
    stages = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    assert len(stages) == 2 and stages[0] < build < stages[1]
    assert instructions[stages[0]][1].split()[-1] == "build"
    brought = [(sources, destination) for sources, destination, flags in copies(instructions[stages[1]:])
               if flags.get("from") == "build"]
    assert brought == [([wheels], wheels)]
    install = next(rest for word, rest in instructions[stages[1]:] if word == "RUN" and "pip install" in rest)
    assert f"pip install {wheels}/*.whl" in install

    # the configuration folder holds every file the configuration is made of
    from genesis.config.snapshot import CONFIG_GLOBS

    config = env_of(instructions)["GENESIS_CONFIG"]
    in_config = {s for sources, destination, _ in copies(instructions) if destination.startswith(config)
                 for s in sources}
    tops = {glob.split("/")[0] for glob in CONFIG_GLOBS}
    assert tops <= in_config, tops - in_config

    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]

    def excluded(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/")) or
                   fnmatch.fnmatch(Path(path).name, p.removeprefix("**/")) for p in ignored)

    for sources, _, flags in copies(instructions):
        if flags.get("from"):
            continue   # from a build stage, not the build context
        for path in sources:
            assert (ROOT / path).exists() and not excluded(path), path   # in the build context
    for path in (".venv", ".git", "genesis/__pycache__", "genesis.db", "genesis.db-wal", "logs", "genesis-live",
                 ".env", "logs/alerts.jsonl", "genesis/_compiled"):
        assert excluded(path), path


def dockerfile_sandbox(tmp_path: Path, port: int) -> tuple[Path, dict]:
    """The image's layout in tmp: its configuration folder built from the Dockerfile's COPY
    lines (with the metrics on `port`), its working folder, its environment."""
    instructions = dockerfile()
    env = env_of(instructions)
    config = tmp_path / "config"
    for sources, destination, _ in copies(instructions):
        if not destination.startswith(env["GENESIS_CONFIG"]):
            continue
        target = config / destination[len(env["GENESIS_CONFIG"]):].strip("/")
        for path in sources:
            if (ROOT / path).is_dir():
                shutil.copytree(ROOT / path, target)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / path, target / path)
    settings = config / "genesis.yaml"
    text = settings.read_text()
    for old, new in {**SILENT, f"metrics_endpoint: {{port: {config_port()}}}": f"metrics_endpoint: {{port: {port}}}"
                     }.items():
        assert old in text
        text = text.replace(old, new)
    settings.write_text(text)
    workdir = tmp_path / one(instructions, "WORKDIR").strip("/")
    workdir.mkdir(parents=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GENESIS_")}
    environ.update(env, GENESIS_CONFIG=str(config))
    return workdir, environ


def as_run(argv: list[str]) -> list[str]:
    assert argv[0] == "genesis"
    return [*GENESIS, *argv[1:]]


def wait_for_exit_code(argv, cwd, env, code: int, timeout: float) -> subprocess.CompletedProcess:
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
        if result.returncode == code or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_the_image_command_trades_and_its_healthcheck_says_so_until_docker_stop(tmp_path):
    """ENTRYPOINT + CMD run in the image's working folder with its environment: the
    supervised paper engine journals into /data, serves its metrics on the loopback, the
    HEALTHCHECK command answers 0 while it trades; SIGTERM (`docker stop`) stops it
    cleanly within the grace period and the HEALTHCHECK then answers 1."""
    instructions = dockerfile()
    port = free_port()
    workdir, env = dockerfile_sandbox(tmp_path, port)
    _, check = healthcheck(instructions)
    check = as_run(check)
    before = subprocess.run(check, cwd=workdir, env=env, capture_output=True, text=True, timeout=60)
    assert before.returncode == 1 and before.stdout.startswith("not running: no journal"), before

    entry = exec_form(one(instructions, "ENTRYPOINT")) + exec_form(one(instructions, "CMD"))
    engine = subprocess.Popen(as_run(entry), cwd=workdir, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        alive = wait_for_exit_code(check, workdir, env, 0, timeout=120)
        assert alive.returncode == 0 and alive.stdout.startswith("running: last heartbeat"), alive
        assert (workdir / "genesis.db").is_file()       # the journal is on the volume
        metrics = scrape(port)                          # served on 127.0.0.1 (deploy/prometheus.yml)
        assert metrics[("genesis_equity_usd", ())] == 1000.0
    finally:
        engine.send_signal(signal.SIGTERM)              # what `docker stop` sends (STOPSIGNAL)
        try:
            output, _ = engine.communicate(timeout=30)  # compose's stop_grace_period
        except subprocess.TimeoutExpired:
            os.killpg(engine.pid, signal.SIGKILL)
            raise
    assert engine.returncode == 128 + signal.SIGTERM, output
    assert "the journal is saved" in output
    time.sleep(3.2)                                     # past the 3 s heartbeat window
    after = subprocess.run(check, cwd=workdir, env=env, capture_output=True, text=True, timeout=60)
    assert after.returncode == 1 and after.stdout.startswith("not running: last heartbeat"), after


# ---------------------------------------------------------------- genesis status --alive

def test_status_alive_answers_0_while_a_paper_engine_runs_and_1_once_it_is_killed(tmp_path):
    no_endpoint = {"metrics_endpoint: {port: 9464}": "metrics_endpoint: {port: null}"}
    config = edited_copy(tmp_path, {"genesis.yaml": {**SILENT, **no_endpoint}})
    db = f"sqlite:///{tmp_path / 'journal.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENESIS_")}

    def alive() -> subprocess.CompletedProcess:
        return subprocess.run([*GENESIS, "status", "--alive", "--db", db], capture_output=True, text=True,
                              timeout=60, env=env, cwd=tmp_path)

    assert alive().returncode == 1
    engine = subprocess.Popen([*GENESIS, "run", "--tier", "sniper", "--speed", "1", "--db", db, "--config",
                               str(config)], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while (result := alive()).returncode != 0 and time.monotonic() < deadline:
            assert engine.poll() is None, "the engine ended"
            time.sleep(0.5)
        assert result.returncode == 0, result
        assert re.fullmatch(r"running: last heartbeat \d+\.\d s ago\n", result.stdout), result.stdout
        time.sleep(1.0)
        assert alive().returncode == 0                  # it keeps beating
        status = subprocess.run([*GENESIS, "status", "--db", db], capture_output=True, text=True, timeout=60,
                                env=env, cwd=tmp_path)
        assert status.returncode == 0 and "run 1 (paper, not finished), tier sniper" in status.stdout, status
    finally:
        os.killpg(engine.pid, signal.SIGKILL)          # no clean stop: the last heartbeat stays in the journal
        engine.wait(timeout=30)
    time.sleep(3.2)
    result = alive()
    assert result.returncode == 1, result
    assert re.fullmatch(r"not running: last heartbeat \d+ s ago\n", result.stdout), result.stdout


def test_status_alive_answers_1_when_the_journal_cannot_be_reached(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENESIS_")}
    env["PGCONNECT_TIMEOUT"] = "5"
    for db, said in ((f"sqlite:///{tmp_path / 'none.db'}", "not running: no journal at"),
                     ("postgresql+psycopg://genesis@127.0.0.1:1/genesis", "not running: the journal")):
        result = subprocess.run([*GENESIS, "status", "--alive", "--db", db], capture_output=True, text=True,
                                timeout=60, env=env, cwd=tmp_path)
        assert result.returncode == 1 and result.stdout.startswith(said) and not result.stderr, result


# ---------------------------------------------------------------- docker-compose.yml

def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def volume_mounts(service: dict) -> dict:
    """{target: source} of a service's short-syntax volumes."""
    mounts = {}
    for item in service.get("volumes", []):
        source, target = item.split(":")[:2]
        mounts[target] = source
    return mounts


def test_compose_runs_genesis_with_postgresql_prometheus_and_grafana():
    spec = compose()
    services = spec["services"]
    assert {"genesis", "postgres", "prometheus", "grafana"} <= set(services)
    genesis, postgres = services["genesis"], services["postgres"]
    assert genesis["build"] == "." and (ROOT / "Dockerfile").is_file()
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name

    # the engine, supervised, on the PostgreSQL journal of the postgres service
    command = genesis["command"]
    assert command[0] == "supervise"
    db = option(command, "--db")
    url = urlsplit(db)
    assert url.scheme == "postgresql+psycopg" and url.hostname == "postgres" and url.password is None
    assert url.username == postgres["environment"]["POSTGRES_USER"] == "genesis"
    assert url.path == "/" + postgres["environment"]["POSTGRES_DB"]
    assert option(command, "--mode") == "${GENESIS_MODE:-paper}"          # paper unless asked
    assert option(command, "--confirm") == "${GENESIS_CONFIRM:-no}"       # live refuses unless confirmed
    assert genesis["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert genesis["healthcheck"]["test"] == ["CMD", "genesis", "status", "--alive", "--db", db]
    assert seconds(genesis["stop_grace_period"]) >= 30
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert postgres["image"].startswith("postgres:")

    # volumes: every named one declared; the engine's working folder (input logs, notification
    # log) and the database on volumes
    declared = set(spec["volumes"])
    for name, service in services.items():
        for target, source in volume_mounts(service).items():
            if not source.startswith((".", "/")):
                assert source in declared, (name, source)
    assert volume_mounts(genesis)["/data"] in declared and volume_mounts(genesis)["/config"] in declared
    # backups on a volume of their own, where the engine writes them: backup.folder (default
    # `backups`) is taken from the working folder when the journal is on a server database
    settings = yaml.safe_load((ROOT / "genesis.yaml").read_text())
    schema = json.loads((ROOT / "schema" / "settings.schema.json").read_text())
    folder = settings.get("backup", {}).get("folder") or \
        schema["properties"].get("backup", {}).get("properties", {}).get("folder", {}).get("default", "backups")
    assert volume_mounts(genesis)[f"/data/{folder}"] in declared
    instructions = dockerfile()
    assert f"/data/{folder}" in " ".join(rest for word, rest in instructions if word == "RUN" and "mkdir" in rest)
    assert volume_mounts(postgres)["/var/lib/postgresql/data"] in declared
    assert volume_mounts(services["prometheus"])["/prometheus"] in declared
    assert volume_mounts(services["grafana"])["/var/lib/grafana"] in declared


SECRET = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|_URL$")


def test_compose_holds_no_secret_only_references_to_the_environment():
    text = (ROOT / "docker-compose.yml").read_text()
    spec = compose()
    for name, service in spec["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+(:[-?][^}]*)?\}", str(value)), (name, key, value)
    assert spec["services"]["genesis"]["environment"]["PGPASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert spec["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    for url in re.findall(r"[a-z+]+://\S+", text):
        assert urlsplit(url.rstrip('",')).password is None, url
    # every variable the file reads is listed (empty) in the example .env, and nothing more
    example = (ROOT / "deploy" / "compose.env.example").read_text()
    listed = dict(line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#"))
    used = set(re.findall(r"\$\{([A-Z_]+)", text))
    assert used <= set(listed), used - set(listed)
    assert set(listed) - used == {"COMPOSE_PROJECT_NAME"}
    for key, value in listed.items():
        if SECRET.search(key):
            assert value == "", key


def test_prometheus_in_compose_scrapes_the_port_genesis_serves_from_the_engine_network():
    services = compose()["services"]
    prometheus, genesis = services["prometheus"], services["genesis"]
    mounted = volume_mounts(prometheus)
    config_file = option_value(prometheus["command"], "--config.file")
    scrape_file = ROOT / mounted[config_file]
    assert scrape_file.is_file()
    scrape_config = yaml.safe_load(scrape_file.read_text())
    [target] = [t for job in scrape_config["scrape_configs"] if job["job_name"] == "genesis"
                for group in job["static_configs"] for t in group["targets"]]
    host, _, port = target.rpartition(":")
    assert int(port) == config_port()                   # the port of the configuration baked into the image
    # genesis serves on the loopback only (the schema allows nothing else), so Prometheus must
    # share the engine's network namespace, held by a container that is never restarted
    schema = json.loads((ROOT / "schema" / "settings.schema.json").read_text())
    hosts = schema["properties"]["metrics_endpoint"]["properties"]["host"]
    assert host == hosts["default"] == "127.0.0.1" and set(hosts["enum"]) <= {"127.0.0.1", "localhost", "::1"}
    assert prometheus["network_mode"] == genesis["network_mode"] == "service:genesis-net"
    holder = services["genesis-net"]
    assert "build" not in holder and holder["image"].startswith("registry.k8s.io/pause:")
    assert holder["ports"] == ["127.0.0.1:9090:9090"]   # the Prometheus UI, on the host's loopback


def option_value(command: list[str], name: str) -> str:
    return next(c.split("=", 1)[1] for c in command if c.startswith(name + "="))


def test_grafana_in_compose_is_provisioned_with_prometheus_and_the_dashboard():
    services = compose()["services"]
    grafana = services["grafana"]
    mounted = volume_mounts(grafana)
    for target, source in mounted.items():
        if source.startswith("."):
            assert (ROOT / source).exists(), source
    provisioning = ROOT / mounted["/etc/grafana/provisioning"]
    [datasource] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert datasource["type"] == "prometheus" and datasource["isDefault"]
    url = urlsplit(datasource["url"])
    # Prometheus listens on 9090 (its default: no --web.listen-address) in genesis-net's namespace
    assert not any(c.startswith("--web.listen-address") for c in services["prometheus"]["command"])
    assert (url.hostname, url.port) == (services["prometheus"]["network_mode"].split(":", 1)[1], 9090)
    [provider] = yaml.safe_load((provisioning / "dashboards" / "genesis.yml").read_text())["providers"]
    assert provider["type"] == "file"
    dashboards = {target: source for target, source in mounted.items() if source.endswith(".json")}
    [(target, source)] = dashboards.items()
    assert str(Path(target).parent) == provider["options"]["path"]
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == target
    dashboard = json.loads((ROOT / source).read_text())
    assert dashboard["panels"] and all(p["datasource"]["type"] == "prometheus" for p in dashboard["panels"])
    assert grafana["ports"] == ["127.0.0.1:3000:3000"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")


# ---------------------------------------------------------------- with Docker

def compose_command() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_accepts_the_file_and_refuses_to_start_without_the_passwords():
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    env = {k: v for k, v in os.environ.items() if not re.match(r"POSTGRES_|GRAFANA_|GENESIS_|COMPOSE_", k)}
    secrets = {"POSTGRES_PASSWORD": "pg-test", "GRAFANA_ADMIN_PASSWORD": "gf-test"}
    ok = subprocess.run([*command, "config"], cwd=ROOT, env={**env, **secrets}, capture_output=True, text=True,
                        timeout=120)
    assert ok.returncode == 0, ok.stderr
    resolved = yaml.safe_load(ok.stdout)["services"]
    assert resolved["genesis"]["command"][:6] == ["supervise", "--tier", "sniper", "--mode", "paper", "--confirm"]
    missing = subprocess.run([*command, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode != 0 and "POSTGRES_PASSWORD" in missing.stderr + missing.stdout


def docker_daemon() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def test_the_image_builds_and_runs_as_its_user():
    if not docker_daemon():
        pytest.skip("no Docker daemon here (`docker info` fails): the image is not built")
    tag = f"genesis-test:{os.getpid()}"
    build = subprocess.run(["docker", "build", "-t", tag, str(ROOT)], capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stderr[-3000:]
    try:
        inspected = json.loads(subprocess.run(["docker", "image", "inspect", tag], capture_output=True, text=True,
                                              check=True).stdout)[0]["Config"]
        assert inspected["User"] == "10001:10001" and inspected["Entrypoint"] == ["genesis"]
        assert inspected["Healthcheck"]["Test"] == ["CMD", "genesis", "status", "--alive"]
        who = subprocess.run(["docker", "run", "--rm", "--entrypoint", "id", tag, "-u"], capture_output=True,
                             text=True, timeout=120)
        assert who.stdout.strip() == "10001"
        valid = subprocess.run(["docker", "run", "--rm", tag, "validate"], capture_output=True, text=True,
                               timeout=300)
        assert valid.returncode == 0, valid.stdout + valid.stderr
        dead = subprocess.run(["docker", "run", "--rm", tag, "status", "--alive"], capture_output=True, text=True,
                              timeout=120)
        assert dead.returncode == 1 and dead.stdout.startswith("not running: no journal at sqlite:///genesis.db")
    finally:
        subprocess.run(["docker", "image", "rm", "-f", tag], capture_output=True)
