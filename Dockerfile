# Genesis: install the package and validate the bundled configuration by default.
FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir . && useradd --create-home genesis
USER genesis
# `docker run IMAGE` validates the configuration baked into the image; mount your own
# folder and pass `validate --config /config` to check another one.
CMD ["genesis", "validate"]
