"""The record model: fluent-bit's Kubernetes records in, validated log rows out.

Typed msgspec decoders validate in C. A JSON array is first decoded whole (the fast path); when
that fails, it is decoded element by element so that one bad record costs only itself: its index
and reason are reported and its valid neighbours are kept. Streams (JSON lines, json_stream,
msgpack) are validated record by record.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Sequence
from typing import Any

import msgpack
import msgspec

from common.container_lines import ContainerLines, QueuedLines
from common.native import native
from common.timestamps import (
    FRACTION_SCALE,
    NS_PER_SECOND,
    UTC_SECOND_NS,
    TimestampError,
    check_range,
    date_value_to_ns,
    format_rfc3339_ns,
    parse_rfc3339_ns,
)

# Kubernetes names are at most 253 characters; the bound also keeps partition keys small.
# Not blank: a name of only spaces could be stored but never asked for (GET /query strips it).
# Checked by _to_rows once per distinct (namespace, pod, container) of a batch, not by msgspec:
# msgspec's length and pattern constraints, run on every name, tripled the cost of decoding a batch.
MAX_NAME_CHARACTERS = 253
NAME_FIELDS = ("namespace_name", "pod_name", "container_name")
MAX_REPORTED_ERRORS = 10


class KubernetesMeta(msgspec.Struct):
    namespace_name: str
    pod_name: str
    container_name: str
    host: str | None = None
    pod_id: str | None = None
    docker_id: str | None = None
    labels: dict[str, str] | None = None


def record_type(date_key: str = "date", offset_key: str = "offset", path_key: str = "log_file",
                kubernetes: type = KubernetesMeta) -> type[msgspec.Struct]:
    """One record as fluent-bit's kubernetes filter shapes it; unknown keys (Merge_Log) are ignored.

    `kubernetes` is KubernetesMeta, or msgspec.Raw for the JSON decoders: a batch's records of one
    pod carry the same kubernetes map, byte for byte, so _to_rows decodes and validates each
    distinct map once (records of several pods: several maps) instead of once per record.

    `date_key` is fluent-bit's json_date_key: the name under which it sends its own timestamp.
    `offset_key` and `path_key` are the tail input's Offset_Key and Path_Key: the line's byte
    offset in its file, and the file. They are typed loosely (Any) because Merge_Log can put an
    application's own key of that name there: a value that is not an offset is ignored by
    _to_rows, never a reason to reject the line.
    """
    return msgspec.defstruct(
        "FluentBitRecord",
        [
            ("kubernetes", kubernetes),
            ("log", str, ""),
            ("stream", "str | None", None),
            ("time", "str | None", None),
            # json_date_format: double (default), epoch, epoch_ms, iso8601, java_sql_timestamp.
            ("date", "float | int | str | None", None),
            ("offset", Any, None),
            ("log_file", Any, None),
        ],
        rename={"date": date_key, "offset": offset_key, "log_file": path_key},
        module=__name__,
    )


# fluent-bit sends offsets as uint64; anything larger could not be queued (msgpack) anyway.
MAX_OFFSET = 2**64 - 1


class LogRow(msgspec.Struct, array_like=True, gc=False):
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
    # Added later, so last and defaulted: payloads queued by earlier versions still decode.
    offset: int | None = None  # byte offset of the line in its file (fluent-bit's Offset_Key)
    log_file: str | None = None  # the file (Path_Key); only kept with an offset


class InvalidBody(ValueError):
    """A body that can never succeed: not JSON, or not an array of objects."""


@dataclasses.dataclass(frozen=True)
class RecordError:
    index: int
    reason: str


@dataclasses.dataclass
class DecodedBatch:
    rows: Sequence[LogRow]  # fluent-bit bodies: QueuedLines, container by container
    errors: list[RecordError]  # the first MAX_REPORTED_ERRORS only
    rejected: int
    truncated_lines: int = 0

    @property
    def received(self) -> int:
        return len(self.rows) + self.rejected


MSGPACK_MEDIA_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")
NDJSON_MEDIA_TYPE = "application/x-ndjson"
_EVENT_TIME_EXT = 0  # fluent-bit's EventTime: msgpack ext type 0, big-endian uint32 s + uint32 ns


class BatchDecoder:
    """Every body fluent-bit's http output can send, decoded into validated rows.

    JSON array (Format json), JSON lines (json_lines), objects back to back (json_stream, still sent
    as application/json) and msgpack (a stream of [[EventTime, metadata], record] events, older
    [time, record] pairs, or plain maps).
    """

    def __init__(self, max_line_bytes: int, date_key: str = "date", offset_key: str = "offset",
                 path_key: str = "log_file", *, compiled: bool = True):
        self._max_line_bytes = max_line_bytes
        self._date_key = date_key
        # The compiled fast path (common._native) knows fluent-bit's default key names only.
        self._compiled = native() if compiled and (date_key, offset_key, path_key) == ("date", "offset", "log_file") else None
        self._record_type = record_type(date_key, offset_key, path_key)  # msgpack, through msgspec.convert
        json_record = record_type(date_key, offset_key, path_key, kubernetes=msgspec.Raw)
        self._whole_array = msgspec.json.Decoder(list[json_record])
        self._raw_elements = msgspec.json.Decoder(list[msgspec.Raw])
        self._one = msgspec.json.Decoder(json_record)
        self._one_value = msgspec.json.Decoder(msgspec.Raw)

    def decode(self, body: bytes, content_type: str | None = None) -> DecodedBatch:
        media_type = (content_type or "").split(";")[0].strip().lower()
        if media_type in MSGPACK_MEDIA_TYPES:
            records = self._msgpack_records(body)
        elif media_type == NDJSON_MEDIA_TYPE or body.lstrip()[:1] == b"{":
            # JSON lines (declared: a line that is no record is one invalid record), or json_stream
            records = self._json_objects(body, declared_lines=media_type == NDJSON_MEDIA_TYPE)
        else:
            if self._compiled is not None:
                # Every record valid and in the shape runtimes write: straight into columns.
                containers = self._compiled.decode_json_batch(body, self._max_line_bytes)
                if containers is not None:
                    return DecodedBatch(QueuedLines([ContainerLines(*c) for c in containers]), [], 0)
            records = self._json_array(body)
        return _to_rows(records, self._max_line_bytes)

    # --- JSON ---

    def _json_array(self, body: bytes) -> list:
        try:
            return list(self._whole_array.decode(body))
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            # Some record is invalid, or holds a string that is not UTF-8 (msgspec < 0.23 raised
            # UnicodeDecodeError for it, later ones a DecodeError like any syntax error): whether
            # the body itself is an array of JSON values decides between one record and all.
            pass
        try:
            elements = self._raw_elements.decode(body)
        except msgspec.DecodeError as error:
            if self._is_one_value(body):
                raise InvalidBody(f"body must be a JSON array of records: {error}") from None
            raise InvalidBody(f"body is not valid JSON: {error}") from None
        except RecursionError:
            raise InvalidBody(f"body is not valid JSON: {_TOO_DEEP}") from None
        return [self._decode_one(element, index) for index, element in enumerate(elements)]

    def _json_objects(self, body: bytes, declared_lines: bool) -> list:
        """JSON lines, each line a record of its own. Undeclared (application/json starting with
        `{`), a line that is not one JSON value means the body is a json_stream instead."""
        records = []
        for index, line in enumerate(line for line in body.split(b"\n") if line.strip()):
            try:
                records.append(self._one.decode(line))
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as error:
                # A json_stream line's invalid first record fails before msgspec sees the next one.
                if not declared_lines and not self._is_one_value(line):
                    return self._json_stream(body)
                records.append(RecordError(index, _reason(error)))
        return records

    def _is_one_value(self, line: bytes) -> bool:
        try:
            self._one_value.decode(line)
        except msgspec.DecodeError:
            return False
        except RecursionError:
            return True
        return True

    def _json_stream(self, body: bytes) -> list:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidBody(f"body is not valid UTF-8: {error}") from None
        scanner, position, records = json.JSONDecoder(), 0, []
        while True:
            while position < len(text) and text[position] in " \t\r\n":
                position += 1
            if position == len(text):
                return records
            start = position
            try:
                _, position = scanner.raw_decode(text, position)
            except ValueError as error:
                raise InvalidBody(f"body is not valid JSON: {error}") from None
            except RecursionError:
                raise InvalidBody(f"body is not valid JSON: {_TOO_DEEP}") from None
            # Validated by msgspec like every other body: Python's json lets lone surrogates
            # (\ud800) through, which no UTF-8 queue payload or Cassandra text can hold.
            records.append(self._decode_one(text[start:position].encode(), len(records)))

    def _decode_one(self, element: msgspec.Raw | bytes, index: int):
        try:
            return self._one.decode(element)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as error:
            return RecordError(index, _reason(error))

    def _convert(self, value, index: int):
        try:
            return msgspec.convert(value, self._record_type)
        except msgspec.ValidationError as error:
            return RecordError(index, _reason(error))

    # --- msgpack ---

    def _msgpack_records(self, body: bytes) -> list:
        unpacker = msgpack.Unpacker(raw=False, ext_hook=_ext_hook, strict_map_key=False,
                                    max_buffer_size=max(len(body), 1))
        unpacker.feed(body)
        try:
            items = list(unpacker)
        except (ValueError, TypeError, msgpack.UnpackException) as error:  # TypeError: a map key that is a list
            raise InvalidBody(f"body is not valid msgpack: {type(error).__name__}: {error}") from None
        if len(items) == 1 and isinstance(items[0], list) and not _is_event(items[0]):
            items = items[0]  # one msgpack array holding the events or maps
        return [self._convert(self._event_record(item), index) for index, item in enumerate(items)]

    def _event_record(self, item):
        """[[EventTime, metadata], record] or [time, record] -> record, stamped from the event
        when it carries neither `time` nor the date key (Time_Keep Off, json_date_key false)."""
        if not _is_event(item):
            return item
        stamp, record = item
        if isinstance(stamp, list):
            stamp = stamp[0] if stamp else None
        if "time" not in record and self._date_key not in record and stamp is not None:
            try:
                record = {**record, "time": format_rfc3339_ns(_stamp_ns(stamp))}
            except (TimestampError, TypeError, OverflowError):
                pass  # validation reports the missing timestamp
        return record


def _is_event(item) -> bool:
    # [time or [time, metadata], record]; a pair of records (one array holding two) is no event.
    return isinstance(item, list) and len(item) == 2 and isinstance(item[1], dict) and not isinstance(item[0], dict)


class _EventTime(int):
    """Nanoseconds decoded from fluent-bit's EventTime extension."""


