"""The Prometheus endpoint of `genesis run` (prometheus-client): the engine's figures,
copied into gauges and counters on the engine's own thread at each status tick
(`update`), served by the library's HTTP thread on 127.0.0.1. A scrape never touches
the engine, so it can neither slow nor disturb a decision. Every metric: docs/metrics.md."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import HistogramMetricFamily

MODES = ("ACTIVE", "REDUCING", "HALTED")
FIGURES = (   # (metric name, engine metric, help)
    ("genesis_equity_usd", "equity_usd", "Account equity at mid prices, USD"),
    ("genesis_daily_pnl_usd", "daily_pnl_usd", "Profit and loss since 00:00 UTC, USD"),
    ("genesis_drawdown_usd", "drawdown_usd", "Drawdown from the equity peak, USD"),
    ("genesis_drawdown_pct", "drawdown_pct", "Drawdown from the equity peak, percent"),
    ("genesis_exposure_usd", "exposure_usd", "Value of open positions, USD"),
    ("genesis_open_positions", "open_positions", "Open positions"),
    ("genesis_tilt_level", "tilt_level", "Tilt intervention level (0 none, 1 notice, 2 halved sizes, 3 lockout)"),
    ("genesis_rate_limit_used_pct", "rate_limit_used_pct", "Share of the exchange's request-weight limit in use, percent"),
)


class LoopCollector:
    """The run loop's histograms (genesis.observe.loopwatch.LoopWatch), read at each scrape."""

    def __init__(self, watch):
        self.watch = watch

    def collect(self):
        """Prometheus collector protocol: the metric families as of now."""
        for name, text, histogram in (
                ("genesis_event_seconds", "Time one input event took through the pipeline, seconds",
                 self.watch.event_seconds),
                ("genesis_order_round_trip_seconds", "Live: an order's request until the exchange's answer, seconds",
                 self.watch.order_seconds)):
            family = HistogramMetricFamily(name, text)
            family.add_metric([], histogram.buckets(), histogram.sum)
            yield family


class MetricsEndpoint:
    """Gauges and counters of one engine, and the HTTP server that serves them."""

    def __init__(self, watch=None):
        """`watch`: the run loop's LoopWatch, whose lag and histograms are served too."""
        self.registry = CollectorRegistry()
        r = self.registry
        if watch is not None:
            r.register(LoopCollector(watch))
        self.figures = {name: (key, Gauge(name, text, registry=r)) for name, key, text in FIGURES}
        self.mode = Gauge("genesis_trading_state", "1 for the current trading state", ["state"], registry=r)
        self.tier = Gauge("genesis_tier", "1 for the tier being traded", ["tier"], registry=r)
        self.open_orders = Gauge("genesis_open_orders", "Orders sent and not yet done", registry=r)
        self.events = Counter("genesis_events", "Input events processed", registry=r)
        self.firings = Counter("genesis_rule_firings", "Rule firings", ["rule", "severity"], registry=r)
        self.sent = Counter("genesis_notifications_sent", "Notifications delivered", ["channel"], registry=r)
        self.failed = Counter("genesis_notification_failures", "Notifications not delivered after their retries",
                              ["channel"], registry=r)
        self.memory = Gauge("genesis_host_memory_used_pct", "The host's memory in use at the last health probe, %",
                            registry=r)
        self.cpu = Gauge("genesis_host_cpu_used_pct", "The host's CPU in use between the last two health probes, %",
                         registry=r)
        self.disk = Gauge("genesis_journal_disk_free_bytes", "Free disk on the journal's volume at the last health "
                          "probe, bytes", registry=r)
        self.query = Gauge("genesis_journal_query_seconds", "Time of the last health probe's journal query, seconds",
                           registry=r)
        self.lag = Gauge("genesis_event_loop_lag_seconds", "The run loop's worst lag between the last two health "
                         "probes, seconds", registry=r)
        self.write = Gauge("genesis_journal_write_seconds", "The slowest journal write between the last two "
                           "health probes, seconds", registry=r)
        self._seen: dict = {}   # counter key -> value already added (counters only go up)
        self._tier = None
        self.server = None
        self.port = None

    def serve(self, host: str, port: int) -> None:
        """Start the HTTP server (a daemon thread); raises OSError when the port is taken."""
        self.server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self.port = self.server.server_address[1]

    def close(self) -> None:
        """Stop the HTTP server."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def update(self, engine, dispatcher=None, probe=None) -> None:
        """Copy the engine's figures (and the dispatcher's counts, the health probe's last
        reading) into the metrics; call it on the engine's thread, between events."""
        m = engine.metrics.m
        for key, gauge in self.figures.values():
            value = m.get(key)
            if isinstance(value, (int, float)):
                gauge.set(float(value))
        for mode in MODES:
            self.mode.labels(mode).set(1.0 if engine.state.mode == mode else 0.0)
        if engine.tier != self._tier:
            if self._tier is not None:
                self.tier.labels(self._tier).set(0.0)
            self.tier.labels(engine.tier).set(1.0)
            self._tier = engine.tier
        self.open_orders.set(float(len(engine.exchange.open_orders)))
        self._add(self.events, (), engine.stats.events)
        severity = {rule.id: rule.severity for rule in engine.config.rules}
        for rid, count in list(engine.stats.firings.items()):
            self._add(self.firings, (rid, severity.get(rid, "")), count)
        if dispatcher is not None:
            for channel, count in list(dispatcher.sent.items()):
                self._add(self.sent, (channel,), count)
            for channel, count in list(dispatcher.failed.items()):
                self._add(self.failed, (channel,), count)
        reading = None if probe is None else probe.last
        if reading is not None:
            self.memory.set(reading.memory_pct)
            self.cpu.set(reading.cpu_pct)
            self.disk.set(reading.disk_free_mb * 2**20)
            self.query.set(reading.query_ms / 1000.0)
            self.lag.set(reading.loop_lag_ms / 1000.0)
            if reading.write_ms is not None:
                self.write.set(reading.write_ms / 1000.0)

    def _add(self, counter: Counter, labels: tuple, total: float) -> None:
        key = (id(counter), labels)
        step = total - self._seen.get(key, 0)
        if step > 0:
            (counter.labels(*labels) if labels else counter).inc(step)
            self._seen[key] = total
