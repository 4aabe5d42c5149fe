"""From the series index to Loki's streams (pure: no I/O, no HTTP, no CQL).

A stored line belongs to a container (namespace, pod, container), may have a stream (stdout or
stderr) and carries its row's `labels` (the other labels of a Loki push, or fluent-bit's pod
labels). Its Loki label set is those labels, names made valid label names, plus the namespace,
pod and container under LOKI_NAMESPACE_LABEL, LOKI_POD_LABEL, LOKI_CONTAINER_LABEL and, when it
has one, its stream under LOKI_STREAM_LABEL (those four win over a row label of the same name).

The series index (`LogStore.series_in_buckets`) holds each label set per bucket, so a selector is
matched against label sets, and the lines read are those of the containers (and streams) whose
label sets match: no line is read to answer labels, label values or series.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping

from common.log_store import SeriesEntry
from common.loki_labels import LokiLabelNames
from common.logql import LogQLError, Selector
from common.logql_eval import stream_matcher

_INVALID_NAME_CHARACTER = re.compile(r"[^a-zA-Z0-9_]")

Container = tuple[str, str, str]  # (namespace, pod_name, container_name)
LabelItems = tuple[tuple[str, str], ...]


def label_name(key: str) -> str:
    """A row label's name as a Loki label name: other characters become `_` (`app.kubernetes.io/name`
    is `app_kubernetes_io_name`), a leading digit gets a `_` before it."""
    name = _INVALID_NAME_CHARACTER.sub("_", key)
    return "_" + name if name[:1].isdigit() or not name else name


def loki_labels(entry: SeriesEntry, names: LokiLabelNames) -> dict[str, str]:
    labels = {label_name(key): value for key, value in entry.labels.items()}
    labels[names.namespace] = entry.namespace
    labels[names.pod] = entry.pod_name
    labels[names.container] = entry.container_name
    if entry.stream is not None:
        labels[names.stream] = entry.stream
    else:
        labels.pop(names.stream, None)
    return labels


def label_sets(per_bucket: Iterable[Iterable[SeriesEntry]], names: LokiLabelNames,
               selectors: Iterable[Selector] = ()) -> list[dict[str, str]]:
    """The distinct label sets of the buckets' entries (those any selector matches, when given), sorted."""
    tests = [stream_matcher(selector) for selector in selectors]
    found: dict[LabelItems, dict[str, str]] = {}
    for entry in _distinct(per_bucket):
        labels = loki_labels(entry, names)
        if tests and not any(test(labels) for test in tests):
            continue
        key = tuple(sorted(labels.items()))
        found.setdefault(key, dict(key))
    return [found[key] for key in sorted(found)]


@dataclasses.dataclass
class Selection:
    """What a selector picks: per container, its streams' label sets (the key None: lines without a
    stream), and the buckets where each container has lines."""

    streams: dict[Container, dict[str | None, dict[str, str]]]
    buckets: dict[Container, set[int]]

    @property
    def containers(self) -> list[Container]:
        return sorted(self.streams)


def select(selector: Selector, per_bucket: Mapping[int, Iterable[SeriesEntry]], names: LokiLabelNames) -> Selection:
    """The containers and streams whose label sets the selector matches.

    A container's lines carry no label set of their own, only their stream: when one stream of a
    container had several label sets in the range (its pod's labels changed, or a client pushed
    one container under several label sets), its lines are reported under the labels those sets
    share. A selector that matches some of those sets and not the others cannot pick the lines, and
    is refused rather than answered with the wrong lines.
    """
    test = stream_matcher(selector)
    sets: dict[tuple[Container, str | None], dict[LabelItems, bool]] = {}
    buckets: dict[Container, set[int]] = {}
    for bucket, entries in per_bucket.items():
        for entry in entries:
            container = (entry.namespace, entry.pod_name, entry.container_name)
            labels = loki_labels(entry, names)
            matched = test(labels)
            sets.setdefault((container, entry.stream), {})[tuple(sorted(labels.items()))] = matched
            if matched:
                buckets.setdefault(container, set()).add(bucket)
    streams: dict[Container, dict[str | None, dict[str, str]]] = {}
    for (container, stream), found in sets.items():
        if not any(found.values()):
            continue
        if not all(found.values()):
            raise LogQLError(
                "stream selector",
                f"the lines of {'/'.join(container)} (stream {stream or 'none'}) carry several label sets in this "
                "range and the selector matches only some of them; select by a label they all share "
                "(namespace, pod, container, stream), or narrow the time range")
        shared = _shared(found)
        streams.setdefault(container, {})[stream] = shared
    return Selection(streams, {container: buckets[container] for container in streams})


def _shared(found: Mapping[LabelItems, bool]) -> dict[str, str]:
    sets = [dict(items) for items in found]
    first = sets[0]
    return {name: value for name, value in first.items() if all(other.get(name) == value for other in sets[1:])}


def _distinct(per_bucket: Iterable[Iterable[SeriesEntry]]) -> Iterable[SeriesEntry]:
    seen: set[tuple] = set()
    for entries in per_bucket:
        for entry in entries:
            key = entry.key
            if key not in seen:
                seen.add(key)
                yield entry
