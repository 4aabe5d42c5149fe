"""The record model: fluent-bit's Kubernetes records in, validated log rows out.

Typed msgspec decoders validate in C. A batch is first decoded whole (the fast path); when that
fails, it is decoded element by element so that one bad record costs only itself: its index and
reason are reported and its valid neighbours are kept.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import msgspec

from common.timestamps import TimestampError, date_value_to_ns, parse_rfc3339_ns

# Kubernetes names are at most 253 characters; the bound also keeps partition keys small.
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
MAX_REPORTED_ERRORS = 10


class KubernetesMeta(msgspec.Struct):
    namespace_name: Name
    pod_name: Name
    container_name: Name
    host: str | None = None
    pod_id: str | None = None
    docker_id: str | None = None
    labels: dict[str, str] | None = None


class FluentBitRecord(msgspec.Struct):
    """One record as fluent-bit's kubernetes filter shapes it; unknown keys are ignored."""

    kubernetes: KubernetesMeta
    log: str = ""
    stream: str | None = None
    time: str | None = None
    # fluent-bit's json_date_format: double (default), epoch, epoch_ms, iso8601, java_sql_timestamp.
    date: float | int | str | None = None


class LogRow(msgspec.Struct, array_like=True):
    """A validated line, as queued for the workers and written to Cassandra."""

    namespace: str
    pod_name: str
    container_name: str
    ts_ns: int
    log: str
    stream: str | None = None
    host: str | None = None
    pod_id: str | None = None
    docker_id: str | None = None
    labels: dict[str, str] | None = None


class InvalidBody(ValueError):
    """A body that can never succeed: not JSON, or not an array of objects."""


@dataclasses.dataclass(frozen=True)
class RecordError:
    index: int
    reason: str


@dataclasses.dataclass
class DecodedBatch:
    rows: list[LogRow]
    errors: list[RecordError]  # the first MAX_REPORTED_ERRORS only
    rejected: int
    truncated_lines: int = 0

    @property
    def received(self) -> int:
        return len(self.rows) + self.rejected


_whole_batch = msgspec.json.Decoder(list[FluentBitRecord])
_raw_elements = msgspec.json.Decoder(list[msgspec.Raw])
_one_record = msgspec.json.Decoder(FluentBitRecord)


def decode_json_batch(body: bytes, max_line_bytes: int) -> DecodedBatch:
    """A fluent-bit `Format json` body (a JSON array of records) -> rows and per-record errors."""
    try:
        records: list[FluentBitRecord | RecordError] = list(_whole_batch.decode(body))
    except msgspec.ValidationError:
        records = _decode_one_by_one(body)
    except msgspec.DecodeError as error:
        raise InvalidBody(f"body is not valid JSON: {error}") from None
    return _to_rows(records, max_line_bytes)


def _decode_one_by_one(body: bytes) -> list[FluentBitRecord | RecordError]:
    try:
        elements = _raw_elements.decode(body)
    except msgspec.DecodeError as error:
        raise InvalidBody(f"body must be a JSON array of records: {error}") from None
    decoded: list[FluentBitRecord | RecordError] = []
    for index, element in enumerate(elements):
        try:
            decoded.append(_one_record.decode(element))
        except msgspec.DecodeError as error:
            decoded.append(RecordError(index, _reason(error)))
    return decoded


def _reason(error: msgspec.DecodeError) -> str:
    # msgspec paths read "at `$.kubernetes.pod_name`"; name the field relative to the record.
    return str(error).replace("`$.", "`").replace("`$`", "the record")


def _to_rows(records: list[FluentBitRecord | RecordError], max_line_bytes: int) -> DecodedBatch:
    rows: list[LogRow] = []
    errors: list[RecordError] = []
    rejected = truncated = 0
    for index, record in enumerate(records):
        if isinstance(record, RecordError):
            failure: RecordError | None = record
        else:
            try:
                ts_ns = _timestamp_ns(record)
            except TimestampError as error:
                failure = RecordError(index, str(error))
            else:
                failure = None
                log = record.log
                if len(log) * 4 > max_line_bytes and len(log.encode()) > max_line_bytes:
                    log = truncate_line(log, max_line_bytes)
                    truncated += 1
                k8s = record.kubernetes
                rows.append(
                    LogRow(
                        k8s.namespace_name, k8s.pod_name, k8s.container_name, ts_ns, log,
                        record.stream, k8s.host, k8s.pod_id, k8s.docker_id, k8s.labels,
                    )
                )
        if failure is not None:
            rejected += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(failure)
    return DecodedBatch(rows, errors, rejected, truncated)


def _timestamp_ns(record: FluentBitRecord) -> int:
    if record.time is not None:
        try:
            return parse_rfc3339_ns(record.time)
        except TimestampError as error:
            raise TimestampError(f"`time`: {error}") from None
    if record.date is not None:
        try:
            return date_value_to_ns(record.date)
        except TimestampError as error:
            raise TimestampError(f"`date`: {error}") from None
    raise TimestampError("record has neither `time` (RFC 3339) nor `date` (epoch seconds or ISO 8601)")


TRUNCATION_MARK = " [truncated by kube-insight-logserver]"


def truncate_line(log: str, max_line_bytes: int) -> str:
    """Cut a line to at most max_line_bytes UTF-8 bytes (mark included), never inside a character."""
    mark = TRUNCATION_MARK if max_line_bytes > len(TRUNCATION_MARK) else ""
    return log.encode()[: max_line_bytes - len(mark)].decode("utf-8", errors="ignore") + mark
