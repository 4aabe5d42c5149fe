"""Blocks: many lines of one container, compressed together (the `blocks` layout). Pure: no I/O.

A block holds up to BLOCK_MAX_LINES lines of one partition (namespace, pod, container, bucket),
sorted by (ts_ns, line_id), one line per identity, as zstd-compressed msgpack columns: the times
(first one, then deltas), the line ids, the texts, the streams, and the pod metadata (host, pod_id,
docker_id, labels) once per distinct value with each line's index into it. The store keeps it in
one row keyed by (first_ts, block_id), with its max_ts and line count beside it, so a read skips a
block outside its range without decompressing it.

- `cut_blocks` turns a batch's lines into blocks. The block id is a digest of the block's line
  identities: the same batch always gives the same blocks, so a retried batch upserts its rows.
  A block spans at most BLOCK_SPAN_NS (a late line starts a block of its own), which bounds how
  far back a read looks for blocks overlapping its range.
- `merge_blocks` reads blocks back: it decompresses only those it reaches, merges the ones that
  overlap in time (late lines, two senders, a run of equal times cut in two), and drops a line whose
  identity it has already given, so a batch re-sent cut differently still reads exactly once.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import heapq
import itertools
import operator
import threading
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import msgspec
import zstandard

from common.container_lines import ContainerLines, Meta
from common.log_store import Bound, LogLine
from common.native import native
from common.timestamps import NS_PER_SECOND

BLOCK_MAX_LINES = 4096
# Uncompressed text per block, far below Cassandra's 16 MiB request and mutation limits.
BLOCK_MAX_TEXT_BYTES = 1 << 20
# A block's max_ts - first_ts stays below this. Part of the stored format: reads look this far
# before their range for blocks that may overlap it.
BLOCK_SPAN_NS = 60 * NS_PER_SECOND
# zstd level 1: on the bench corpus both faster and smaller than level 3 (blocks of 1,000 lines:
# 0.29 against 0.52 ms per 1,000 lines, 24.8 against 25.9 B per line; of 250: 0.29 against 0.41 ms,
# 28.3 against 28.6 B). Any level reads back alike.
_ZSTD_LEVEL = 1
FORMAT_VERSION = 1

class _Columns(msgspec.Struct, array_like=True):
    version: int
    first_ts: int
    ts_deltas: list[int]
    line_ids: list[int]
    logs: list[str]
    streams: list[str | None]
    metas: list[tuple[str | None, str | None, str | None, dict[str, str] | None]]
    meta_of: list[int]


class _Codec(threading.local):
    """A thread's own (de)compressors and msgpack coders: a zstandard context must never be used
    by two threads at once (the API reads from many; sharing one corrupted its output)."""

    def __init__(self) -> None:
        self.encoder = msgspec.msgpack.Encoder()
        self.decoder = msgspec.msgpack.Decoder(_Columns)
        self.compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
        self.decompressor = zstandard.ZstdDecompressor()


_codec = _Codec()


class Block(NamedTuple):
    """One block, ready to store: its clustering key (first_ts, block_id), max_ts, count, data."""

    first_ts: int
    block_id: int
    max_ts: int
    line_count: int
    data: bytes


class PartitionLines:
    """One partition's lines of a batch, as columns in arrival order."""

    __slots__ = ("ts", "line_ids", "logs", "streams", "metas", "meta_of")

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.line_ids: list[int] = []
        self.logs: list[str] = []
        self.streams: list[str | None] = []
        self.metas: list[Meta] = []
        self.meta_of: list[int] = []

    def series(self) -> set[tuple[str | None, tuple]]:
        """The distinct (stream, sorted label items) of these lines (the series index's entries)."""
        labels_of = [() if meta[3] is None else tuple(sorted(meta[3].items())) for meta in self.metas]
        return {(stream, labels_of[m]) for stream, m in set(zip(self.streams, self.meta_of))}


class PartitionBlocks(NamedTuple):
    """A write's blocks of one partition, with what else the store needs of its lines."""

    key: tuple  # (namespace, pod_name, container_name, bucket)
    line_count: int
    blocks: list[Block]
    series: list[tuple[str | None, tuple]]  # each distinct (stream, sorted label items)


