# Genesis engine image (docs/deployment.md).
#
#   docker build -t genesis .
#   docker run -d --name genesis -v genesis-data:/data genesis                  # supervised paper run
#   docker run --rm -it -v genesis-data:/data genesis run --tier sniper         # the same, unsupervised
#   docker run -d --name genesis -v genesis-data:/data --restart unless-stopped --stop-timeout 30 \
#       -e GENESIS_API_KEY -e GENESIS_API_SECRET \
#       genesis supervise --tier sniper --mode live --confirm live              # live, keys from the environment
#
# /config  the configuration folder (a copy of this checkout's; mount your own over it)
# /data    the working folder and volume: the SQLite journal (genesis.db), the live input
#          logs (genesis-live/), the notification log (logs/alerts.jsonl), backups (backups/)
# Build stage: the wheel, with the engine's hot modules compiled by Cython (hatch_build.py;
# the full image has the C compiler the slim one lacks). Same Python as the image below.
FROM python:3.11 AS build
COPY pyproject.toml hatch_build.py README.md genesis.yaml alerts.yaml strategies.yaml /tmp/genesis-src/
COPY genesis /tmp/genesis-src/genesis
COPY schema /tmp/genesis-src/schema
COPY rules /tmp/genesis-src/rules
COPY tiers /tmp/genesis-src/tiers
RUN pip wheel --no-deps --wheel-dir /tmp/wheels /tmp/genesis-src

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed, unprivileged UID/GID: files on the volumes belong to 10001:10001 on every host.
RUN groupadd --system --gid 10001 genesis \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin genesis

# The package (psycopg 3 for PostgreSQL journals is one of its dependencies); the wheel
# carries the schemas, a copy of the default configuration and the compiled modules.
COPY --from=build /tmp/wheels /tmp/wheels
RUN pip install /tmp/wheels/*.whl && rm -rf /tmp/wheels
# the bundled sample is a real Binance capture: its terms travel with the image
COPY NOTICE /usr/share/doc/genesis-trader/NOTICE

# The configuration the engine runs (GENESIS_CONFIG): writable by the engine's user,
# because `genesis set` writes accepted edits into the tier files.
COPY --chown=10001:10001 genesis.yaml alerts.yaml strategies.yaml /config/
COPY --chown=10001:10001 rules /config/rules
COPY --chown=10001:10001 tiers /config/tiers
ENV GENESIS_CONFIG=/config

# Relative paths in genesis.yaml resolve here: storage.url sqlite:///genesis.db is
# /data/genesis.db, live input logs go to /data/genesis-live/, the log channel to /data/logs/.
# Scheduled backups go to /data/backups (genesis.yaml backup.folder, docs/backup.md),
# where docker-compose.yml mounts a volume of their own.
RUN mkdir -p /data/backups && chown -R 10001:10001 /data
WORKDIR /data
VOLUME ["/data"]

USER 10001:10001

# Prometheus metrics (genesis.yaml metrics_endpoint). The endpoint listens on 127.0.0.1
# inside the container only: scrape it from the container's network namespace
# (docker-compose.yml runs Prometheus there), not through a published port.
EXPOSE 9464

# Healthy while an engine beats on the journal (at least every second while it trades;
# nothing while a restarted engine catches up on its journal, hence the start period).
HEALTHCHECK --interval=30s --timeout=10s --start-period=5m --retries=3 \
    CMD ["genesis", "status", "--alive"]

# `docker stop` sends SIGTERM: the supervisor passes it on once and the engine stops
# cleanly; give it time (`--stop-timeout 30`, compose: stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["genesis"]
CMD ["supervise", "--tier", "sniper"]
