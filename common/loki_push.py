"""Loki's push API bodies (POST /loki/api/v1/push) decoded into the same rows as POST /write.

Two encodings reach the same mapping:
- JSON (fluent-bit's `loki` output): `{"streams": [{"stream": {label: value}, "values": [["<ns>",
  "line"], ["<ns>", "line", {structured metadata}]]}]}`, decoded by typed msgspec structs.
- Protobuf (Promtail, Grafana Alloy): a `logproto.PushRequest` (common/proto/push.proto) in
  snappy block format, whose stream labels are one LogQL selector string `{k="v", ...}`.
gzip is inflated by the HTTP layer before a body gets here.

A stream's labels map onto a row: the namespace, pod and container labels (names configurable)
onto its required names, the stream label onto `stream`, every other label into `labels`.
Structured metadata is kept in `labels` too, so a queued payload keeps LogRow's shape; where a
metadata name is already a label of the stream, the stream's label keeps the name and the metadata
is stored as `<name>_extracted` (LogQL's rule for an extracted label that meets a stream label).

As in Loki, a bad entry costs only itself and a bad stream only its entries: the valid ones are
returned as rows, the others counted and described (`loki_rejection_message`).

A JSON body whose every stream and entry is plain is decoded by common._native
(`decode_loki_json`) straight into the columns it is queued in; anything else, and every
protobuf body, by the Python below, which stays the rule (tests/unit/test_native_loki.py).
"""

from __future__ import annotations

import dataclasses
import re

import cramjam
import msgspec
from google.protobuf.message import DecodeError

from common.container_lines import ContainerLines, QueuedLines
from common.loki_labels import LokiLabelNames
from common.native import native
from common.proto.push_pb2 import PushRequest
from common.records import (
    MAX_NAME_CHARACTERS,
    MAX_REPORTED_ERRORS,
    DecodedBatch,
    InvalidBody,
    LogRow,
    RecordError,
    truncate_line,
)
from common.settings import Settings
from common.timestamps import MAX_NS, MIN_NS, NS_PER_SECOND, TimestampError, check_range, format_rfc3339_ns

JSON_MEDIA_TYPE = "application/json"
PROTOBUF_MEDIA_TYPE = "application/x-protobuf"
EXTRACTED_SUFFIX = "_extracted"
_FRAMED_SNAPPY_MAGIC = b"\xff\x06\x00\x00sNaPpY"
# Loki label names are Prometheus label names.
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# int64 nanoseconds have at most 19 digits: a longer text is out of range without int(), which
# refuses texts past 4,300 digits with a ValueError of its own.
_MAX_TIMESTAMP_DIGITS = 19


class BodyTooLarge(InvalidBody):
    """A snappy body that declares more decompressed bytes than allowed (answer 413, not 400:
    catch it before InvalidBody)."""


class UnsupportedContentType(InvalidBody):
    """A Content-Type that is neither Loki's JSON nor its protobuf (answer 415)."""


class LabelSyntaxError(ValueError):
    """A stream's label string is not a `{name="value", ...}` selector."""


@dataclasses.dataclass(frozen=True)
class LokiEntryError(RecordError):
    """One rejected entry, or one rejected stream (entry None) with all its entries.

    `index` is the position of the (first) entry among all entries of the push, `stream` and
    `entry` its place in the body; `labels` the stream as a selector, `timestamp` the entry's
    time in Go's time.String() form (as Loki writes it) or its text when that is the problem.
    """

    stream: int = 0
    entry: int | None = None
    labels: str = "{}"
    timestamp: str | None = None


# --- JSON shapes ---


# gc=False: these hold only strings, dicts and lists of strings (no cycles), and a push makes one
# per entry: left untracked, they do not drive the young collections of a decode.
class _JsonEntry(msgspec.Struct, array_like=True, forbid_unknown_fields=True, gc=False):
    timestamp: str
    line: str
    metadata: dict[str, str] | None = None


class _JsonStream(msgspec.Struct, gc=False):
    stream: dict[str, str]
    values: list[_JsonEntry]


class _JsonPush(msgspec.Struct):
    streams: list[_JsonStream]


class _RawStream(msgspec.Struct):
    stream: msgspec.Raw
    values: list[msgspec.Raw]


class _RawPush(msgspec.Struct):
    streams: list[msgspec.Raw]


