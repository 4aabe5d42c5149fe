"""A batch's lines grouped by container, as columns: the form a batch is queued in.

One `ContainerLines` per (namespace, pod, container), in the order the batch first names it, each
holding that container's lines in arrival order as columns (times, texts, streams, offsets), with
the pod metadata (host, pod_id, docker_id, labels) once per distinct value and each line's index
into it. A worker decodes this at a fraction of the cost of one struct per line (the metadata is
not decoded again for every line), and the blocks layout cuts its blocks from these columns
without grouping the lines again.

Grouping keeps what a line's identity depends on (common.row_keys): a line's position among its
batch's lines of the same container and nanosecond, which the order within a container gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from common.records import LogRow

Meta = tuple  # (host, pod_id, docker_id, labels), each None when absent


class ContainerLines(msgspec.Struct, array_like=True, gc=False):
    """One container's lines of a batch, as columns in arrival order."""

    namespace: str
    pod_name: str
    container_name: str
    metas: list[tuple[str | None, str | None, str | None, dict[str, str] | None]]
    ts: list[int]
    logs: list[str]
    streams: list[str | None]
    meta_of: list[int]
    # None when no line of the container has either (the tail input's Offset_Key and Path_Key)
    offsets: list[int | None] | None = None
    log_files: list[str | None] | None = None

    def meta_index(self, meta: Meta) -> int:
        """The index of a metadata value in `metas`, added if new."""
        try:
            return self.metas.index(meta)
        except ValueError:
            self.metas.append(meta)
            return len(self.metas) - 1

    def add_offset(self, offset: int | None, log_file: str | None) -> None:
        """The last line's offset and file (the columns start once some line has either)."""
        if self.offsets is None:
            self.offsets = [None] * (len(self.ts) - 1)
            self.log_files = [None] * (len(self.ts) - 1)
        self.offsets.append(offset)
        self.log_files.append(log_file)

    def rows(self) -> Iterator[LogRow]:
        from common.records import LogRow  # common.records builds ContainerLines: imported when used

        names = (self.namespace, self.pod_name, self.container_name)
        metas = self.metas
        offsets = self.offsets or [None] * len(self.ts)
        log_files = self.log_files or [None] * len(self.ts)
        for ts, log, stream, meta, offset, log_file in zip(self.ts, self.logs, self.streams, self.meta_of,
                                                            offsets, log_files):
            yield LogRow(*names, ts, log, stream, *metas[meta], offset, log_file)


def group_rows(rows: Iterable[LogRow]) -> list[ContainerLines]:
    """Rows as ContainerLines: containers in the order first seen, lines in arrival order."""
    groups: dict[tuple[str, str, str], ContainerLines] = {}
    last_names, group, last_meta, last_index = None, None, None, 0
    for row in rows:
        names = (row.namespace, row.pod_name, row.container_name)
        if names != last_names:
            group = groups.get(names)
            if group is None:
                group = groups[names] = ContainerLines(*names, [], [], [], [], [])
            last_names, last_meta = names, None
        group.ts.append(row.ts_ns)
        group.logs.append(row.log)
        group.streams.append(row.stream)
        # A container's lines mostly share their metadata: compare before looking it up.
        meta = (row.host, row.pod_id, row.docker_id, row.labels)
        if meta != last_meta:
            last_index, last_meta = group.meta_index(meta), meta
        group.meta_of.append(last_index)
        if row.offset is not None or row.log_file is not None or group.offsets is not None:
            group.add_offset(row.offset, row.log_file)
    return list(groups.values())


class QueuedLines(Sequence["LogRow"]):
    """A queued batch's lines: its containers' columns, and, only when asked for, the same lines
    as LogRows (container by container, each in arrival order)."""

    __slots__ = ("containers", "_count", "_rows")

    def __init__(self, containers: list[ContainerLines]):
        self.containers = containers
        self._count = sum(len(container.ts) for container in containers)
        self._rows: list[LogRow] | None = None

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):
        return self._materialized()[index]

    def __iter__(self) -> Iterator[LogRow]:
        return iter(self._materialized())

    def __eq__(self, other) -> bool:
        if isinstance(other, QueuedLines):
            other = other._materialized()
        return isinstance(other, list) and self._materialized() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"QueuedLines({self._count} lines in {len(self.containers)} containers)"

    def _materialized(self) -> list[LogRow]:
        if self._rows is None:
            self._rows = [row for container in self.containers for row in container.rows()]
        return self._rows


def containers_of(batch: Sequence[LogRow]) -> list[ContainerLines]:
    """A batch's ContainerLines: as queued, or grouped from its rows."""
    if isinstance(batch, QueuedLines):
        return batch.containers
    return group_rows(batch)