def partition_blocks(containers: Sequence[tuple[ContainerLines, list[int]]], bucket_seconds: int) -> list[PartitionBlocks]:
    """Containers' lines (with their line ids) as blocks, per partition, in the order partitions
    are first named: compiled (common._native) when built, else python_partition_blocks, which is
    the rule; the compiled one leaves the compression to this module, as encode_block does it."""
    compiled = native()
    if compiled is None:
        return python_partition_blocks(containers, bucket_seconds)
    compress = _codec.compressor.compress
    return [PartitionBlocks(key, line_count, [Block(*head, compress(data)) for *head, data in cut], series)
            for key, line_count, cut, series in compiled.partition_blocks(
                list(containers), bucket_seconds, BLOCK_MAX_LINES, BLOCK_MAX_TEXT_BYTES, BLOCK_SPAN_NS)]


def python_partition_blocks(containers: Iterable[tuple[ContainerLines, list[int]]],
                            bucket_seconds: int) -> list[PartitionBlocks]:
    return [PartitionBlocks(key, len(lines.ts), cut_blocks(lines), list(lines.series()))
            for key, lines in group_by_partition(containers, bucket_seconds).items()]


def group_by_partition(containers: Iterable[tuple[ContainerLines, list[int]]],
                       bucket_seconds: int) -> dict[tuple, PartitionLines]:
    """Containers' lines (with their line ids) as columns per partition key (namespace, pod_name,
    container_name, bucket): one container's lines from several batches go together, each
    distinct metadata once. A container's lines all in one bucket (the usual case) are taken
    whole, column by column; only a container straddling buckets is split line by line."""
    groups: dict[tuple, PartitionLines] = {}
    for lines, ids in containers:
        names = (lines.namespace, lines.pod_name, lines.container_name)
        first, last = _bucket(min(lines.ts), bucket_seconds), _bucket(max(lines.ts), bucket_seconds)
        if first == last:
            _add(groups, (*names, first), lines, ids, None)
            continue
        by_bucket: dict[int, list[int]] = {}
        for index, ts in enumerate(lines.ts):
            by_bucket.setdefault(_bucket(ts, bucket_seconds), []).append(index)
        for bucket, indices in by_bucket.items():
            _add(groups, (*names, bucket), lines, ids, indices)
    return groups


def _bucket(ts_ns: int, bucket_seconds: int) -> int:
    seconds = ts_ns // NS_PER_SECOND
    return seconds - seconds % bucket_seconds


def _add(groups: dict[tuple, PartitionLines], key: tuple, lines: ContainerLines, ids: list[int],
         indices: list[int] | None) -> None:
    """A container's lines (all of them, or those at `indices`) into their partition's columns."""
    part = groups.get(key)
    if part is None:
        part = groups[key] = PartitionLines()
    renumber = []
    for meta in lines.metas:
        try:
            renumber.append(part.metas.index(meta))
        except ValueError:
            renumber.append(len(part.metas))
            part.metas.append(meta)
    same_numbers = renumber == list(range(len(renumber)))
    if indices is None:
        part.ts += lines.ts
        part.line_ids += ids
        part.logs += lines.logs
        part.streams += lines.streams
        part.meta_of += lines.meta_of if same_numbers else [renumber[m] for m in lines.meta_of]
        return
    take = operator.itemgetter(*indices) if len(indices) > 1 else (lambda column: (column[indices[0]],))
    part.ts += take(lines.ts)
    part.line_ids += take(ids)
    part.logs += take(lines.logs)
    part.streams += take(lines.streams)
    part.meta_of += [renumber[m] for m in take(lines.meta_of)]


def cut_blocks(lines: PartitionLines, *, max_lines: int = BLOCK_MAX_LINES,
               max_text_bytes: int = BLOCK_MAX_TEXT_BYTES) -> list[Block]:
    """The partition's lines as blocks: sorted by (ts_ns, line_id), the last of lines sharing an
    identity kept (as an upsert would), cut at max_lines, max_text_bytes and BLOCK_SPAN_NS."""
    ts, ids = lines.ts, lines.line_ids
    keys = list(zip(ts, ids))
    columns = [ts, ids, lines.logs, lines.streams, lines.meta_of]
    if not all(map(operator.lt, keys, itertools.islice(keys, 1, None))):
        # Out of order or repeated identities: the last line of an identity wins, as with rows.
        last_of = dict(zip(keys, range(len(keys))))
        order = sorted(last_of.values(), key=keys.__getitem__)
        columns = [[column[i] for i in order] for column in columns]
        ts, ids = columns[0], columns[1]
    sizes = list(itertools.accumulate(map(len, columns[2])))
    blocks, start, count = [], 0, len(ts)
    while start < count:
        end = min(start + max_lines, count,
                  bisect.bisect_right(sizes, (sizes[start - 1] if start else 0) + max_text_bytes, lo=start + 1),
                  bisect.bisect_left(ts, ts[start] + BLOCK_SPAN_NS, lo=start + 1))
        blocks.append(encode_block(*(column[start:end] for column in columns), lines.metas))
        start = end
    return blocks


