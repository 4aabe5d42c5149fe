"""Realistic fluent-bit batches for the benchmark: access logs, JSON logs, stack traces, non-ASCII;
as POST /write bodies and as the Loki push bodies of the same records."""

from __future__ import annotations

import http.client
import json
import random

import cramjam

from common.proto.push_pb2 import PushRequest
from common.records import BatchDecoder, LogRow
from common.timestamps import format_rfc3339_ns, parse_rfc3339_ns

ACCESS = '10.46.{a}.{b} - - [14/Mar/2026:12:00:{s:02d} +0000] "GET /api/v1/items/{n}?page={p} HTTP/1.1" {code} {size} "-" "Mozilla/5.0 (X11; Linux x86_64) kube-probe/1.29"\n'
JSON_LOG = '{{"level":"{level}","ts":"2026-03-14T12:00:{s:02d}.{ms:03d}Z","logger":"orders.service","msg":"processed order {n}","order_id":"{n:08d}","duration_ms":{d},"user":"ünïcödé-{p}"}}\n'
TRACE = [
    'Traceback (most recent call last):\n',
    '  File "/app/orders/service.py", line {n}, in handle\n',
    '    result = self.repository.save(order, retries={p})\n',
    '  File "/app/orders/repository.py", line 88, in save\n',
    "psycopg2.OperationalError: could not connect to server: Connection refused — 日本語のエラー\n",
]


def lines(rng: random.Random):
    while True:
        kind = rng.random()
        values = dict(a=rng.randrange(256), b=rng.randrange(256), s=rng.randrange(60), n=rng.randrange(10**6),
                      p=rng.randrange(100), code=rng.choice([200, 200, 200, 404, 500]), size=rng.randrange(10**5),
                      level=rng.choice(["info", "info", "warn", "error"]), ms=rng.randrange(1000), d=rng.randrange(900))
        if kind < 0.6:
            yield ACCESS.format(**values), "stdout"
        elif kind < 0.9:
            yield JSON_LOG.format(**values), "stdout"
        else:
            for frame in TRACE:
                yield frame.format(**values), "stderr"


def batch(namespace: str, pods: int, size: int, start_ns: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    source = lines(rng)
    records = []
    for i in range(size):
        log, stream = next(source)
        pod = f"web-{seed % 1000:03d}-{i % pods}"
        ts = start_ns + i * 1000
        records.append({
            "date": ts / 1e9, "time": format_rfc3339_ns(ts), "log": log, "stream": stream,
            "kubernetes": {"namespace_name": namespace, "pod_name": pod, "container_name": "app",
                           "host": "node-1", "pod_id": "0f5225d5-4e9d-11e8-8b6b-02425d6e035a",
                           "docker_id": "e8b89cc4e292827b2f521c4c7d7b8807cf72023565b9ac5f89f8186420325d74",
                           "labels": {"app": "web", "pod-template-hash": "7d9f8"}},
        })
    return records


def batches(namespace: str, count: int, size: int = 1000, pods: int = 4, start_ns: int = 1_773_489_600 * 10**9):
    """`count` distinct batches of `size` records; record timestamps never repeat across batches."""
    return [batch(namespace, pods, size, start_ns + n * size * 1000, n) for n in range(count)]


def bodies(namespace: str, count: int, size: int = 1000, pods: int = 4, start_ns: int = 1_773_489_600 * 10**9):
    """`count` distinct JSON bodies of `size` records (POST /write)."""
    return [json.dumps(records).encode() for records in batches(namespace, count, size, pods, start_ns)]


def decoded_rows(payloads: list[bytes], max_line_bytes: int) -> list[LogRow]:
    """POST /write bodies as the API decodes them: their rows, in order (to write them straight to a store)."""
    decoder = BatchDecoder(max_line_bytes)
    return [row for body in payloads for row in decoder.decode(body, "application/json").rows]


def _loki_entry(record: dict) -> tuple[dict[str, str], int, str, dict[str, str]]:
    """A record as a Loki client labels it: (stream labels, ts_ns, line, structured metadata)."""
    k8s = record["kubernetes"]
    labels = {"namespace": k8s["namespace_name"], "pod": k8s["pod_name"], "container": k8s["container_name"],
              "stream": record["stream"]}
    return labels, parse_rfc3339_ns(record["time"]), record["log"], {"pod_id": k8s["pod_id"], "node": k8s["host"]}


def loki_json_body(records: list[dict]) -> bytes:
    """The records as fluent-bit's `loki` output sends them: one stream per record, each entry
    with its structured metadata (`structured_metadata pod_id=..., node=...`)."""
    streams = []
    for record in records:
        labels, ts_ns, line, metadata = _loki_entry(record)
        streams.append({"stream": labels, "values": [[str(ts_ns), line, metadata]]})
    return json.dumps({"streams": streams}, separators=(",", ":")).encode()


def loki_protobuf_body(records: list[dict]) -> bytes:
    """The records as Promtail and Alloy send them: a snappy logproto.PushRequest with one stream
    per label set, in order of first appearance."""
    request = PushRequest()
    streams = {}
    for record in records:
        labels, ts_ns, line, metadata = _loki_entry(record)
        selector = "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())) + "}"
        if selector not in streams:
            streams[selector] = request.streams.add(labels=selector)
        entry = streams[selector].entries.add(line=line)
        entry.timestamp.seconds, entry.timestamp.nanos = divmod(ts_ns, 10**9)
        for name, value in metadata.items():
            entry.structuredMetadata.add(name=name, value=value)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def post_write(connection: http.client.HTTPConnection | None, port: int, body: bytes):
    """POST one JSON batch to 127.0.0.1:`port`/write on a kept-alive connection (opened when None).
    Returns (connection, response), or (None, None) when the connection failed: the caller
    decides whether and when to send again."""
    if connection is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/write", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException):
        connection.close()
        return None, None
    return connection, response
