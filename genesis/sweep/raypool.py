"""Where trials run on a Ray cluster: `RayPool` sends each trial to the cluster at an
address as a Ray task. It has the local pool's one method, `run(specs)`, and imports
ray only when entered, so that ray stays an optional extra (`genesis-trader[ray]`).
The workers import `genesis.sweep.trials.run_trial` themselves: genesis must be
installed on every node, the same version as here."""
from __future__ import annotations

import ipaddress
import logging
import os
import socket

from genesis.sweep.trials import TrialResult, TrialSpec, run_trial

CONNECT_TIMEOUT_S = 5.0   # how long the cluster's address may take to accept a connection
# Ray on Linux swaps a loopback address for the machine's own; this (read when ray is imported) keeps 127.0.0.1
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class ClusterError(Exception):
    """The cluster cannot run the sweep: ray is missing, the address is wrong or unreachable, or a trial was lost."""


def parse_address(address: str) -> tuple[str, int]:
    """(host, port) of `HOST:PORT`, the address of the cluster's head (its GCS port, 6379 by default)."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"'{address}' is not HOST:PORT (the Ray head's address, e.g. 127.0.0.1:6379)")
    return host, int(port)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _reachable(host: str, port: int, timeout: float) -> None:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ClusterError(f"cannot reach a Ray head at {host}:{port} within {timeout:g} s "
                           f"({exc.strerror or type(exc).__name__}): is `ray start --head` running there") from None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


class RayPool:
    """Trials as Ray tasks on the cluster at `address` (HOST:PORT); `workers` is the cluster's CPU count."""

    def __init__(self, address: str, connect_timeout: float = CONNECT_TIMEOUT_S):
        self.address = address
        self.host, self.port = parse_address(address)
        self.connect_timeout = connect_timeout
        self.workers: int | None = None
        self._ray = None
        self._task = None

    def __enter__(self) -> RayPool:
        if _is_loopback(self.host):   # else ray.init would look for the head on the machine's address and wait
            os.environ.setdefault(LOCAL_ONLY_ENV, "0")
        try:
            import ray  # noqa: PLC0415 - optional: only a sweep with --ray needs it
        except ImportError:
            raise ClusterError("--ray needs ray on this machine: pip install 'genesis-trader[ray]'") from None
        _reachable(self.host, self.port, self.connect_timeout)
        try:
            ray.init(address=f"{self.host}:{self.port}", log_to_driver=False, logging_level=logging.WARNING)
        except Exception as exc:  # noqa: BLE001 - ray raises several kinds; each becomes one clear line
            raise ClusterError(f"could not join the Ray cluster at {self.address}: {_first_line(exc)}") from None
        self._ray = ray
        self.workers = int(ray.cluster_resources().get("CPU", 0)) or None
        self._task = ray.remote(num_cpus=1)(run_trial)
        return self

    def __exit__(self, *_exc) -> None:
        if self._ray is not None:
            self._ray.shutdown()
            self._ray = None

    def run(self, specs: list[TrialSpec], on_result=None) -> list[TrialResult]:
        """Run the trials on the cluster; `on_result(result)` is called as each finishes (in order)."""
        ray = self._ray
        futures = [self._task.remote(spec) for spec in specs]
        results = []
        for spec, future in zip(specs, futures):
            try:
                result = ray.get(future)
            except ray.exceptions.RayError as exc:   # the driver's shutdown ends the trials still queued
                raise ClusterError(f"trial {spec.number} did not run on the cluster: {_first_line(exc)} "
                                   "(the workers need genesis installed, the same version)") from None
            results.append(result)
            if on_result is not None:
                on_result(result)
        return results
