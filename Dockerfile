# syntax=docker/dockerfile:1
# One image for both processes of kube-insight-logserver:
#   docker build -t kube-insight-logserver .
#   docker run -p 8080:8080 -e REDIS_URL=redis://redis:6379/0 -e CASSANDRA_HOSTS=cassandra kube-insight-logserver
#   docker run -e REDIS_URL=... -e CASSANDRA_HOSTS=... kube-insight-logserver worker
# Every option is an environment variable or a flag (`kube-insight-logserver api --help`).

# --- build: install the package and its dependencies into a virtualenv ---
# Base images are pinned to exact versions (a floating tag would change what the same file builds).
# The Rust toolchain that compiles common._native (native/): taken from the official image into the
# build stage only; the runtime image gets the built module, not the compiler.
FROM rust:1.95.0-slim-bookworm AS rust
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:$PATH
COPY --from=rust /usr/local/rustup /usr/local/rustup
COPY --from=rust /usr/local/cargo /usr/local/cargo
# Rust links through the C compiler.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The locked service dependencies first (exact versions and hashes; a layer that changes only with
# the lock), then the package itself without resolving anything.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock
# Only what the package build needs; tests, scripts and local state stay out of the image.
COPY pyproject.toml README.md ./
COPY api/ api/
COPY workers/ workers/
COPY common/ common/
COPY cli/ cli/
COPY ui/ ui/
# The crate, its versions locked (Cargo.lock; setuptools-rust passes --locked).
COPY native/Cargo.toml native/Cargo.lock native/
COPY native/src/ native/src/
# cassandra-driver, msgspec and zstandard come as manylinux wheels (libev is bundled in the
# cassandra-driver wheel); setuptools-rust (locked) builds common._native with cargo.
RUN pip install --no-deps --no-build-isolation . && pip check

# --- runtime: the virtualenv on a clean slim base, run by an unprivileged user ---
FROM python:3.11.14-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 logserver \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin logserver
COPY --from=build /opt/venv /opt/venv
# Numeric, so that Kubernetes runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# 8080: the HTTP API (PORT); 9100: a worker's own /metrics (WORKER_METRICS_PORT).
EXPOSE 8080 9100
# GET /write answers 200 when Redis and Cassandra both answer, 503 otherwise (urlopen raises).
# This probes the API; docker-compose.yml gives the worker its own check.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/write' % os.environ.get('PORT', '8080'), timeout=4)"]
ENTRYPOINT ["kube-insight-logserver"]
CMD ["api"]
