"""kube-insight-logserver {api,worker,queue-status,requeue-failed}: settings in, one process out.

`query` and `insert` are HTTP clients of a running API: they take only their own arguments and
--server, never the server settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from cli import insert_command, query_command
from common.settings import Settings, SettingsError, add_options, build_settings, example_secrets

DESCRIPTION = (
    "Kubernetes pod log service: fluent-bit batches -> Redis queue (RQ) -> Cassandra. Every option "
    "can also be set by the environment variable shown; a flag wins over the variable."
)
# Client subcommands: each module gives add_arguments(parser) and run(args) -> exit status.
CLIENT_COMMANDS = {"query": query_command, "insert": insert_command}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kube-insight-logserver", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, scope, help_text in (
        ("api", "api", "serve the HTTP API (POST/GET /write, /query, /metrics)"),
        ("worker", "worker", "drain the queue into Cassandra (run several side by side to scale)"),
        ("queue-status", "common", "print queued, in-progress and failed batch counts as JSON"),
        ("requeue-failed", "common", "put every failed batch back on the queue"),
    ):
        add_options(commands.add_parser(name, help=help_text, description=help_text), scope)
    for name, module in CLIENT_COMMANDS.items():
        module.add_arguments(commands.add_parser(name, help=module.HELP, description=module.HELP))
    return parser


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("cassandra").setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in CLIENT_COMMANDS:
        return CLIENT_COMMANDS[args.command].run(args)
    scope = args.command if args.command in ("api", "worker") else "common"
    try:
        settings = build_settings(vars(args), os.environ, scope)
    except SettingsError as error:
        print(f"kube-insight-logserver {args.command}: {error}", file=sys.stderr)
        return 2
    _configure_logging(settings)
    for env_name in example_secrets(settings):
        logging.getLogger("cli").warning("event=example_secret_in_use setting=%s", env_name)
    if args.command == "api" and settings.api_processes > 1:
        # Imported before anything imports prometheus_client: it sets up the metrics' multiprocess mode.
        from api.supervisor import run_supervised

        run_supervised(settings)
    elif args.command == "api":
        from api.server import run_api

        run_api(settings)
    elif args.command == "worker":
        from common.store import StoreConfigError
        from workers.runner import run_worker

        try:
            run_worker(settings)
        except StoreConfigError as error:
            print(f"kube-insight-logserver worker: {error}", file=sys.stderr)
            return 2
    else:
        from common.queue import BatchQueue, QueueUnavailable, connect_redis

        queue = BatchQueue(connect_redis(settings), settings)
        try:
            if args.command == "queue-status":
                status = queue.status()
                print(json.dumps({"queued": status.queued, "in_progress": status.started,
                                  "failed": status.failed, "workers": status.workers}))
            else:
                print(json.dumps({"requeued": queue.requeue_failed()}))
        except QueueUnavailable as error:
            print(f"kube-insight-logserver {args.command}: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