def _ext_hook(code: int, data: bytes):
    if code == _EVENT_TIME_EXT and len(data) == 8:
        seconds, nanoseconds = struct.unpack(">II", data)
        return _EventTime(seconds * NS_PER_SECOND + nanoseconds)
    return msgpack.ExtType(code, data)


def _stamp_ns(stamp) -> int:
    if isinstance(stamp, _EventTime):
        return check_range(int(stamp))
    if not isinstance(stamp, (int, float, str)):
        # Never arithmetic on other types: bytes or a list times 10**6 would allocate without bound.
        raise TypeError(f"not a time: {type(stamp).__name__}")
    return date_value_to_ns(stamp)


def decode_json_batch(body: bytes, max_line_bytes: int) -> DecodedBatch:
    """A `Format json` body with the default date key (a convenience over BatchDecoder)."""
    return BatchDecoder(max_line_bytes).decode(body, "application/json")


_TOO_DEEP = "nested too deeply"


def _reason(error: msgspec.DecodeError | UnicodeDecodeError | RecursionError) -> str:
    if isinstance(error, UnicodeDecodeError):
        return f"a string is not valid UTF-8 ({error.reason})"
    if isinstance(error, RecursionError):
        return _TOO_DEEP
    if not isinstance(error, msgspec.ValidationError):
        if "UTF-8" in str(error):  # msgspec >= 0.23: "Invalid UTF-8 encoded string"
            return f"a string is not valid UTF-8 ({error})"
        return f"not valid JSON: {error}"
    # msgspec paths read "at `$.kubernetes.pod_name`"; name the field relative to the record.
    return str(error).replace("`$.", "`").replace("`$`", "the record")