class _Stream:
    """A stream's labels mapped once onto the fields its rows share (`sent`: all its labels)."""

    __slots__ = ("namespace", "pod", "container", "stream", "labels", "sent")

    def __init__(self, namespace: str, pod: str, container: str, stream: str | None,
                 labels: dict[str, str] | None, sent: dict[str, str]):
        self.namespace, self.pod, self.container, self.stream = namespace, pod, container, stream
        self.labels, self.sent = labels, sent

    def fields(self) -> tuple:
        return self.namespace, self.pod, self.container, self.stream, self.labels, self.sent


class LokiPushDecoder:
    """Loki push bodies -> validated rows (a DecodedBatch whose errors are LokiEntryErrors)."""

    def __init__(
        self,
        max_line_bytes: int,
        max_decompressed_bytes: int,
        label_names: LokiLabelNames = LokiLabelNames(),
        *,
        compiled: bool = True,
    ):
        # The compiled fast path (common._native) for JSON bodies whose every stream and entry is
        # plain; it declines (None) anything else, which _decode_json then decides.
        self._compiled = native() if compiled else None
        self._max_line_bytes = max_line_bytes
        self._max_decompressed_bytes = max_decompressed_bytes
        self._names = label_names
        self._required = (label_names.namespace, label_names.pod, label_names.container)
        self._row_fields = frozenset((*self._required, label_names.stream))
        self._push = msgspec.json.Decoder(_JsonPush)
        self._raw_push = msgspec.json.Decoder(_RawPush)
        self._stream = msgspec.json.Decoder(_JsonStream)
        self._raw_stream = msgspec.json.Decoder(_RawStream)
        self._stream_labels = msgspec.json.Decoder(dict[str, str])
        self._entry = msgspec.json.Decoder(_JsonEntry)

    @classmethod
    def from_settings(cls, settings: Settings) -> LokiPushDecoder:
        return cls(settings.max_line_bytes, settings.max_body_bytes, LokiLabelNames.of(settings))

    def decode(self, body: bytes, content_type: str | None) -> DecodedBatch:
        """Raises InvalidBody (BodyTooLarge, UnsupportedContentType) for a body that can never
        succeed; otherwise every entry is a row or a counted, described rejection."""
        media_type = (content_type or "").split(";")[0].strip().lower()
        if media_type == JSON_MEDIA_TYPE:
            return self._decode_json(body)
        # Loki itself takes a body without Content-Type as protobuf.
        if media_type in (PROTOBUF_MEDIA_TYPE, ""):
            return self._decode_protobuf(body)
        raise UnsupportedContentType(
            f"Content-Type must be {JSON_MEDIA_TYPE} or {PROTOBUF_MEDIA_TYPE} (snappy), got {media_type!r}"
        )

    # --- protobuf ---

    def _decode_protobuf(self, body: bytes) -> DecodedBatch:
        request = PushRequest()
        try:
            request.ParseFromString(memoryview(self._unsnappy(body)))
        except DecodeError as error:
            raise InvalidBody(f"body is not a valid logproto.PushRequest: {error}") from None
        out = _Collector(self._max_line_bytes)
        mapped_sets: dict[str, _Stream | str] = {}
        for stream_index, stream in enumerate(request.streams):
            entries, selector = stream.entries, stream.labels
            mapped = mapped_sets.get(selector)
            if mapped is None:
                try:
                    mapped = self._map(parse_stream_selector(selector), selector)
                except LabelSyntaxError as error:
                    mapped = f"Error parsing labels '{selector}' with error: {error}"
                mapped_sets[selector] = mapped
            if mapped.__class__ is str:
                out.reject_stream(stream_index, len(entries), selector, mapped)
                continue
            # The common entry is appended here, inline (the hot loop of a protobuf push); anything
            # unusual (a time out of range, a long line, metadata that meets a label) goes to add().
            namespace, pod, container, stream_label, base, sent = mapped.fields()
            may_be_too_long = out.may_be_too_long
            for entry_index, entry in enumerate(entries):
                if not entry.HasField("timestamp"):
                    out.reject(stream_index, entry_index, selector, None, "entry has no timestamp")
                    continue
                stamp = entry.timestamp
                seconds, nanos = stamp.seconds, stamp.nanos
                if not 0 <= nanos < NS_PER_SECOND:
                    out.reject(stream_index, entry_index, selector, f"{seconds}s+{nanos}ns",
                               f"timestamp nanos must be 0 to 999999999, got {nanos}")
                    continue
                ts_ns = seconds * NS_PER_SECOND + nanos
                line = entry.line
                pairs = entry.structuredMetadata
                if pairs:
                    metadata = {pair.name: pair.value for pair in pairs}
                    if len(metadata) == len(pairs) and sent.keys().isdisjoint(metadata):
                        labels = {**base, **metadata} if base else metadata
                    else:
                        labels = None
                else:
                    labels = base
                if pairs and labels is None or len(line) > may_be_too_long or not MIN_NS <= ts_ns <= MAX_NS:
                    out.add(stream_index, entry_index, mapped, selector, ts_ns, line,
                            [(pair.name, pair.value) for pair in pairs] if pairs else None)
                    continue
                out.rows.append(LogRow(namespace, pod, container, ts_ns, line, stream_label, labels=labels))
        return out.batch()

    def _unsnappy(self, body: bytes) -> bytes:
        if body.startswith(_FRAMED_SNAPPY_MAGIC):
            raise InvalidBody("body is snappy framed format; Loki's push API takes snappy block format")
        try:
            # The block format opens with the decompressed length: checked before anything is allocated.
            declared = cramjam.snappy.decompress_raw_len(body)
        except cramjam.DecompressionError as error:
            raise InvalidBody(f"body is not snappy block format: {error}") from None
        if declared > self._max_decompressed_bytes:
            raise BodyTooLarge(
                f"the snappy body declares {declared} decompressed bytes, more than {self._max_decompressed_bytes} "
                "(MAX_BODY_BYTES); send smaller batches"
            )
        if declared == 0:
            return b""
        try:
            return cramjam.snappy.decompress_raw(body)
        except cramjam.DecompressionError as error:
            raise InvalidBody(f"body is not snappy block format: {error}") from None

    # --- JSON ---

    def _decode_json(self, body: bytes) -> DecodedBatch:
        if self._compiled is not None:
            names = self._names
            containers = self._compiled.decode_loki_json(
                body, [names.namespace, names.pod, names.container, names.stream], self._max_line_bytes)
            if containers is not None:
                return DecodedBatch(QueuedLines([ContainerLines(*c) for c in containers]), [], 0)
        try:
            streams = [(stream.stream, stream.values) for stream in self._push.decode(body).streams]
        except (msgspec.DecodeError, RecursionError):
            # Some stream or entry is invalid (or the body is): find out which, keep the others.
            streams = self._json_streams_one_by_one(body)
        out = _Collector(self._max_line_bytes)
        # fluent-bit sends one stream per record, most with the same labels: each set mapped once.
        mapped_sets: dict[tuple, _Stream | str] = {}
        for stream_index, (labels, values) in enumerate(streams):
            if isinstance(values, _BadStream):
                out.reject_stream(stream_index, values.entries, labels, values.reason)
                continue
            key = tuple(labels.items())
            mapped = mapped_sets.get(key)
            if mapped is None:
                mapped = mapped_sets[key] = self._map(labels, None)
            if mapped.__class__ is str:
                out.reject_stream(stream_index, len(values), labels, mapped)
                continue
            # As for protobuf: the common entry is appended inline, anything unusual goes to add().
            namespace, pod, container, stream_label, base, sent = mapped.fields()
            may_be_too_long = out.may_be_too_long
            for entry_index, entry in enumerate(values):
                if entry.__class__ is str:
                    out.reject(stream_index, entry_index, labels, None, entry)
                    continue
                stamp = entry.timestamp
                if stamp.isdigit() and stamp.isascii() and len(stamp) <= _MAX_TIMESTAMP_DIGITS:
                    ts_ns = int(stamp)  # the common case; its range is checked below
                else:
                    try:
                        ts_ns = _epoch_ns(stamp)
                    except TimestampError as error:
                        out.reject(stream_index, entry_index, labels, repr(stamp[:32]), str(error))
                        continue
                line, metadata = entry.line, entry.metadata
                if metadata:
                    # A fresh dict of the decoded entry's own: it may become the row's labels.
                    row_labels = ({**base, **metadata} if base else metadata) if sent.keys().isdisjoint(metadata) else None
                else:
                    row_labels = base
                if metadata and row_labels is None or len(line) > may_be_too_long or not MIN_NS <= ts_ns <= MAX_NS:
                    out.add(stream_index, entry_index, mapped, labels, ts_ns, line,
                            list(metadata.items()) if metadata else None)
                    continue
                out.rows.append(LogRow(namespace, pod, container, ts_ns, line, stream_label, labels=row_labels))
        return out.batch()

    def _json_streams_one_by_one(self, body: bytes) -> list[tuple]:
        """The (labels, values) of each stream of a body that failed the typed decode: a value that
        is no entry becomes the reason (str), a stream that is no stream a _BadStream."""
        try:
            raw_streams = self._raw_push.decode(body).streams
        except msgspec.DecodeError as error:
            raise InvalidBody(f'body must be a Loki push request {{"streams": [...]}}: {error}') from None
        except RecursionError:
            raise InvalidBody("body is not valid JSON: nested too deeply") from None
        streams: list[tuple] = []
        for raw in raw_streams:
            try:
                typed = self._stream.decode(raw)
                streams.append((typed.stream, typed.values))
                continue
            except (msgspec.DecodeError, RecursionError):
                pass
            try:
                loose = self._raw_stream.decode(raw)
            except (msgspec.DecodeError, RecursionError) as error:
                # A stream without a readable `values` array: its entries cannot be counted, so one.
                reason = f'a stream must be {{"stream": {{labels}}, "values": [entries]}}: {_json_reason(error, "stream")}'
                streams.append(("{?}", _BadStream(1, reason)))
                continue
            try:
                labels = self._stream_labels.decode(loose.stream)
            except (msgspec.DecodeError, RecursionError) as error:
                text = bytes(loose.stream)[:256].decode(errors="replace")
                reason = f"`stream` must be an object of string labels: {_json_reason(error, 'stream')}"
                streams.append((text, _BadStream(len(loose.values), reason)))
                continue
            streams.append((labels, [self._one_entry(value) for value in loose.values]))
        return streams

    def _one_entry(self, value: msgspec.Raw) -> _JsonEntry | str:
        try:
            return self._entry.decode(value)
        except (msgspec.DecodeError, RecursionError) as error:
            return (f'an entry must be ["<unix epoch in nanoseconds>", "<line>"], or with a third element '
                    f"of string structured metadata: {_json_reason(error, 'entry')}")

    # --- labels ---

    def _map(self, labels: dict[str, str], selector: str | None) -> _Stream | str:
        """A stream's labels as row fields, or the reason the stream is rejected. `selector` is the
        label string they were parsed from (names checked); None for JSON's label object."""
        if selector is None and not all(map(_LABEL_NAME.fullmatch, labels)):
            name = next(name for name in labels if not _LABEL_NAME.fullmatch(name))
            return f"Error parsing labels '{format_selector(labels)}' with error: invalid label name {name!r}"
        namespace_label, pod_label, container_label = self._required
        namespace, pod, container = labels.get(namespace_label), labels.get(pod_label), labels.get(container_label)
        if namespace is None or pod is None or container is None or not (
            _valid_name(namespace) and _valid_name(pod) and _valid_name(container)
        ):
            return self._names_problem(labels, selector)
        row_fields = self._row_fields
        rest = {k: v for k, v in labels.items() if k not in row_fields}
        return _Stream(namespace, pod, container, labels.get(self._names.stream), rest or None, labels)

    def _names_problem(self, labels: dict[str, str], selector: str | None) -> str:
        selector = selector or format_selector(labels)
        for label in self._required:
            value = labels.get(label)
            if value is None:
                return (f"stream '{selector}' has no `{label}` label: every stream needs the labels "
                        f"{', '.join(f'`{n}`' for n in self._required)} (LOKI_NAMESPACE_LABEL, LOKI_POD_LABEL, "
                        "LOKI_CONTAINER_LABEL)")
            if not _valid_name(value):
                return (f"stream '{selector}' has label `{label}` of {len(value)} characters: it must be 1 to "
                        f"{MAX_NAME_CHARACTERS} characters, not blank")
        raise AssertionError("no name label is wrong")