def encode_block(ts: list[int], ids: list[int], logs: list[str], streams: list, meta_of: list[int],
                 metas: Sequence[Meta]) -> Block:
    """One block of lines already sorted by (ts, line_id), identities distinct."""
    used = sorted(set(meta_of))
    if len(used) != len(metas) or used[-1] != len(used) - 1:
        renumber = {old: new for new, old in enumerate(used)}
        meta_of = [renumber[m] for m in meta_of]
        metas = [metas[old] for old in used]
    first = ts[0]
    deltas = list(map(operator.sub, ts, itertools.chain((first,), ts)))
    columns = _Columns(FORMAT_VERSION, first, deltas, ids, logs, streams, list(metas), meta_of)
    data = _codec.compressor.compress(_codec.encoder.encode(columns))
    identity = array("q", ts).tobytes() + array("q", ids).tobytes()
    block_id = int.from_bytes(hashlib.blake2b(identity, digest_size=8).digest(), "big") >> 1
    return Block(first, block_id, ts[-1], len(ts), data)


class DecodedBlock(NamedTuple):
    ts: list[int]
    line_ids: list[int]
    logs: list[str]
    streams: list[str | None]
    metas: list[Meta]
    meta_of: list[int]


def decode_block(data: bytes) -> DecodedBlock:
    columns = _codec.decoder.decode(_codec.decompressor.decompress(data))
    if columns.version != FORMAT_VERSION:
        raise ValueError(f"block format {columns.version} is not {FORMAT_VERSION}")
    ts = list(itertools.accumulate(columns.ts_deltas, initial=columns.first_ts))[1:]
    return DecodedBlock(ts, columns.line_ids, columns.logs, columns.streams,
                        [tuple(meta) for meta in columns.metas], columns.meta_of)


def lines_of(decoded: Iterable[DecodedBlock]) -> PartitionLines:
    """The lines of several decoded blocks of one partition, as one PartitionLines (for cut_blocks,
    which sorts them and keeps one line per identity): what merging small blocks starts from."""
    lines, index_of = PartitionLines(), {}
    for block in decoded:
        renumber = []
        for meta in block.metas:
            key = (*meta[:3], None if meta[3] is None else tuple(sorted(meta[3].items())))
            if key not in index_of:
                index_of[key] = len(lines.metas)
                lines.metas.append(meta)
            renumber.append(index_of[key])
        lines.ts += block.ts
        lines.line_ids += block.line_ids
        lines.logs += block.logs
        lines.streams += block.streams
        lines.meta_of += [renumber[m] for m in block.meta_of]
    return lines


# --- reading ---

# tuple.__new__ straight from C: LogLine._make is a Python function, a call per line.
_as_line = functools.partial(tuple.__new__, LogLine)
_neg = operator.neg


class _Cursor:
    """An opened block's lines still to give, in the read's direction."""

    __slots__ = ("ts", "ids", "logs", "streams", "pos", "end")

    def __init__(self, block: DecodedBlock, low: Bound, high: Bound, backward: bool):
        ts, ids, logs, streams = block.ts, block.line_ids, block.logs, block.streams
        start, end = _index(ts, ids, low, left=True), _index(ts, ids, high, left=False)
        if backward:
            ts, ids, logs, streams = (column[start:end][::-1] for column in (ts, ids, logs, streams))
            start, end = 0, len(ts)
        self.ts, self.ids, self.logs, self.streams, self.pos, self.end = ts, ids, logs, streams, start, end

    def key(self, backward: bool) -> tuple[int, int]:
        i = self.pos
        return (-self.ts[i], -self.ids[i]) if backward else (self.ts[i], self.ids[i])

    def count_before(self, floor_ts: float, backward: bool) -> int:
        """Where the lines whose sweep time is below floor_ts end."""
        if floor_ts == float("inf"):
            return self.end
        if backward:
            return bisect.bisect_left(self.ts, floor_ts, self.pos, self.end, key=_neg)
        return bisect.bisect_left(self.ts, floor_ts, self.pos, self.end)


