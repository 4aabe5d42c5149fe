#!/usr/bin/env bash
# Refresh requirements.lock (the service) and requirements-test.lock (the service and its tests): the newest versions that pyproject.toml's ranges allow, with exact
# versions and hashes for the service, its tests and the package build (`make lock`).
# Run it when you mean to take new versions (a security fix, a feature), then `make test`, and
# commit the lock together with whatever the new versions needed. Installs never resolve: they
# take requirements.lock as it is (scripts/install.sh, Dockerfile).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# The lock tool itself is pinned, in a virtualenv of its own, so that it never enters the service's.
UV_VERSION=0.13.9
tools=${LOCK_TOOLS_VENV:-$root/.venv-lock}
if [ ! -x "$tools/bin/uv" ] || [ "$("$tools/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q "uv==$UV_VERSION"
fi
compile() { "$tools/bin/uv" pip compile --universal --python-version 3.11 --generate-hashes \
  --custom-compile-command "make lock" "$@"; }
# No arguments: every dependency to the newest its range allows; else uv's own, e.g.
# `--upgrade-package rq` to move one and keep the others.
[ $# -gt 0 ] || set -- --upgrade
# The service (what the Dockerfile installs), then the tests on top of exactly those versions.
compile pyproject.toml scripts/lock/build.in "$@" --output-file requirements.lock
compile pyproject.toml scripts/lock/build.in --extra test "$@" \
  --constraints requirements.lock --output-file requirements-test.lock
echo "[lock] requirements.lock and requirements-test.lock refreshed; now run make test and commit them"