def _valid_name(value: str) -> bool:
    # The rule of records._check_names for fluent-bit's names, here for label values.
    return 0 < len(value) <= MAX_NAME_CHARACTERS and not value.isspace()


@dataclasses.dataclass(frozen=True)
class _BadStream:
    entries: int
    reason: str


class _Collector:
    """Rows and rejections as the entries of a push are walked, in order."""

    def __init__(self, max_line_bytes: int):
        self.rows: list[LogRow] = []
        self.errors: list[LokiEntryError] = []
        self.rejected = 0
        self.truncated = 0
        self._max_line_bytes = max_line_bytes
        self.may_be_too_long = max_line_bytes // 4  # a str of n characters holds at most 4n UTF-8 bytes

    def add(self, stream_index: int, entry_index: int, stream: _Stream, labels_sent: str | dict[str, str],
            ts_ns: int, line: str, metadata: list[tuple[str, str]] | None) -> None:
        if not MIN_NS <= ts_ns <= MAX_NS:
            try:
                check_range(ts_ns)
            except TimestampError as error:
                self.reject(stream_index, entry_index, labels_sent, _go_time(ts_ns), str(error))
            return
        if len(line) > self.may_be_too_long and len(line.encode()) > self._max_line_bytes:
            line = truncate_line(line, self._max_line_bytes)
            self.truncated += 1
        labels = stream.labels
        if metadata:
            labels = dict(labels) if labels else {}
            taken = stream.sent
            for name, value in metadata:
                while name in taken or name in labels:
                    name += EXTRACTED_SUFFIX
                labels[name] = value
        self.rows.append(LogRow(stream.namespace, stream.pod, stream.container, ts_ns, line, stream.stream,
                                labels=labels))

    def reject(self, stream_index: int, entry_index: int | None, labels: str | dict[str, str],
               timestamp: str | None, reason: str, count: int = 1) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            selector = labels if isinstance(labels, str) else format_selector(labels)
            position = len(self.rows) + self.rejected  # entries seen so far, valid or not
            self.errors.append(LokiEntryError(position, reason, stream_index, entry_index, selector, timestamp))
        self.rejected += count

    def reject_stream(self, stream_index: int, count: int, labels: str | dict[str, str], reason: str) -> None:
        if count:
            self.reject(stream_index, None, labels, None, reason, count)

    def batch(self) -> DecodedBatch:
        return DecodedBatch(self.rows, self.errors, self.rejected, self.truncated)