def _to_rows(records: list, max_line_bytes: int) -> DecodedBatch:
    # The hot loop of ingest, once per record: locals only, and parse_rfc3339_ns's fast path inlined
    # (a `time` like 2026-03-14T12:00:00.123456789Z in a second already seen) to save a call.
    # Valid lines go straight into their container's columns (the queued form, ContainerLines).
    containers: dict[tuple[str, str, str], ContainerLines] = {}
    queued: list[ContainerLines] = []
    # A kubernetes map (its JSON bytes) -> (its container's columns, its metadata's index there),
    # or why it is invalid: each distinct map is decoded and validated once per batch.
    placed: dict[bytes, tuple[ContainerLines, int] | str] = {}
    errors: list[RecordError] = []
    rejected = truncated = 0
    may_be_too_long = max_line_bytes // 4  # a str of n characters holds at most 4n UTF-8 bytes
    utc_second_ns, fraction_scale, max_offset = UTC_SECOND_NS, FRACTION_SCALE, MAX_OFFSET
    raw_type, encode_map = msgspec.Raw, _encode_json
    for index, record in enumerate(records):
        if record.__class__ is RecordError:
            failure: RecordError = record
        else:
            k8s = record.kubernetes
            key = bytes(k8s) if k8s.__class__ is raw_type else encode_map(k8s)
            place = placed.get(key)
            if place is None:
                place = placed[key] = _place(k8s, containers)
            if place.__class__ is str:
                failure = RecordError(index, place)
            else:
                time = record.time
                try:
                    if (
                        time is not None and 21 < len(time) < 31 and time[19] == "." and time[-1] == "Z"
                        and (second_ns := utc_second_ns.get(time[:19])) is not None
                        and (fraction := time[20:-1]).isdigit() and fraction.isascii()
                    ):
                        ts_ns = second_ns + int(fraction) * fraction_scale[len(time)]
                    else:
                        ts_ns = parse_rfc3339_ns(time) if time is not None else _date_ns(record.date)
                except TimestampError as error:
                    failure = RecordError(index, _timestamp_reason(record, error))
                else:
                    log = record.log
                    if len(log) > may_be_too_long and len(log.encode()) > max_line_bytes:
                        log = truncate_line(log, max_line_bytes)
                        truncated += 1
                    offset = record.offset
                    if offset is None:
                        log_file = None
                    elif offset.__class__ is not int or not 0 <= offset <= max_offset:
                        offset = log_file = None  # not fluent-bit's offset (bool, text, ...): ignored
                    elif (log_file := record.log_file) is not None and log_file.__class__ is not str:
                        log_file = None
                    lines, meta = place
                    if not lines.ts:
                        queued.append(lines)  # containers in the order of their first valid line
                    lines.ts.append(ts_ns)
                    lines.logs.append(log)
                    lines.streams.append(record.stream)
                    lines.meta_of.append(meta)
                    if offset is not None or lines.offsets is not None:
                        lines.add_offset(offset, log_file)
                    continue
        rejected += 1
        if len(errors) < MAX_REPORTED_ERRORS:
            errors.append(failure)
    return DecodedBatch(QueuedLines(queued), errors, rejected, truncated)


