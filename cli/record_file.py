"""Reads a file of fluent-bit records in batches: a JSON array, or JSON lines (one object per line).

The format is told by the first non-space character: '[' is a JSON array, anything else JSON lines.
JSON lines are streamed, so a file larger than memory can be sent; an array is parsed whole.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from typing import BinaryIO

_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n"


class RecordFileError(ValueError):
    """The file cannot be read as records at all (not a JSON array, unreadable)."""


@dataclasses.dataclass
class Batch:
    records: list
    locations: list[str]  # where each record comes from, for messages: 'line 17' or 'record 16'
    progress: int  # progress units (see RecordFile.total) done once this batch is sent


@dataclasses.dataclass(frozen=True)
class UnreadableLine:
    line: int
    reason: str


class RecordFile:
    """Iterate batches(); lines that are not JSON are skipped and listed in `unreadable`."""

    def __init__(self, handle: BinaryIO, batch_size: int):
        self._handle = handle
        self._batch_size = batch_size
        self.format = _detect_format(handle)
        self.unreadable: list[UnreadableLine] = []
        self._array: list | None = self._load_array() if self.format == "array" else None
        # Progress is counted in records for an array, in bytes for JSON lines (read as a stream).
        self.total = len(self._array) if self._array is not None else os.fstat(handle.fileno()).st_size

    def batches(self) -> Iterator[Batch]:
        return self._array_batches() if self._array is not None else self._line_batches()

    def _load_array(self) -> list:
        try:
            records = json.load(self._handle)
        except ValueError as error:
            raise RecordFileError(f"not a valid JSON array: {error}") from None
        if not isinstance(records, list):
            raise RecordFileError("not a JSON array")
        return records

    def _array_batches(self) -> Iterator[Batch]:
        records = self._array or []
        for start in range(0, len(records), self._batch_size):
            chunk = records[start:start + self._batch_size]
            yield Batch(chunk, [f"record {start + i}" for i in range(len(chunk))], start + len(chunk))

    def _line_batches(self) -> Iterator[Batch]:
        records: list = []
        locations: list[str] = []
        consumed = 0
        for number, line in enumerate(self._handle, start=1):
            consumed += len(line)
            if number == 1 and line.startswith(_BOM):
                line = line[len(_BOM):]
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError as error:
                self.unreadable.append(UnreadableLine(number, f"not valid JSON: {error}"))
                continue
            locations.append(f"line {number}")
            if len(records) == self._batch_size:
                yield Batch(records, locations, consumed)
                records, locations = [], []
        if records:
            yield Batch(records, locations, consumed)


def _detect_format(handle: BinaryIO) -> str:
    start = handle.tell()
    first = b""
    chunk = handle.read(65536)
    if chunk.startswith(_BOM):
        chunk = chunk[len(_BOM):]
    while chunk and not first:
        first = chunk.lstrip(_WHITESPACE)[:1]
        chunk = handle.read(65536)
    handle.seek(start)
    return "array" if first == b"[" else "lines"