def _epoch_ns(text: str) -> int:
    """Loki's JSON timestamp: a string of integer nanoseconds since the epoch."""
    digits = text[1:] if text[:1] == "-" else text
    if not (digits.isdigit() and digits.isascii()):
        raise TimestampError(f"timestamp must be a string of integer nanoseconds since the epoch, got {text[:32]!r}")
    if len(digits) > _MAX_TIMESTAMP_DIGITS:
        return check_range(MAX_NS + 1)
    return int(text)


def _json_reason(error: msgspec.DecodeError | RecursionError, what: str) -> str:
    if isinstance(error, RecursionError):
        return "nested too deeply"
    # msgspec paths read "at `$[1]`"; name the place relative to the stream or entry.
    return str(error).replace("`$`", f"the {what}").replace("`$", f"`{what}")


def _go_time(ns: int) -> str:
    """ns as Go's time.Time.String() in UTC, the form Loki's messages use."""
    try:
        text = format_rfc3339_ns(ns)
    except (OverflowError, ValueError, OSError):
        return f"{ns}ns"
    return text[:-1].replace("T", " ", 1) + " +0000 UTC"


# --- stream selectors ---


def format_selector(labels: dict[str, str]) -> str:
    """Labels as Loki writes a stream: `{a="1", b="2"}`, sorted by name."""
    return "{" + ", ".join(f"{name}={msgspec.json.encode(value).decode()}" for name, value in sorted(labels.items())) + "}"