_kubernetes_decoder = msgspec.json.Decoder(KubernetesMeta)
_encode_json = msgspec.json.Encoder().encode


def _place(k8s: KubernetesMeta | msgspec.Raw, containers: dict) -> tuple[ContainerLines, int] | str:
    """Where a kubernetes map's lines go: its container's columns and its metadata's index there,
    or why the map is invalid (the reason a record carrying it is rejected with)."""
    if k8s.__class__ is msgspec.Raw:
        try:
            k8s = _kubernetes_decoder.decode(k8s)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as error:
            return _kubernetes_reason(error)
    names = (k8s.namespace_name, k8s.pod_name, k8s.container_name)
    for field, name in zip(NAME_FIELDS, names):
        if not 0 < len(name) <= MAX_NAME_CHARACTERS or name.isspace():
            return (f"`kubernetes.{field}` must be 1 to {MAX_NAME_CHARACTERS} characters, "
                    f"not blank (got {len(name)} characters)")
    lines = containers.get(names)
    if lines is None:
        lines = containers[names] = ContainerLines(*names, [], [], [], [], [])
    return lines, lines.meta_index((k8s.host, k8s.pod_id, k8s.docker_id, k8s.labels))


def _kubernetes_reason(error: msgspec.DecodeError | UnicodeDecodeError | RecursionError) -> str:
    """A kubernetes map's decoding error, its path named from the record (as _reason does)."""
    if not isinstance(error, msgspec.ValidationError):
        return _reason(error)
    text = str(error)
    if " - at `$" in text:
        return text.replace(" - at `$", " - at `kubernetes", 1)
    return f"{text} - at `kubernetes`"


def _date_ns(date) -> int:
    if date is None:
        raise TimestampError("record has neither `time` (RFC 3339) nor `date` (epoch seconds or ISO 8601)")
    return date_value_to_ns(date)


def _timestamp_reason(record, error: TimestampError) -> str:
    if record.time is not None:
        return f"`time`: {error}"
    if record.date is not None:
        return f"`date`: {error}"
    return str(error)


TRUNCATION_MARK = " [truncated by kube-insight-logserver]"


def truncate_line(log: str, max_line_bytes: int) -> str:
    """Cut a line to at most max_line_bytes UTF-8 bytes (mark included), never inside a character."""
    mark = TRUNCATION_MARK if max_line_bytes > len(TRUNCATION_MARK) else ""
    return log.encode()[: max_line_bytes - len(mark)].decode("utf-8", errors="ignore") + mark
