"""Records as fluent-bit posts them to /write, and Loki push bodies, built for tests."""

from __future__ import annotations

import json

import cramjam

from common.proto import push_pb2
from common.timestamps import NS_PER_SECOND, format_rfc3339_ns

NOON = "2026-03-14T12:00:00Z"


def kubernetes(namespace: str = "default", pod: str = "web-1", container: str = "app", **metadata) -> dict:
    """The `kubernetes` object fluent-bit's kubernetes filter adds: the three names, then any
    further metadata (host=..., pod_id=..., labels=...)."""
    return {"namespace_name": namespace, "pod_name": pod, "container_name": container, **metadata}


def fluent_bit_record(namespace: str = "default", pod: str = "web-1", container: str = "app", *,
                      time: str | int | None = NOON, log: str | None = "hello\n", stream: str | None = "stdout",
                      metadata: dict | None = None, **fields) -> dict:
    """One record: its container's names (with any further kubernetes `metadata`), time, log, stream.

    `time` is RFC 3339 text as sent, or an int of nanoseconds since the epoch (sent as RFC 3339).
    None leaves `time`, `log` or `stream` out. Further keyword arguments are more top-level fields
    (date=..., offset=..., log_file=...); `kubernetes=` replaces the names object.
    """
    if isinstance(time, int) and not isinstance(time, bool):
        time = format_rfc3339_ns(time)
    record = {"kubernetes": kubernetes(namespace, pod, container, **(metadata or {})),
              "time": time, "log": log, "stream": stream}
    return {**{key: value for key, value in record.items() if value is not None}, **fields}


def without(mapping: dict, *keys: str) -> dict:
    """A copy of `mapping` lacking `keys`."""
    return {k: v for k, v in mapping.items() if k not in keys}


def loki_json_push(*streams: tuple[dict, list]) -> bytes:
    """A Loki JSON push body; each stream is (labels, [(ts_ns, line[, structured metadata])...])."""
    return json.dumps({"streams": [
        {"stream": labels, "values": [[str(ts_ns), line, *rest] for ts_ns, line, *rest in entries]}
        for labels, entries in streams
    ]}).encode()


def loki_protobuf_push(*streams: tuple[str, list]) -> bytes:
    """A snappy logproto.PushRequest, as Promtail sends it; each stream is (label selector,
    [(ts_ns, line[, structured metadata])...])."""
    request = push_pb2.PushRequest()
    for labels, entries in streams:
        stream = request.streams.add(labels=labels)
        for ts_ns, line, *metadata in entries:
            entry = stream.entries.add(line=line)
            entry.timestamp.seconds, entry.timestamp.nanos = divmod(ts_ns, NS_PER_SECOND)
            for name, value in (metadata[0] if metadata else {}).items():
                entry.structuredMetadata.add(name=name, value=value)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))