_WHITESPACE = " \t\r\n"
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"'}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_OCTAL_DIGITS = frozenset("01234567")
_PLAIN_RUN = re.compile(r'[^"\\\n]+')
_ESCAPE_LENGTHS = {"x": 2, "u": 4, "U": 8}


def parse_stream_selector(text: str) -> dict[str, str]:
    """`{name="value", ...}` -> {name: value}: a LogQL stream selector of `=` matchers only.

    Values are Go string literals, as Prometheus writes labels: "double-quoted" with Go's escapes
    (\\a \\b \\f \\n \\r \\t \\v \\\\ \\" \\ooo \\xhh \\uhhhh \\Uhhhhhhhh) or `raw`. Names are
    Prometheus label names, each at most once. Raises LabelSyntaxError naming the first fault.
    """
    labels: dict[str, str] = {}
    i, end = _skip(text, 0), len(text)
    if i == end or text[i] != "{":
        raise LabelSyntaxError("expected '{' at the start")
    i = _skip(text, i + 1)
    if i < end and text[i] == "}":
        i += 1
    else:
        while True:
            match = _LABEL_NAME.match(text, i)
            if match is None:
                raise LabelSyntaxError(f"expected a label name at position {i}")
            name = match.group()
            i = _skip(text, match.end())
            if not text.startswith("=", i) or text.startswith("=~", i):
                if text.startswith(("=~", "!=", "!~"), i):
                    raise LabelSyntaxError(f"a stream is named by '=' matchers only, not {text[i:i + 2]!r} "
                                           f"(label {name!r})")
                raise LabelSyntaxError(f"expected '=' after {name!r} at position {i}")
            value, i = _go_string(text, _skip(text, i + 1))
            if name in labels:
                raise LabelSyntaxError(f"duplicate label name {name!r}")
            labels[name] = value
            i = _skip(text, i)
            if i < end and text[i] == ",":
                i = _skip(text, i + 1)
                continue
            if i < end and text[i] == "}":
                i += 1
                break
            raise LabelSyntaxError(f"expected ',' or '}}' at position {i}")
    if _skip(text, i) != end:
        raise LabelSyntaxError(f"unexpected text after '}}' at position {i}")
    return labels


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    return i


