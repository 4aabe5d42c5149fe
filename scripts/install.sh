#!/usr/bin/env bash
# Install what the stack and the tests need, skipping whatever is already there:
# a virtualenv with the locked dependencies and the package (.venv), Debian's redis-server, Debian's prometheus (for promtool,
# which the tests run on deploy/prometheus/ and on the live /metrics), Debian's chromium and chromium-driver (the
# browser tests of the UI, tests/ui/), Cassandra from Maven Central.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
log() { printf '[install] %s\n' "$*"; }

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
# The package builds common._native from native/ with cargo (Rust, by rustup), crates as Cargo.lock has them.
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null 2>&1; then
  log "cargo not found: the package compiles common._native (native/) with Rust; install it with rustup"
  exit 1
fi
# Exact versions and hashes from the lock (make lock refreshes it); nothing is resolved here.
stamp=.venv/.installed-$(cat requirements-test.lock pyproject.toml native/Cargo.toml native/Cargo.lock native/src/*.rs | md5sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  log "installing the locked dependencies (requirements-test.lock) and the package into .venv (cargo builds common._native)"
  .venv/bin/pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements-test.lock
  .venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  .venv/bin/pip check
  rm -f .venv/.installed-*; touch "$stamp"
fi

if ! command -v redis-server >/dev/null 2>&1; then
  log "installing Debian's redis-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq redis-server >/dev/null
fi

if ! command -v promtool >/dev/null 2>&1; then
  # Only promtool is needed. Without --no-install-recommends apt would add
  # prometheus-node-exporter, which listens on 9100, the worker's metrics port.
  log "installing Debian's prometheus (for promtool)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  # The browser tests (tests/ui/) drive Debian's build through selenium: no browser is downloaded.
  log "installing Debian's chromium and chromium-driver"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
  log "installing Java 17 and Maven"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq openjdk-17-jre-headless maven >/dev/null
fi
scripts/cassandra.sh install
log "done"
