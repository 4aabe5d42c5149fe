#!/usr/bin/env bash
# Regenerate common/proto/push_pb2.py from common/proto/push.proto.
#
# grpcio-tools (protoc as a Python package) is a build-time tool, not a dependency of the service:
# it is installed into a throwaway venv outside the repository. The generated module needs only
# the `protobuf` runtime, whose version must be at least the protoc version printed below.
#
#     scripts/gen-proto.sh              # venv in /tmp/protoc-venv (created when missing)
#     PROTOC_VENV=/somewhere scripts/gen-proto.sh
set -euo pipefail

cd "$(dirname "$0")/.."
venv="${PROTOC_VENV:-/tmp/protoc-venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet grpcio-tools
fi
"$venv/bin/python" -m grpc_tools.protoc --version
# -I . keeps the descriptor's file name unique: common/proto/push.proto.
"$venv/bin/python" -m grpc_tools.protoc -I . --python_out=. --pyi_out=. common/proto/push.proto
echo "event=proto_generated module=common/proto/push_pb2.py"