def _go_string(text: str, i: int) -> tuple[str, int]:
    """The Go string literal at text[i] -> (value, position after it)."""
    if i >= len(text) or text[i] not in "\"`":
        raise LabelSyntaxError(f"expected a quoted value at position {i}")
    if text[i] == "`":
        close = text.find("`", i + 1)
        if close < 0:
            raise LabelSyntaxError(f"unterminated raw string at position {i}")
        return text[i + 1 : close].replace("\r", ""), close + 1  # Go drops \r from raw strings
    out = bytearray()
    start, i, end = i, i + 1, len(text)
    while i < end:
        char = text[i]
        if char == '"':
            try:
                return out.decode("utf-8"), i + 1
            except UnicodeDecodeError:
                raise LabelSyntaxError(f"the value at position {start} is not valid UTF-8") from None
        if char == "\n":
            raise LabelSyntaxError(f"newline in the value at position {start}")
        if char != "\\":
            run = _PLAIN_RUN.match(text, i)
            out += run.group().encode()
            i = run.end()
            continue
        escape = text[i + 1 : i + 2]
        if escape in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[escape].encode()
            i += 2
        elif escape in _ESCAPE_LENGTHS:
            digits = text[i + 2 : i + 2 + _ESCAPE_LENGTHS[escape]]
            if len(digits) != _ESCAPE_LENGTHS[escape] or not set(digits) <= _HEX_DIGITS:
                raise LabelSyntaxError(f"invalid \\{escape} escape at position {i}")
            code = int(digits, 16)
            if escape == "x":
                out.append(code)  # one byte, as in Go
            elif code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise LabelSyntaxError(f"escape \\{escape}{digits} at position {i} is not a Unicode character")
            else:
                out += chr(code).encode()
            i += 2 + len(digits)
        elif escape and escape in _OCTAL_DIGITS:
            digits = text[i + 1 : i + 4]
            if len(digits) != 3 or not set(digits) <= _OCTAL_DIGITS or int(digits, 8) > 255:
                raise LabelSyntaxError(f"invalid octal escape at position {i}")
            out.append(int(digits, 8))
            i += 4
        else:
            raise LabelSyntaxError(f"unknown escape \\{escape} at position {i}")
    raise LabelSyntaxError(f"unterminated string at position {start}")


def loki_rejection_message(batch: DecodedBatch) -> str:
    """The 400 answer to a push with rejected entries, worded as Loki's ingester words it:
    one line per reported rejection, then `total ignored: N out of M`."""
    lines = []
    for error in batch.errors:
        if isinstance(error, LokiEntryError) and error.entry is None:
            lines.append(f"{error.reason},")
        elif isinstance(error, LokiEntryError):
            lines.append(f"entry with timestamp {error.timestamp or '(none)'} ignored, reason: '{error.reason}' "
                         f"for stream: {error.labels},")
        else:
            lines.append(f"entry {error.index} ignored, reason: '{error.reason}',")
    lines.append(f"total ignored: {batch.rejected} out of {batch.received}")
    return "\n".join(lines)