def _index(ts: list[int], ids: list[int], bound: Bound, *, left: bool) -> int:
    """Where (ts, id) >= bound starts (left) or (ts, id) <= bound ends (not left)."""
    bound_ts, bound_id = bound
    a, b = bisect.bisect_left(ts, bound_ts), bisect.bisect_right(ts, bound_ts)
    if a == b:
        return a
    return bisect.bisect_left(ids, bound_id, a, b) if left else bisect.bisect_right(ids, bound_id, a, b)


def merge_blocks(rows: Iterable[tuple[int, int, bytes]], low: Bound, high: Bound, *, backward: bool,
                 pod_name: str, container_name: str) -> Iterator[LogLine]:
    """The lines of blocks (first_ts, max_ts, data) between two inclusive (ts, line_id) bounds,
    oldest first (newest first when backward), each identity once.

    `rows` come in the store's clustering order: first_ts ascending (descending when backward).
    The sweep runs in "sweep time" (ts forward, -ts backward). A block is opened (decompressed)
    once the sweep reaches its first line's sweep time; lines are given in bulk from the one open
    block while no unopened block can start before them, one by one from several open blocks."""
    span = BLOCK_SPAN_NS if backward else 0  # how far an unseen block may start before its arrival key
    source = iter(rows)
    waiting: list[tuple[int, int, bytes]] = []  # (sweep start, arrival number, data): a heap
    arrival = 0
    exhausted = False
    last_arrival_key = -float("inf")  # sweep order key of the last block pulled from `source`
    active: list[_Cursor] = []
    last_key = None  # the identity (ts, id) last given

    def pull_until(sweep_ts: float) -> None:
        """Pull blocks until none left in `source` can start at or before sweep_ts."""
        nonlocal arrival, exhausted, last_arrival_key
        while not exhausted and last_arrival_key - span <= sweep_ts:
            row = next(source, None)
            if row is None:
                exhausted = True
                return
            first_ts, max_ts, data = row
            start, last_arrival_key = (-max_ts, -first_ts) if backward else (first_ts, first_ts)
            heapq.heappush(waiting, (start, arrival, data))
            arrival += 1

    def floor() -> float:
        """No unopened block starts before this sweep time."""
        unseen = float("inf") if exhausted else last_arrival_key - span
        return min(waiting[0][0], unseen) if waiting else unseen

    def open_waiting(until: float) -> None:
        while waiting and waiting[0][0] <= until:
            cursor = _Cursor(decode_block(heapq.heappop(waiting)[2]), low, high, backward)
            if cursor.pos < cursor.end:
                active.append(cursor)

    while True:
        if not active:
            pull_until(-float("inf"))
            while not waiting and not exhausted:
                pull_until(last_arrival_key - span)  # the next block, whatever its start
            if not waiting:
                return
            pull_until(waiting[0][0])
            open_waiting(waiting[0][0])
            continue
        head = min(cursor.key(backward)[0] for cursor in active)
        pull_until(head)
        if waiting and waiting[0][0] <= head:
            open_waiting(head)
            continue
        # The smallest open block gives its lines in bulk up to where another block (open, or not
        # yet) may start; a line shared with another block's head goes alone.
        best = min(active, key=lambda cursor: cursor.key(backward))
        bound = min((cursor.key(backward)[0] for cursor in active if cursor is not best), default=floor())
        stop = max(best.count_before(min(bound, floor()), backward), best.pos + 1)
        start = best.pos
        if last_key is not None and (best.ts[start], best.ids[start]) == last_key:
            start += 1
        if start < stop:
            yield from map(_as_line, zip(best.ts[start:stop], itertools.repeat(pod_name),
                                         itertools.repeat(container_name), best.ids[start:stop],
                                         best.logs[start:stop], best.streams[start:stop]))
            last_key = (best.ts[stop - 1], best.ids[stop - 1])
        best.pos = stop
        if stop == best.end:
            active.remove(best)


def split_block(block: Block) -> tuple[Block, Block] | None:
    """A block in two halves (for a request Cassandra finds too large), None for a single line."""
    if block.line_count == 1:
        return None
    decoded = decode_block(block.data)
    half = block.line_count // 2
    return tuple(encode_block(decoded.ts[part], decoded.line_ids[part], decoded.logs[part], decoded.streams[part],
                              decoded.meta_of[part], decoded.metas)
                 for part in (slice(None, half), slice(half, None)))  # type: ignore[return-value]
